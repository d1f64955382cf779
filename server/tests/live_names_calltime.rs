//! End-to-end, real `orrery lsp` against real kv nodes: processes found through
//! `{:via, Registry, ..}` and `{:global, ..}` names written in the code, and mean call
//! times behind `liveCallTime` (on by default where the node has trace sessions, OTP 27+,
//! opt-in elsewhere; the node is left as found).

mod support;

use orrery::beam::term::{self, atom, int, tuple};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;
use support::lsp::LspClient;
use support::lsp::{after, hover, start_attached as start};
use support::tracing::{has_sessions, orrery_sessions};
use support::{lib_copy as workspace, rpc, wait_until, TestNode};

const LONG: Duration = Duration::from_secs(90);

fn hints(c: &mut LspClient, uri: &str) -> String {
    c.call(
        "textDocument/inlayHint",
        json!({"textDocument": {"uri": uri}, "range": {"start": {"line": 0, "character": 0}, "end": {"line": 200, "character": 0}}}),
    )
    .to_string()
}

/// Open `lib/kv/<file>` and wait until the hover at `needle` contains every `want`.
fn wait_hover(c: &mut LspClient, root: &Path, file: &str, needle: &str, want: &[&str]) -> String {
    let path = root.join("lib/kv").join(file);
    let src = std::fs::read_to_string(&path).unwrap();
    let uri = format!("file://{}", path.display());
    let at = after(&src, needle);
    wait_until(LONG, &format!("hover on {needle} showing {want:?}"), || {
        let h = hover(c, &uri, at);
        want.iter().all(|w| h.contains(w)).then_some(h)
    })
}

#[test]
fn hover_shows_processes_found_through_via_and_global_names() {
    let node = TestNode::start("kv");
    // Not started by the application (connected test nodes would clash over the name).
    let started = rpc(&node, "Elixir.KV.Global", "start", vec![]).unwrap();
    assert!(term::as_tuple(&started).is_some_and(|t| term::is_atom(&t[0], "ok")));
    let ws = workspace(&node);
    let mut c = start(&node, ws.path(), json!({}));
    let root = ws.path();

    // {:via, Registry, {KV.Names, "main"}}: the process and its state, like a registered one.
    for f in ["named.ex", "global.ex", "worker.ex"] {
        c.open(&root.join("lib/kv").join(f));
    }
    let h = wait_hover(
        &mut c,
        root,
        "named.ex",
        "defmodule KV.Na",
        &[
            "`{:via, Registry, {KV.Names, \"main\"}}` is #PID<",
            "%{hits: 0, name: \"main\"}",
        ],
    );
    assert!(h.contains("queue 0 · memory"), "{h}");
    // The state after a call that changes it.
    rpc(&node, "Elixir.KV.Named", "hit", vec![]).unwrap();
    wait_hover(
        &mut c,
        root,
        "named.ex",
        "defmodule KV.Na",
        &["%{hits: 1, name: \"main\"}"],
    );
    let named_uri = format!("file://{}", root.join("lib/kv/named.ex").display());
    let labels = wait_until(LONG, "inlay hint with the state", || {
        let h = hints(&mut c, &named_uri);
        h.contains("1 proc · %{hits: 1").then_some(h)
    });
    let lenses = c.call(
        "textDocument/codeLens",
        json!({"textDocument": {"uri": named_uri}}),
    );
    assert!(
        lenses.to_string().contains("Inspect state"),
        "{lenses} {labels}"
    );

    // {:global, :kv_global}
    rpc(&node, "Elixir.KV.Global", "hit", vec![]).unwrap();
    wait_hover(
        &mut c,
        root,
        "global.ex",
        "defmodule KV.Gl",
        &["`{:global, :kv_global}` is #PID<", "%{hits: 1}"],
    );

    // {:via, Registry, {KV.Names, {:worker, id}}}: the key is computed, so the processes of
    // the registry that run KV.Worker, with their keys and states.
    let h = wait_hover(
        &mut c,
        root,
        "worker.ex",
        "defmodule KV.Wo",
        &["2 processes of `KV.Worker` under `{:via, Registry, {KV.Names, {:worker, _}}}`"],
    );
    assert!(
        h.contains("`{:worker, 1}` →") && h.contains("`%{id: 1}`"),
        "{h}"
    );
    assert!(
        h.contains("`{:worker, 2}` →") && h.contains("`%{id: 2}`"),
        "{h}"
    );

    // orrery/state takes such names too.
    let st = c.call("orrery/state", json!({"target": "{:global, :kv_global}"}));
    assert_eq!(st["processes"][0]["state"], "%{hits: 1}", "{st}");
    let st = c.call(
        "orrery/state",
        json!({"target": "{:via, Registry, {KV.Names, {:worker, 2}}}"}),
    );
    assert_eq!(st["processes"][0]["state"], "%{id: 2}", "{st}");
    c.shutdown();
}

