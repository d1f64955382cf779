//! The recording as views: the timeline, the value history of a variable, and recordings
//! saved to a file.

use super::{recorded, Debugger, Recorded, T};
use crate::agent::DBG_MODULE;
use crate::beam::pretty;
use crate::beam::term::{self, atom, int, map};
use eetf::Term;
use serde_json::{json, Value};

const CALLBACKS: [&str; 7] = [
    "init/1",
    "handle_call/3",
    "handle_cast/2",
    "handle_info/2",
    // A LiveView's (Phoenix.LiveView.Channel calls them with the socket last).
    "handle_event/3",
    "handle_params/3",
    "mount/3",
];
/// Callbacks that only a LiveView has: their state is a socket, or they are not ones.
const LIVEVIEW_ONLY: [&str; 3] = ["handle_event/3", "handle_params/3", "mount/3"];

/// What a callback got besides its state, by the names its documentation gives them
/// (`from` left out): the instrumenter binds them as `orrery_arg1__`, `orrery_arg2__`.
fn argument_names(callback: &str) -> &'static [&'static str] {
    match callback {
        "handle_call/3" => &["request"],
        "handle_cast/2" => &["request"],
        "handle_info/2" => &["msg"],
        "handle_continue/2" => &["continue_arg"],
        "handle_event/3" => &["event", "params"],
        "handle_params/3" => &["params", "uri"],
        "mount/3" => &["params", "session"],
        _ => &[],
    }
}

/// The state in a GenServer callback's return value (`{:reply, r, state}`, `{:noreply,
/// state}`, `{:ok, state}`, `{:stop, reason, state}`, with or without a trailing action).
/// For a LiveView the state is the socket's assigns.
pub fn callback_state(function: &str, result: &Term) -> Option<Term> {
    if !CALLBACKS.contains(&function) {
        return None;
    }
    let t = term::as_tuple(result)?;
    let tag = term::as_atom(t.first()?)?;
    let s = match (tag, t.len()) {
        ("ok" | "noreply", 2 | 3) => t.get(1),
        ("reply", 3 | 4) => t.get(2),
        ("stop", 2) => t.get(1),
        ("stop", 3) => t.get(2),
        ("stop", 4) => t.get(3),
        _ => None,
    }?;
    match socket_assigns(s) {
        Some(a) => Some(a),
        None if LIVEVIEW_ONLY.contains(&function) => None,
        None => Some(s.clone()),
    }
}

/// A `%Phoenix.LiveView.Socket{}`'s assigns without Phoenix's change tracking.
pub fn socket_assigns(t: &Term) -> Option<Term> {
    let Term::Map(m) = t else { return None };
    let is_socket = m
        .map
        .get(&atom("__struct__"))
        .is_some_and(|s| term::is_atom(s, "Elixir.Phoenix.LiveView.Socket"));
    if !is_socket {
        return None;
    }
    match m.map.get(&atom("assigns"))? {
        Term::Map(a) => {
            let mut a = a.clone();
            a.map.remove(&atom("__changed__"));
            Some(Term::Map(a))
        }
        other => Some(other.clone()),
    }
}

