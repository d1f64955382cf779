//! End-to-end: `launch` runs a mix task (`mix test`) on a managed node held at a gate until
//! the breakpoints are armed, reports the task's output and exit status; `pause` stops a
//! running process at its next instrumented line.

mod support;

use serde_json::{json, Value};
use std::time::Duration;
use support::dap::DapClient;

const LONG: Duration = Duration::from_secs(120);

fn initialize(c: &mut DapClient) {
    c.ok(
        "initialize",
        json!({"adapterID": "orrery", "linesStartAt1": true}),
    );
}

/// Every `output` event's text so far, consuming events until `until` arrives.
fn output_until(c: &mut DapClient, until: &str) -> (String, Value) {
    let mut text = String::new();
    loop {
        let ev = c.wait_event_any(&["output", until], LONG);
        if ev["event"] == until {
            return (text, ev);
        }
        text.push_str(ev["body"]["output"].as_str().unwrap_or(""));
    }
}

#[test]
fn launch_mix_test_stops_at_a_breakpoint_in_the_code_under_test() {
    let dir = support::fixture_copy("kv");
    let steps = dir.path().join("lib/kv/steps.ex");
    let test_file = dir.path().join("test/steps_test.exs");
    let mut c = DapClient::start();
    initialize(&mut c);
    c.ok(
        "launch",
        json!({"cwd": dir.path(), "task": "test", "taskArgs": ["--seed", "0"]}),
    );
    c.wait_event("initialized", LONG);
    let bps = c.ok(
        "setBreakpoints",
        json!({"source": {"path": steps}, "breakpoints": [{"line": 6}]}),
    );
    assert_eq!(bps["breakpoints"][0]["verified"], json!(true), "{bps}");
    // Test files are compiled by ExUnit as it runs them: say so instead of pretending.
    let in_test = c.ok(
        "setBreakpoints",
        json!({"source": {"path": test_file}, "breakpoints": [{"line": 5}]}),
    );
    assert_eq!(in_test["breakpoints"][0]["verified"], json!(false));
    let why = in_test["breakpoints"][0]["message"].as_str().unwrap_or("");
    assert!(why.contains("test"), "{why}");
    c.ok("configurationDone", json!({}));

    // The test runs only after the gate opens, so it stops at the armed line.
    let stopped = c.wait_event("stopped", LONG);
    assert_eq!(stopped["body"]["reason"], "breakpoint", "{stopped}");
    let thread = stopped["body"]["threadId"].as_i64().unwrap();
    let st = c.ok("stackTrace", json!({"threadId": thread}));
    let top = &st["stackFrames"][0];
    assert_eq!(top["name"], "KV.Steps.run/1", "{st}");
    assert_eq!(top["line"], json!(6));
    let scopes = c.ok("scopes", json!({"frameId": top["id"]}));
    let vars = c.ok(
        "variables",
        json!({"variablesReference": scopes["scopes"][0]["variablesReference"]}),
    );
    let a = vars["variables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "a")
        .cloned();
    assert_eq!(a.map(|v| v["value"].clone()), Some(json!("3")), "{vars}");

    c.ok("continue", json!({"threadId": thread}));
    let (text, exited) = output_until(&mut c, "exited");
    assert_eq!(support::exunit_counts(&text), Some((1, 0)), "{text}");
    assert_eq!(exited["body"]["exitCode"], json!(0), "{text}");
    c.wait_event("terminated", LONG);
    c.ok("disconnect", json!({}));
    assert!(c.wait_exit(Duration::from_secs(30)));
}

#[test]
fn launch_reports_a_failing_task_and_bad_arguments() {
    let dir = support::fixture_copy("kv");
    std::fs::write(
        dir.path().join("test/fail_test.exs"),
        "defmodule KV.FailTest do\n  use ExUnit.Case\n  test \"fails\", do: assert KV.Steps.double(1) == 3\nend\n",
    )
    .unwrap();
    let mut c = DapClient::start();
    initialize(&mut c);
    let bad = c.request(
        "launch",
        json!({"cwd": dir.path(), "task": "test", "taskArgs": "--seed 0"}),
    );
    assert_eq!(bad["success"], json!(false));
    assert!(
        bad["message"].as_str().unwrap_or("").contains("taskArgs"),
        "{bad}"
    );
    c.ok(
        "launch",
        json!({"cwd": dir.path(), "task": "test", "env": {"ORRERY_FIXTURE": "1"}}),
    );
    c.wait_event("initialized", LONG);
    c.ok("configurationDone", json!({}));
    let (text, exited) = output_until(&mut c, "exited");
    assert_eq!(
        support::exunit_counts(&text).map(|c| c.1),
        Some(1),
        "{text}"
    );
    assert_eq!(exited["body"]["exitCode"], json!(2), "{text}");
    c.wait_event("terminated", LONG);
    c.ok("disconnect", json!({}));
    assert!(c.wait_exit(Duration::from_secs(30)));
}

fn running_thread(c: &mut DapClient, name: &str) -> Option<i64> {
    let threads = c.ok("threads", json!({}));
    threads["threads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| {
            let n = t["name"].as_str().unwrap_or("");
            n.starts_with(name) && n.ends_with("(running)")
        })
        .and_then(|t| t["id"].as_i64())
}

