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
    assert!(text.contains("1 test, 0 failures"), "{text}");
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
    assert!(text.contains("1 failure"), "{text}");
    assert_eq!(exited["body"]["exitCode"], json!(2), "{text}");
    c.wait_event("terminated", LONG);
    c.ok("disconnect", json!({}));
    assert!(c.wait_exit(Duration::from_secs(30)));
}