impl Debugger {
    /// Recorded events for a pid (`"#PID<0.1.0>"`) or a module (`"KV.Bucket"`), paged, as JSON.
    pub async fn timeline(&self, args: &serde_json::Value) -> Result<serde_json::Value, String> {
        let mut out = vec![];
        let mut total = 0;
        for n in self.session.nodes() {
            let mut filter = vec![
                ("offset", int(args["offset"].as_i64().unwrap_or(0))),
                (
                    "limit",
                    int(args["limit"].as_i64().unwrap_or(100).clamp(1, 10_000)),
                ),
            ];
            if let Some(m) = args["module"].as_str() {
                filter.push(("module", atom(&term::module_atom(m))));
            }
            if let Some(p) = args["pid"].as_str() {
                let pid = n
                    .conn
                    .rpc(
                        "erlang",
                        "list_to_pid",
                        vec![term::charlist(p.trim_start_matches("#PID"))],
                        T,
                    )
                    .await
                    .map_err(|e| format!("{p} is not a pid: {e}"))?;
                filter.push(("pid", pid));
            }
            let r = n
                .conn
                .rpc(DBG_MODULE, "timeline", vec![map(filter)], T)
                .await
                .map_err(|e| e.to_string())?;
            total += term::get_int(&r, "total").unwrap_or(0);
            for e in term::get(&r, "events").map(term::list_ref).unwrap_or(&[]) {
                let ev = recorded(e);
                let mut entry = serde_json::json!({
                    "seq": ev.seq,
                    "timeUs": ev.time_us,
                    "node": n.info.name,
                    "pid": term::get(e, "pid").map(|p| pretty::to_elixir_compact(p, 60)),
                    "module": pretty::module_name(&ev.module),
                    "function": ev.function,
                    "line": ev.line,
                    "depth": ev.depth,
                    "kind": if ev.is_line() { "line" } else { "return" },
                    "bindings": ev.bindings.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(pretty::to_elixir_compact(v, 200)))).collect::<serde_json::Map<_, _>>(),
                });
                // The callback's state argument, however its head matched it.
                let state_arg = term::get(e, "bindings")
                    .map(term::list_ref)
                    .unwrap_or(&[])
                    .iter()
                    .find_map(|b| match term::as_tuple(b) {
                        Some([k, v]) if term::is_atom(k, crate::debug::STATE_BINDING) => Some(v),
                        _ => None,
                    });
                // The arguments before it (request, event, params), as the callback got them.
                let args: serde_json::Map<String, Value> = argument_names(&ev.function)
                    .iter()
                    .enumerate()
                    .filter_map(|(i, name)| {
                        let var = format!("orrery_arg{}__", i + 1);
                        let v = term::get(e, "bindings")
                            .map(term::list_ref)
                            .unwrap_or(&[])
                            .iter()
                            .find_map(|b| match term::as_tuple(b) {
                                Some([k, v]) if term::is_atom(k, &var) => Some(v),
                                _ => None,
                            })?;
                        Some((name.to_string(), json!(pretty::to_elixir_compact(v, 200))))
                    })
                    .collect();
                if !args.is_empty() {
                    entry["arguments"] = Value::Object(args);
                }
                if let Some(s) = state_arg {
                    let assigns = socket_assigns(s);
                    // A LiveView's callback: its `socket` binding is the state, not the message.
                    if assigns.is_some() {
                        entry["liveView"] = json!(true);
                    }
                    let s = assigns.unwrap_or_else(|| s.clone());
                    entry["stateArg"] = json!(pretty::to_elixir_compact(&s, 200));
                }
                if let Some(r) = &ev.result {
                    entry["result"] = json!(pretty::to_elixir_compact(r, 200));
                    if let Some(s) = callback_state(&ev.function, r) {
                        entry["state"] = json!(pretty::to_elixir_compact(&s, 200));
                    }
                }
                out.push(entry);
            }
        }
        Ok(serde_json::json!({"total": total, "events": out}))
    }

    /// Every recorded value of a variable (optionally in one module), with when and where it
    /// changed. For a GenServer, `state` gives its state history, each entry with the other
    /// bindings (the message) of that callback.
    pub async fn value_history(&self, args: &Value) -> Result<Value, String> {
        let name = args["variable"]
            .as_str()
            .ok_or("valueHistory needs `variable`")?;
        let mut all = args.clone();
        all["offset"] = json!(0);
        all["limit"] = json!(10_000);
        let tl = self.timeline(&all).await?;
        let mut last: Option<String> = None;
        let mut out = vec![];
        for e in tl["events"].as_array().cloned().unwrap_or_default() {
            let Some(v) = e["bindings"][name].as_str() else {
                continue;
            };
            if last.as_deref() == Some(v) {
                continue;
            }
            last = Some(v.to_string());
            let mut context = e["bindings"].clone();
            if let Some(o) = context.as_object_mut() {
                o.remove(name);
            }
            out.push(json!({
                "seq": e["seq"], "timeUs": e["timeUs"], "pid": e["pid"], "node": e["node"],
                "module": e["module"], "function": e["function"], "line": e["line"],
                "value": v, "with": context,
            }));
        }
        Ok(json!({"variable": name, "changes": out}))
    }

    /// A GenServer's state history: for each recorded callback (`init/1`, `handle_call/3`,
    /// `handle_cast/2`, `handle_info/2`) of `module`, the message it got, the state before,
    /// and the state after (the state the next callback saw, or the live state for the last).
    pub async fn state_history(&self, args: &Value) -> Result<Value, String> {
        let module = args["module"]
            .as_str()
            .ok_or("stateHistory needs `module`")?;
        let mut all = json!({"module": module, "offset": 0, "limit": 10_000});
        if let Some(p) = args["pid"].as_str() {
            all["pid"] = json!(p);
        }
        let tl = self.timeline(&all).await?;
        let mut calls: Vec<Value> = vec![];
        let mut last_key: Option<(Value, Value)> = None;
        for e in tl["events"].as_array().cloned().unwrap_or_default() {
            let f = e["function"].as_str().unwrap_or("");
            if !CALLBACKS.contains(&f) {
                last_key = None;
                continue;
            }
            if e["kind"] == "return" {
                // The callback returned: its new state (and reply) close the open entry.
                if let Some(c) = calls
                    .iter_mut()
                    .rev()
                    .find(|c| c["pid"] == e["pid"] && c["callback"] == e["function"])
                    .filter(|c| c.get("stateAfter").is_none())
                {
                    c["returned"] = e["result"].clone();
                    if let Some(s) = e.get("state") {
                        c["stateAfter"] = s.clone();
                    }
                }
                last_key = None;
                continue;
            }
            // The first probe of each invocation starts an entry.
            let key = (e["pid"].clone(), e["function"].clone());
            if last_key.as_ref() == Some(&key) {
                continue;
            }
            last_key = Some(key);
            let b = e["bindings"].as_object().cloned().unwrap_or_default();
            let state = e
                .get("stateArg")
                .or_else(|| b.get("state"))
                .cloned()
                .unwrap_or(Value::Null);
            // The head's bindings, then what the callback got (request, event, params)
            // whatever its head matched it with (`"inc"`, `_params`).
            let mut message: serde_json::Map<String, Value> = b
                .into_iter()
                .filter(|(k, _)| k != "state" && k != "from" && k != "_from")
                .filter(|(k, _)| {
                    !(k == "socket" && (LIVEVIEW_ONLY.contains(&f) || e["liveView"] == true))
                })
                .collect();
            if let Some(args) = e["arguments"].as_object() {
                message.extend(args.clone());
            }
            calls.push(json!({
                "seq": e["seq"], "timeUs": e["timeUs"], "pid": e["pid"], "node": e["node"],
                "callback": f, "message": message, "stateBefore": state, "line": e["line"],
            }));
        }
        // A callback whose head matches its state without naming it `state` (`%{n: n} = s`,
        // a literal map) has no such binding: its state before is what the previous
        // callback of that process returned.
        for i in 0..calls.len() {
            if !calls[i]["stateBefore"].is_null() {
                continue;
            }
            let before = calls[..i]
                .iter()
                .rev()
                .find(|c| c["pid"] == calls[i]["pid"])
                .and_then(|c| c.get("stateAfter").cloned());
            if let Some(b) = before {
                calls[i]["stateBefore"] = b;
            }
        }
        // Without a recorded return, the state after a callback is the state the next one of
        // that process saw (or the live state).
        for i in 0..calls.len() {
            if calls[i].get("stateAfter").is_some() {
                continue;
            }
            let after = calls[i + 1..]
                .iter()
                .find(|c| c["pid"] == calls[i]["pid"])
                .map(|c| c["stateBefore"].clone());
            calls[i]["stateAfter"] = match after {
                Some(a) => a,
                None => self.live_state(&calls[i]).await.unwrap_or(Value::Null),
            };
        }
        Ok(json!({"module": module, "history": calls}))
    }

    /// The current state of the process of a history entry.
    async fn live_state(&self, entry: &Value) -> Option<Value> {
        let node = entry["node"].as_str()?;
        let pid = entry["pid"].as_str()?;
        let conn = self
            .session
            .nodes()
            .into_iter()
            .find(|n| n.info.name == node)?
            .conn;
        let p = conn
            .rpc(
                "erlang",
                "list_to_pid",
                vec![term::charlist(pid.trim_start_matches("#PID"))],
                T,
            )
            .await
            .ok()?;
        let s = conn
            .rpc("sys", "get_state", vec![p, int(1000)], T)
            .await
            .ok()?;
        // A LiveView's channel: the state is its socket's assigns.
        let s = term::get(&s, "socket")
            .and_then(socket_assigns)
            .unwrap_or(s);
        Some(Value::String(pretty::to_elixir_compact(&s, 200)))
    }

    /// Save the whole recording (every event, bindings as external term format) to `path`.
    pub async fn save_recording(&self, path: &std::path::Path) -> Result<Value, String> {
        let mut events = vec![];
        for n in self.session.nodes() {
            let r = n
                .conn
                .rpc(
                    DBG_MODULE,
                    "timeline",
                    vec![map(vec![("offset", int(0)), ("limit", int(1_000_000))])],
                    T,
                )
                .await
                .map_err(|e| e.to_string())?;
            for e in term::get(&r, "events").map(term::list_ref).unwrap_or(&[]) {
                let ev = recorded(e);
                let mut raw = vec![];
                let kw = term::list(
                    ev.bindings
                        .iter()
                        .map(|(k, v)| term::tuple(vec![atom(k), v.clone()]))
                        .collect(),
                );
                kw.encode(&mut raw).map_err(|e| e.to_string())?;
                let mut saved = json!({
                    "seq": ev.seq, "timeUs": ev.time_us, "node": n.info.name,
                    "pid": term::get(e, "pid").map(|p| pretty::to_elixir_compact(p, 60)),
                    "module": ev.module, "function": ev.function, "line": ev.line, "depth": ev.depth,
                    "bindings": hex::encode(&raw),
                });
                if let Some(r) = &ev.result {
                    let mut raw = vec![];
                    r.encode(&mut raw).map_err(|e| e.to_string())?;
                    saved["result"] = json!(hex::encode(&raw));
                }
                events.push(saved);
            }
        }
        let doc = json!({"orreryRecording": 1, "root": self.root, "events": events});
        // Recorded bindings are node data: 0600, in a 0700 directory.
        crate::private::write_private(
            path,
            &serde_json::to_vec_pretty(&doc).map_err(|e| e.to_string())?,
        )
        .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(json!({"path": path, "events": events.len()}))
    }
}