#[test]
fn pause_stops_a_running_process_at_its_next_instrumented_line() {
    use orrery::beam::term;
    let node = support::TestNode::start("kv");
    let bucket = node.dir.join("lib/kv/bucket.ex");
    let mut c = DapClient::start();
    initialize(&mut c);
    // Nothing instrumented yet: pausing says what to do.
    c.ok(
        "attach",
        json!({"node": node.node, "cookie": node.cookie, "cwd": node.dir}),
    );
    c.wait_event("initialized", LONG);
    let early = c.request("pause", json!({"threadId": 1}));
    assert_eq!(early["success"], json!(false), "{early}");
    // A breakpoint that never stops instruments KV.Bucket.
    let bps = c.ok(
        "setBreakpoints",
        json!({"source": {"path": bucket}, "breakpoints": [{"line": 35, "condition": "false"}]}),
    );
    assert_eq!(bps["breakpoints"][0]["verified"], json!(true), "{bps}");
    c.ok("configurationDone", json!({}));

    // The registered GenServer is listed as a running thread; pause it.
    let thread = support::wait_until(LONG, "KV.Bucket listed as running", || {
        running_thread(&mut c, "KV.Bucket")
    });
    c.ok("pause", json!({"threadId": thread}));
    let note = c.wait_event("output", LONG);
    assert!(
        note["body"]["output"]
            .as_str()
            .unwrap_or("")
            .contains("will pause"),
        "{note}"
    );
    // It is idle in receive; its next message runs instrumented code and stops there.
    let call = support::rpc_in_background(
        &node,
        "Elixir.KV.Bucket",
        "put",
        vec![term::atom("k"), term::int(7)],
        Duration::from_secs(120),
    );
    let stopped = c.wait_event("stopped", LONG);
    assert_eq!(stopped["body"]["reason"], "pause", "{stopped}");
    assert_eq!(stopped["body"]["threadId"], json!(thread));
    let st = c.ok("stackTrace", json!({"threadId": thread}));
    assert_eq!(
        st["stackFrames"][0]["name"], "KV.Bucket.handle_call/3",
        "{st}"
    );
    // Other processes keep running meanwhile.
    assert_eq!(support::kv_add(&node), 3);
    c.ok("continue", json!({"threadId": thread}));
    let r = call.join().unwrap().unwrap();
    assert!(term::is_atom(&r, "ok"), "{r:?}");

    // "Any process": the next process on an instrumented line stops.
    c.ok("pause", json!({"threadId": i32::MAX}));
    let call = support::rpc_in_background(
        &node,
        "Elixir.KV.Bucket",
        "state",
        vec![],
        Duration::from_secs(120),
    );
    let stopped = c.wait_event("stopped", LONG);
    assert_eq!(stopped["body"]["reason"], "pause", "{stopped}");
    let t = stopped["body"]["threadId"].as_i64().unwrap();
    c.ok("continue", json!({"threadId": t}));
    call.join().unwrap().unwrap();
    // Taken once: later calls run through.
    assert!(support::kv_bucket_state(&node).contains("k"));
    c.ok("disconnect", json!({}));
}

