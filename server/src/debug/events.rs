//! Events pushed by the node's debugger runtime: a process paused, a logpoint printed, a
//! paused process died.

use super::{lock, pid_key, Event, Frame, Paused, State};
use crate::beam::pretty;
use crate::beam::term;
use eetf::Term;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tokio::sync::mpsc;

pub(crate) fn handle_event(
    state: &Mutex<State>,
    events: &mpsc::UnboundedSender<Event>,
    node: &str,
    root: &Path,
    paths: &HashMap<String, PathBuf>,
    msg: Term,
) {
    let Some([tag, ev]) = term::as_tuple(&msg) else {
        return;
    };
    if !term::is_atom(tag, "orrery_dbg") {
        return;
    }
    let parts = term::as_tuple(ev).unwrap_or(&[]);
    match parts {
        [kind, pid, info] if term::is_atom(kind, "paused") => {
            let key = pid_key(node, pid);
            let mut st = lock(state);
            let thread_id = st.thread_id(key);
            let module = term::get(info, "module")
                .and_then(term::as_atom)
                .unwrap_or("?")
                .to_string();
            let line = term::get_int(info, "line").unwrap_or(0) as u32;
            let function = match term::get(info, "function").and_then(term::as_tuple) {
                Some([f, a]) => format!(
                    "{}/{}",
                    term::as_atom(f).unwrap_or("?"),
                    term::as_int(a).unwrap_or(0)
                ),
                _ => "?".into(),
            };
            let bindings = super::bindings_of(term::get(info, "bindings"));
            let registered = term::get(info, "name")
                .and_then(term::as_atom)
                .filter(|n| *n != "nil")
                .map(str::to_string);
            let name = registered
                .as_deref()
                .map(pretty::module_name)
                .unwrap_or_else(|| "process".into());
            let frames = term::get(info, "stack").map(term::list_ref).unwrap_or(&[]);
            let mut stack = vec![Frame {
                id: thread_id * 1000,
                name: format!("{}.{function}", pretty::module_name(&module)),
                path: paths
                    .get(&module)
                    .cloned()
                    .or_else(|| frames.first().and_then(compiled_source)),
                line,
            }];
            // Callers: skip the instrumented function's own frame (reported above).
            for (i, f) in frames.iter().skip(1).enumerate() {
                if let Some([m, fun, arity, loc]) = term::as_tuple(f) {
                    let m = term::as_atom(m).unwrap_or("?");
                    let a = term::as_int(arity).unwrap_or_else(|| {
                        term::as_list(arity).map(|l| l.len() as i64).unwrap_or(0)
                    });
                    let file = term::as_list(loc)
                        .unwrap_or_default()
                        .iter()
                        .find_map(|kv| match term::as_tuple(kv) {
                            Some([k, v]) if term::is_atom(k, "file") => term::as_string(v),
                            _ => None,
                        });
                    let fline = term::as_list(loc)
                        .unwrap_or_default()
                        .iter()
                        .find_map(|kv| match term::as_tuple(kv) {
                            Some([k, v]) if term::is_atom(k, "line") => term::as_int(v),
                            _ => None,
                        });
                    let module_file = paths.get(m).cloned().or_else(|| compiled_source(f));
                    stack.push(Frame {
                        id: thread_id * 1000 + (i as i64) + 1,
                        name: frame_name(m, term::as_atom(fun).unwrap_or("?"), a),
                        path: frame_path(root, module_file, file.as_deref()),
                        line: fline.unwrap_or(0) as u32,
                    });
                }
            }
            let reason = match term::get(info, "reason").and_then(term::as_atom) {
                Some("step") => "step",
                Some("pause") => "pause",
                _ => "breakpoint",
            };
            st.paused.insert(
                thread_id,
                Paused {
                    thread_id,
                    node: node.to_string(),
                    pid: pid.clone(),
                    name,
                    registered,
                    module,
                    line,
                    function,
                    bindings,
                    stack,
                    history: vec![],
                    returns: vec![],
                    cursor: None,
                },
            );
            drop(st);
            let _ = events.send(Event::Stopped { thread_id, reason });
        }
        [kind, _pid, _m, _l, text] if term::is_atom(kind, "output") => {
            let _ = events.send(Event::Output(format!(
                "{}\n",
                term::as_string(text).unwrap_or_default()
            )));
        }
        [kind, pid, _why] if term::is_atom(kind, "exited") => {
            let key = pid_key(node, pid);
            let mut st = lock(state);
            if let Some(t) = st.thread_of.get(&key).copied() {
                st.paused.remove(&t);
                drop(st);
                let _ = events.send(Event::ThreadExited(t));
            }
        }
        _ => {}
    }
}