/// Events of a saved recording, decoded back into terms.
pub fn load_recording(path: &std::path::Path) -> Result<Vec<(String, Recorded)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let doc: Value = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not a recording: {e}", path.display()))?;
    if doc["orreryRecording"] != json!(1) {
        return Err(format!("{} is not an Orrery recording", path.display()));
    }
    let mut out = vec![];
    for e in doc["events"].as_array().cloned().unwrap_or_default() {
        let raw = hex::decode(e["bindings"].as_str().unwrap_or("")).map_err(|e| e.to_string())?;
        let kw = eetf::Term::decode(&raw[..]).map_err(|e| e.to_string())?;
        let bindings = term::list_ref(&kw)
            .iter()
            .filter_map(|b| match term::as_tuple(b) {
                Some([k, v]) => Some((term::as_atom(k)?.to_string(), v.clone())),
                _ => None,
            })
            .collect();
        let pid = format!(
            "{} {}",
            e["pid"].as_str().unwrap_or("?"),
            e["node"].as_str().unwrap_or("")
        );
        out.push((
            pid,
            Recorded {
                seq: e["seq"].as_i64().unwrap_or(0),
                time_us: e["timeUs"].as_i64().unwrap_or(0),
                module: e["module"].as_str().unwrap_or("?").to_string(),
                line: e["line"].as_u64().unwrap_or(0) as u32,
                function: e["function"].as_str().unwrap_or("?").to_string(),
                depth: e["depth"].as_i64().unwrap_or(0),
                bindings,
                result: match e["result"].as_str() {
                    Some(h) => {
                        let raw = hex::decode(h).map_err(|e| e.to_string())?;
                        Some(eetf::Term::decode(&raw[..]).map_err(|e| e.to_string())?)
                    }
                    None => None,
                },
            },
        ));
    }
    Ok(out)
}
