//! Debugger details users notice: a condition that does not parse is an unverified
//! breakpoint with the parser's message; a logpoint prints at once, without a stop; the
//! Process scope of an unregistered process says so; the state history knows a callback's
//! state whatever its head matches it with; `continue` after a step back runs on at once;
//! `attach` to a missing node fails at once; the language server's session is no way
//! around a wrong cookie.

mod support;

use orrery::beam::term;
use serde_json::json;
use std::time::{Duration, Instant};
use support::check::{assert_healthy, health, wait_pristine};
use support::dap::DapClient;
use support::{orchard, rpc, TestNode};

const LONG: Duration = Duration::from_secs(90);
const APPS: &[&str] = &["Elixir.Store", "Elixir.Web", "store_"];

#[test]
fn conditions_logpoints_process_scope_and_state_history() {
    let (dir, node) = orchard();
    let before = health(&node);
    let mut c = DapClient::start();
    c.attach_to(&node, dir.path(), json!({"record": true}));
    let busy = dir.path().join("apps/web/lib/web/busy.ex");
    let bps = c.ok(
        "setBreakpoints",
        json!({"source": {"path": busy}, "breakpoints": [
            {"line": 14, "logMessage": "working {ms} ms"},
            {"line": 15, "condition": "ms =="},
            {"line": 15, "hitCondition": "often"},
        ]}),
    );
    let b = &bps["breakpoints"];
    assert_eq!(b[0]["verified"], json!(true), "{bps}");
    assert_eq!(b[1]["verified"], json!(false), "{bps}");
    assert!(
        b[1]["message"].as_str().unwrap().contains("does not parse"),
        "{bps}"
    );
    assert_eq!(b[2]["verified"], json!(false), "{bps}");
    c.ok("configurationDone", json!({}));

    // Two calls: the logpoint prints each at once; nothing pauses.
    for _ in 0..2 {
        let r = rpc(&node, "Elixir.Web.Busy", "work", vec![term::int(1)]).unwrap();
        assert_eq!(term::as_atom(&r), Some("done"));
    }
    c.wait_output("working 1 ms", LONG);

    // `handle_call({:work, ms}, _from, s)`: the state is `s`, not `state`.
    let h = c.ok("orrery/stateHistory", json!({"module": "Web.Busy"}));
    let entries = h["history"].as_array().unwrap();
    assert!(entries.len() >= 2, "{h}");
    assert_eq!(entries[0]["stateBefore"], "%{calls: 0}", "{h}");
    assert_eq!(entries[0]["stateAfter"], "%{calls: 1}", "{h}");
    assert_eq!(entries[1]["stateBefore"], "%{calls: 1}", "{h}");
    assert!(entries[0]["message"].get("orrery_state__").is_none(), "{h}");

    // A short-lived, unregistered process: its Process scope has no registered name.
    let job = dir.path().join("apps/web/lib/web/job.ex");
    c.ok(
        "setBreakpoints",
        json!({"source": {"path": job}, "breakpoints": [{"line": 5}]}),
    );
    let t = c.wait_event("stopped", LONG)["body"]["threadId"]
        .as_i64()
        .unwrap();
    let st = c.ok("stackTrace", json!({"threadId": t}));
    let frame = st["stackFrames"][0]["id"].as_i64().unwrap();
    let scopes = c.ok("scopes", json!({"frameId": frame}));
    let process = scopes["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "Process")
        .unwrap()["variablesReference"]
        .clone();
    let vars = c.ok("variables", json!({"variablesReference": process}));
    let name = vars["variables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "registered_name")
        .unwrap()["value"]
        .clone();
    assert_eq!(name, "nil", "{vars}");
    let locals = c.ok(
        "variables",
        json!({"variablesReference": scopes["scopes"][0]["variablesReference"]}),
    );
    assert!(!locals.to_string().contains("orrery_state__"), "{locals}");

    // Back one step, then continue: one press runs on (no stop at the live point).
    c.ok(
        "setBreakpoints",
        json!({"source": {"path": job}, "breakpoints": []}),
    );
    c.ok("next", json!({"threadId": t}));
    c.wait_event("stopped", LONG);
    c.ok("stepBack", json!({"threadId": t}));
    c.wait_event("stopped", LONG);
    c.ok("continue", json!({"threadId": t}));
    let threads = c.ok("threads", json!({}));
    assert!(
        !threads["threads"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == json!(t)),
        "still paused after continue: {threads}"
    );
    c.ok("disconnect", json!({}));
    wait_pristine(&node, APPS, LONG);
    assert_healthy(&node, &before);
}

#[test]
fn attach_to_a_missing_node_fails_at_once() {
    let mut c = DapClient::start();
    c.ok(
        "initialize",
        json!({"adapterID": "orrery", "linesStartAt1": true}),
    );
    let started = Instant::now();
    let r = c.request(
        "attach",
        json!({"node": format!("{}@{}", support::random_token("nobody"), support::hostname()),
               "cookie": "x"}),
    );
    assert_eq!(r["success"], json!(false), "{r}");
    let msg = r["message"].as_str().unwrap_or("").to_string() + &r["body"].to_string();
    // EPMD answers "no node named ..."; with no EPMD on the machine (nothing else ran a
    // node yet), the message says that instead: both name the cause at once.
    assert!(
        msg.contains("no node named") || msg.contains("no Erlang node is running there"),
        "{r}"
    );
    // Not a timed assertion of speed: the answer must not be the 30 s retry timeout.
    assert!(started.elapsed() < Duration::from_secs(25), "{r}");
}

#[test]
fn the_language_servers_session_is_no_way_around_the_cookie() {
    let ws = support::fixture_copy("kv");
    let node = TestNode::start_named(
        ws.path(),
        &support::random_token("kvc"),
        &support::random_token("c"),
    );
    let l = support::lsp::start_attached(&node, ws.path(), json!({}));
    let mut c = DapClient::start();
    c.ok(
        "initialize",
        json!({"adapterID": "orrery", "linesStartAt1": true}),
    );
    let r = c.request(
        "attach",
        json!({"node": node.node, "cookie": "not-the-cookie", "cwd": ws.path()}),
    );
    assert_eq!(r["success"], json!(false), "{r}");
    assert!(r.to_string().contains("cookie"), "{r}");
    assert!(l.shutdown().success());
}