/// Every process's trace flags and tracer, plus those of new processes, as text.
fn trace_flags(node: &TestNode) -> Vec<String> {
    let procs = rpc(node, "erlang", "processes", vec![]).unwrap();
    let mut out = vec![];
    for p in term::list_ref(&procs) {
        let f = rpc(node, "erlang", "trace_info", vec![p.clone(), atom("flags")]).unwrap();
        if let Some([_, flags]) = term::as_tuple(&f) {
            if !term::list_ref(flags).is_empty() {
                out.push(format!("{p:?}: {flags:?}"));
            }
        }
    }
    let f = rpc(
        node,
        "erlang",
        "trace_info",
        vec![atom("new"), atom("flags")],
    )
    .unwrap();
    if let Some([_, flags]) = term::as_tuple(&f) {
        if !term::list_ref(flags).is_empty() {
            out.push(format!("new: {flags:?}"));
        }
    }
    out
}

/// `erlang:trace_info({KV.Calc, add, 2}, What)` is `false` (no pattern of that kind).
fn no_pattern(node: &TestNode, what: &str) -> bool {
    let mfa = tuple(vec![term::module("KV.Calc"), atom("add"), int(2)]);
    let r = rpc(node, "erlang", "trace_info", vec![mfa, atom(what)]).unwrap();
    matches!(term::as_tuple(&r), Some([_, v]) if term::is_atom(v, "false"))
}

/// Call times are being counted on the node: in Orrery's own session where the node has
/// sessions, else with the call flag on processes in the global session.
fn call_time_set(node: &TestNode, sessions: bool) -> bool {
    if sessions {
        orrery_sessions(node)
            .iter()
            .any(|s| s == "orrery_calltime_v1")
            && support::check::eval_text(node, ":trace.session_info({KV.Calc, :add, 2})")
                .contains("orrery_calltime_v1")
    } else {
        !trace_flags(node).is_empty() && !no_pattern(node, "call_time")
    }
}

fn call_time_unset(node: &TestNode) -> bool {
    trace_flags(node).is_empty()
        && no_pattern(node, "call_time")
        && !orrery_sessions(node)
            .iter()
            .any(|s| s == "orrery_calltime_v1")
}