/// The absolute source a stack frame's module was compiled from (the agent adds it from
/// `module_info(compile)`), when that file exists here.
fn compiled_source(frame: &Term) -> Option<PathBuf> {
    let loc = term::as_tuple(frame)?.get(3)?;
    term::as_list(loc)?
        .iter()
        .find_map(|kv| match term::as_tuple(kv) {
            Some([k, v]) if term::is_atom(k, "source") => term::as_string(v),
            _ => None,
        })
        .map(PathBuf::from)
        .filter(|p| p.is_absolute() && p.exists())
}

/// Where a caller frame's line is: the file its location names. That is the module's own
/// file, except for code a macro injected (`use Phoenix.Endpoint` defines `call/2` in the
/// user's module, its lines in Phoenix's `endpoint.ex`). A location's file is relative to
/// the project (or, for a dependency, to the dependency's directory). No path rather than
/// the module's file with another file's line.
fn frame_path(
    root: &Path,
    module_file: Option<PathBuf>,
    loc_file: Option<&str>,
) -> Option<PathBuf> {
    let Some(loc) = loc_file.filter(|f| !f.is_empty()) else {
        return module_file;
    };
    let loc = Path::new(loc);
    if module_file.as_deref().is_some_and(|m| m.ends_with(loc)) {
        return module_file;
    }
    if loc.is_absolute() {
        return loc.exists().then(|| loc.to_path_buf());
    }
    let in_root = root.join(loc);
    if in_root.exists() {
        return Some(in_root);
    }
    let mut deps: Vec<PathBuf> = std::fs::read_dir(root.join("deps"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join(loc))
        .filter(|p| p.exists())
        .collect();
    deps.sort();
    deps.into_iter().next()
}

/// A frame's function as an Elixir developer reads it: `Mod.fun/2`; the original of an
/// overridden function (what `super` calls; Elixir names it `"fun (overridable 1)"`) as
/// `Mod.fun/2 (super)`; an anonymous function (`-fun/1-fun-0-`) as
/// `anonymous fn/1 in Mod.fun/1`.
pub(crate) fn frame_name(module: &str, fun: &str, arity: i64) -> String {
    let m = pretty::module_name(module);
    if let Some((name, _)) = fun.split_once(" (overridable ") {
        return format!("{m}.{name}/{arity} (super)");
    }
    if let Some(inner) = fun.strip_prefix('-') {
        // `-name/arity-fun-N-`, `-name/arity-lc$^0/1-0-` (a comprehension), ...
        if let Some((head, rest)) = inner.split_once('/').and_then(|(h, r)| {
            let (a, tail) = r.split_once('-')?;
            a.parse::<u32>().ok().map(|a| ((h, a), tail))
        }) {
            let (name, outer_arity) = head;
            if rest.starts_with("fun-") {
                return format!("anonymous fn/{arity} in {m}.{name}/{outer_arity}");
            }
            return format!("{m}.{name}/{outer_arity} (comprehension)");
        }
    }
    format!("{m}.{fun}/{arity}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_names_as_elixir_developers_read_them() {
        assert_eq!(frame_name("Elixir.KV.Bucket", "put", 2), "KV.Bucket.put/2");
        assert_eq!(
            frame_name("Elixir.MyAppWeb.Endpoint", "call (overridable 3)", 2),
            "MyAppWeb.Endpoint.call/2 (super)"
        );
        assert_eq!(
            frame_name("Elixir.KV", "-start/2-fun-0-", 1),
            "anonymous fn/1 in KV.start/2"
        );
        assert_eq!(
            frame_name("Elixir.KV", "-names/1-lc$^0/1-0-", 2),
            "KV.names/1 (comprehension)"
        );
        assert_eq!(frame_name("lists", "map", 2), ":lists.map/2");
    }

    #[test]
    fn frame_paths_follow_the_location() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::create_dir_all(root.join("lib/web")).unwrap();
        std::fs::create_dir_all(root.join("deps/phoenix/lib/phoenix")).unwrap();
        std::fs::write(root.join("lib/web/endpoint.ex"), "").unwrap();
        std::fs::write(root.join("deps/phoenix/lib/phoenix/endpoint.ex"), "").unwrap();
        let own = Some(root.join("lib/web/endpoint.ex"));
        assert_eq!(
            frame_path(root, own.clone(), Some("lib/web/endpoint.ex")),
            own
        );
        assert_eq!(frame_path(root, own.clone(), None), own);
        assert_eq!(
            frame_path(root, own.clone(), Some("lib/phoenix/endpoint.ex")),
            Some(root.join("deps/phoenix/lib/phoenix/endpoint.ex"))
        );
        assert_eq!(frame_path(root, own, Some("lib/nowhere.ex")), None);
    }
}
