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
                    // The workspace's file, else the source the module was compiled from
                    // (deps: their `file` is relative to the dep's own directory).
                    let path = paths
                        .get(m)
                        .cloned()
                        .or_else(|| compiled_source(f))
                        .or_else(|| file.map(|f| root.join(f)).filter(|p| p.exists()));
                    stack.push(Frame {
                        id: thread_id * 1000 + (i as i64) + 1,
                        name: format!(
                            "{}.{}/{a}",
                            pretty::module_name(m),
                            term::as_atom(fun).unwrap_or("?")
                        ),
                        path,
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