#[test]
fn live_call_time_shows_mean_times_and_leaves_the_node_as_found() {
    let node = TestNode::start("kv");
    support::kv_add(&node); // loaded (interactive mode loads on first call)
    let sessions = has_sessions(&node);
    let registered = rpc(&node, "erlang", "registered", vec![]).unwrap();
    let ws = workspace(&node);
    let root = ws.path();
    let mut c = start(&node, root, json!({"liveCallTime": true}));
    let calc = root.join("lib/kv/calc.ex");
    let uri = c.open(&calc);
    let src = std::fs::read_to_string(&calc).unwrap();
    // Set with the first refresh; calls made after that are timed.
    wait_until(LONG, "call times set", || {
        c.call("orrery/status", Value::Null); // keeps answering the server's requests
        call_time_set(&node, sessions).then_some(())
    });
    let h = wait_until(LONG, "a mean time in the def hover", || {
        support::kv_add(&node);
        let h = hover(&mut c, &uri, after(&src, "def ad"));
        (h.contains("mean") && h.contains("per call")).then_some(h)
    });
    assert!(
        h.contains("µs per call") || h.contains("ms per call"),
        "{h}"
    );
    let hint = wait_until(LONG, "a mean time in the inlay hint", || {
        let h = hints(&mut c, &uri);
        h.contains(" calls · ").then_some(h)
    });
    assert!(hint.contains("µs") || hint.contains("ms"), "{hint}");
    if sessions {
        // Nothing of Orrery's in the node's global session.
        assert_eq!(trace_flags(&node), Vec::<String>::new());
        assert!(no_pattern(&node, "call_time"));
    }

    // Turned off: everything undone while still attached.
    c.notify(
        "workspace/didChangeConfiguration",
        json!({"settings": {"orrery": {"liveCallTime": false}}}),
    );
    wait_until(LONG, "call times off", || {
        c.call("orrery/status", Value::Null);
        call_time_unset(&node).then_some(())
    });
    // On again, then detach: the node is as found.
    c.notify(
        "workspace/didChangeConfiguration",
        json!({"settings": {"orrery": {"liveCallTime": true}}}),
    );
    wait_until(LONG, "call times set again", || {
        c.call("orrery/status", Value::Null);
        call_time_set(&node, sessions).then_some(())
    });
    c.shutdown();
    assert_eq!(trace_flags(&node), Vec::<String>::new(), "trace flags left");
    assert!(no_pattern(&node, "call_time"), "call_time pattern left");
    assert!(no_pattern(&node, "call_count"), "call_count pattern left");
    assert_eq!(
        orrery_sessions(&node),
        Vec::<String>::new(),
        "sessions left"
    );
    let after_detach = rpc(&node, "erlang", "registered", vec![]).unwrap();
    let names = |t: &eetf::Term| {
        let mut v: Vec<String> = term::list_ref(t)
            .iter()
            .filter_map(|a| term::as_atom(a).map(str::to_string))
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&registered), names(&after_detach));
}

/// Without `liveCallTime`: call times are on where the node has trace sessions (in
/// Orrery's own session, no flag in the global one) and `false` turns them off; off
/// elsewhere, with no trace flag set at all, and the status says why.
#[test]
fn call_times_by_default_only_with_trace_sessions() {
    let node = TestNode::start("kv");
    support::kv_add(&node);
    let sessions = has_sessions(&node);
    let ws = workspace(&node);
    let root = ws.path();
    let mut c = start(&node, root, json!({}));
    let calc = root.join("lib/kv/calc.ex");
    let uri = c.open(&calc);
    let src = std::fs::read_to_string(&calc).unwrap();
    let h = wait_until(LONG, "call counts in the def hover", || {
        support::kv_add(&node);
        let h = hover(&mut c, &uri, after(&src, "def ad"));
        (h.contains("calls since attach") && (!sessions || h.contains("mean"))).then_some(h)
    });
    let st = c.call("orrery/status", Value::Null)["nodes"][0].clone();
    assert_eq!(trace_flags(&node), Vec::<String>::new());
    assert!(no_pattern(&node, "call_time"));
    if sessions {
        assert!(call_time_set(&node, true));
        assert_eq!(st["callTimes"], "on, in Orrery's own trace session", "{st}");
        c.notify(
            "workspace/didChangeConfiguration",
            json!({"settings": {"orrery": {"liveCallTime": false}}}),
        );
        wait_until(LONG, "call times off", || {
            c.call("orrery/status", Value::Null);
            call_time_unset(&node).then_some(())
        });
        let st = c.call("orrery/status", Value::Null)["nodes"][0].clone();
        assert_eq!(st["callTimes"], "off (liveCallTime is false)", "{st}");
    } else {
        assert!(!h.contains("mean"), "{h}");
        let why = st["callTimes"].as_str().unwrap_or_default();
        assert!(
            why.starts_with("off: the node has no trace sessions"),
            "{st}"
        );
    }
    c.shutdown();
}