#[test]
fn orrery_dap_runs_on_the_language_servers_connection_when_one_serves_the_workspace() {
    use orrery::beam::term;
    let dir = support::fixture_copy("kv");
    let node = support::TestNode::start_named(
        dir.path(),
        &support::random_token("kvb"),
        &support::random_token("c"),
    );
    support::rpc(&node, "Elixir.KV.Steps", "run", vec![term::int(0)]).unwrap();
    let pristine = support::module_md5(&node, "Elixir.KV.Steps");
    let steps = dir.path().join("lib/kv/steps.ex");
    let mut l = support::lsp::LspClient::start(&[]);
    l.initialize(
        dir.path(),
        json!({"node": node.node, "cookie": node.cookie}),
    );
    l.wait_status(LONG, "attach", |s| s["attached"] == json!(true));
    let socket = orrery::dap::bridge::socket_path(dir.path());
    support::wait_until(LONG, "the bridge socket", || socket.exists().then_some(()));

    let mut c = DapClient::start();
    initialize(&mut c);
    c.ok(
        "attach",
        json!({"node": node.node, "cookie": node.cookie, "cwd": dir.path()}),
    );
    let note = c.wait_event("output", LONG);
    assert!(
        note["body"]["output"]
            .as_str()
            .unwrap_or("")
            .contains("through the language server"),
        "{note}"
    );
    c.wait_event("initialized", LONG);
    l.wait_status(LONG, "one debug session", |s| {
        s["debugSessions"] == json!(1)
    });
    let bps = c.ok(
        "setBreakpoints",
        json!({"source": {"path": steps}, "breakpoints": [{"line": 6}]}),
    );
    assert_eq!(bps["breakpoints"][0]["verified"], json!(true), "{bps}");
    c.ok("configurationDone", json!({}));
    let call = support::rpc_in_background(
        &node,
        "Elixir.KV.Steps",
        "run",
        vec![term::int(1)],
        Duration::from_secs(120),
    );
    let stopped = c.wait_event("stopped", LONG);
    let t = stopped["body"]["threadId"].as_i64().unwrap();
    let st = c.ok("stackTrace", json!({"threadId": t}));
    assert_eq!(st["stackFrames"][0]["line"], json!(6), "{st}");
    c.ok("continue", json!({"threadId": t}));
    assert_eq!(term::as_int(&call.join().unwrap().unwrap()), Some(6));
    c.ok("disconnect", json!({}));
    assert!(c.wait_exit(Duration::from_secs(30)));
    // The language server is still attached; the node has its own code back.
    let s = l.wait_status(LONG, "debug session gone", |s| {
        s["debugSessions"] == json!(0)
    });
    assert_eq!(s["attached"], json!(true), "{s}");
    assert_eq!(support::module_md5(&node, "Elixir.KV.Steps"), pristine);

    // Another node in the same workspace: the language server declines; standalone.
    let other = support::TestNode::start("kv");
    let mut c = DapClient::start();
    initialize(&mut c);
    c.ok(
        "attach",
        json!({"node": other.node, "cookie": other.cookie, "cwd": dir.path()}),
    );
    c.wait_event("initialized", LONG);
    assert_eq!(
        l.call("orrery/status", Value::Null)["debugSessions"],
        json!(0)
    );
    c.ok("disconnect", json!({}));

    assert!(l.shutdown().success());
    assert!(!socket.exists(), "the socket is removed at exit");
}

#[test]
fn debug_test_lens_launches_that_test_under_the_debugger() {
    let dir = support::fixture_copy("kv");
    let test_file = dir.path().join("test/steps_test.exs");
    let steps = dir.path().join("lib/kv/steps.ex");
    let mut l = support::lsp::LspClient::start(&[]);
    l.initialize(dir.path(), json!({}));
    let uri = l.open(&test_file);
    let lenses = support::wait_until(LONG, "Debug test lenses", || {
        let r = l.call(
            "textDocument/codeLens",
            json!({"textDocument": {"uri": uri}}),
        );
        let debug: Vec<Value> = r
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|c| c["command"]["command"] == "orrery.debugTest")
            .collect();
        (debug.len() >= 2).then_some(debug)
    });
    let titles: Vec<&str> = lenses
        .iter()
        .map(|c| c["command"]["title"].as_str().unwrap())
        .collect();
    assert!(titles.contains(&"Debug tests in file"), "{titles:?}");
    let one = lenses
        .iter()
        .find(|c| c["command"]["title"] == "Debug test")
        .unwrap();
    assert_eq!(one["range"]["start"]["line"], json!(3), "{one}");
    let config = one["command"]["arguments"][0].clone();
    assert_eq!(
        config["taskArgs"],
        json!(["test/steps_test.exs:4"]),
        "{config}"
    );

    // The editor starts that configuration with orrery dap.
    let mut c = DapClient::start();
    initialize(&mut c);
    c.ok("launch", config);
    c.wait_event("initialized", LONG);
    c.ok(
        "setBreakpoints",
        json!({"source": {"path": steps}, "breakpoints": [{"line": 12}]}),
    );
    c.ok("configurationDone", json!({}));
    let stopped = c.wait_event("stopped", LONG);
    let t = stopped["body"]["threadId"].as_i64().unwrap();
    let st = c.ok("stackTrace", json!({"threadId": t}));
    assert_eq!(st["stackFrames"][0]["name"], "KV.Steps.double/1", "{st}");
    c.ok("continue", json!({"threadId": t}));
    let (text, exited) = output_until(&mut c, "exited");
    assert_eq!(support::exunit_counts(&text), Some((1, 0)), "{text}");
    assert_eq!(exited["body"]["exitCode"], json!(0));
    c.ok("disconnect", json!({}));
    assert!(l.shutdown().success());
}

#[test]
fn exunit_counts_in_every_format() {
    assert_eq!(support::exunit_counts("1 test, 0 failures\n"), Some((1, 0)));
    assert_eq!(
        support::exunit_counts("3 tests, 1 failure, 1 skipped"),
        Some((1, 1))
    );
    assert_eq!(support::exunit_counts("\nResult: 2 passed\n"), Some((2, 0)));
    assert_eq!(
        support::exunit_counts("Result: 1/2 passed, 1 skipped\nFailed: 1 test"),
        Some((1, 1))
    );
    assert_eq!(support::exunit_counts("nothing"), None);
}
