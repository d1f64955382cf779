//! End-to-end: the real `orrery dap` against real nodes: breakpoints by instrumented
//! recompilation, one paused process, stepping, inspection, and a clean disconnect.

mod support;

use orrery::beam::term;
use serde_json::{json, Value};
use std::time::Duration;
use support::dap::DapClient;
use support::{rpc, TestNode};

use support::module_md5 as md5;

const LONG: Duration = Duration::from_secs(60);

fn top_frame(c: &mut DapClient, thread: i64) -> Value {
    let st = c.ok("stackTrace", json!({"threadId": thread}));
    st["stackFrames"][0].clone()
}

fn attach(c: &mut DapClient, node: &TestNode) {
    let caps = c.ok(
        "initialize",
        json!({"adapterID": "orrery", "linesStartAt1": true}),
    );
    assert_eq!(caps["supportsConditionalBreakpoints"], json!(true));
    c.ok(
        "attach",
        json!({"node": node.node, "cookie": node.cookie, "cwd": node.dir}),
    );
    c.wait_event("initialized", LONG);
}

#[test]
fn breakpoints_stepping_inspection_and_clean_disconnect() {
    let node = TestNode::start("kv");
    // Load the modules as the app would, and remember what was loaded.
    rpc(&node, "Elixir.KV.Steps", "run", vec![term::int(0)]).unwrap();
    let pristine = md5(&node, "Elixir.KV.Steps");
    let steps = node.dir.join("lib/kv/steps.ex");

    let mut c = DapClient::start();
    attach(&mut c, &node);
    // Line 3 has no code: the breakpoint moves to the first line with code (5).
    let bps = c.ok(
        "setBreakpoints",
        json!({"source": {"path": steps}, "breakpoints": [{"line": 3}, {"line": 6}]}),
    );
    assert_eq!(bps["breakpoints"][0]["verified"], json!(true), "{bps}");
    assert_eq!(bps["breakpoints"][0]["line"], json!(5));
    assert_eq!(bps["breakpoints"][1]["line"], json!(6));
    assert_ne!(
        md5(&node, "Elixir.KV.Steps"),
        pristine,
        "instrumented code is loaded"
    );
    c.ok("configurationDone", json!({}));

    let call = support::steps_in_background(&node, 1);
    let stopped = c.wait_event("stopped", LONG);
    let thread = stopped["body"]["threadId"].as_i64().unwrap();
    assert_eq!(stopped["body"]["reason"], "breakpoint");
    let threads = c.ok("threads", json!({}));
    // One paused process; the rest are running threads and the "any process" entry.
    let paused: Vec<&Value> = threads["threads"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| {
            let name = t["name"].as_str().unwrap_or("");
            !name.ends_with("(running)") && !name.starts_with("Any process")
        })
        .collect();
    assert_eq!(paused.len(), 1, "{threads}");
    assert_eq!(paused[0]["id"], json!(thread), "{threads}");
    let top = top_frame(&mut c, thread);
    assert_eq!(top["name"], "KV.Steps.run/1");
    assert_eq!(top["line"], 5);
    assert!(
        top["source"]["path"]
            .as_str()
            .unwrap()
            .ends_with("lib/kv/steps.ex"),
        "{top}"
    );

    // Other processes keep answering while this one is paused.
    let r = rpc(
        &node,
        "Elixir.KV.Calc",
        "add",
        vec![term::int(2), term::int(3)],
    )
    .unwrap();
    assert_eq!(term::as_int(&r), Some(5));
    rpc(
        &node,
        "Elixir.KV.Bucket",
        "put",
        vec![term::atom("k"), term::int(1)],
    )
    .unwrap();

    // Scopes and variables.
    let scopes = c.ok("scopes", json!({"frameId": top["id"]}));
    assert_eq!(scopes["scopes"][0]["name"], "Locals");
    let locals = c.ok(
        "variables",
        json!({"variablesReference": scopes["scopes"][0]["variablesReference"]}),
    );
    assert_eq!(locals["variables"][0]["name"], "n");
    assert_eq!(locals["variables"][0]["value"], "1");
    // Evaluate in the frame; hover only reads variables.
    let ev = c.ok(
        "evaluate",
        json!({"expression": "%{n: n, list: [n, n + 1]}", "frameId": top["id"], "context": "repl"}),
    );
    assert_eq!(ev["result"], "%{list: [1, 2], n: 1}");
    let kids = c.ok(
        "variables",
        json!({"variablesReference": ev["variablesReference"]}),
    );
    assert_eq!(kids["variables"][0]["name"], "list");
    let hover = c.request(
        "evaluate",
        json!({"expression": "File.rm_rf!(\"/\")", "frameId": top["id"], "context": "hover"}),
    );
    assert_eq!(hover["success"], json!(false));

    // next → line 6 (the breakpoint there is also the next line).
    c.ok("next", json!({"threadId": thread}));
    let s = c.wait_event("stopped", LONG);
    let thread = s["body"]["threadId"].as_i64().unwrap();
    assert_eq!(top_frame(&mut c, thread)["line"], 6);
    // stepIn → into double/1 at line 12.
    c.ok("stepIn", json!({"threadId": thread}));
    c.wait_event("stopped", LONG);
    let top = top_frame(&mut c, thread);
    assert_eq!(top["name"], "KV.Steps.double/1");
    assert_eq!(top["line"], 12);
    let st = c.ok("stackTrace", json!({"threadId": thread}));
    assert_eq!(st["stackFrames"][1]["name"], "KV.Steps.run/1", "{st}");
    // stepOut → back in run/1 at line 7.
    c.ok("stepOut", json!({"threadId": thread}));
    c.wait_event("stopped", LONG);
    let top = top_frame(&mut c, thread);
    assert_eq!(
        (top["name"].as_str().unwrap(), top["line"].as_i64().unwrap()),
        ("KV.Steps.run/1", 7)
    );
    c.ok("continue", json!({"threadId": thread}));
    let r = call.join().unwrap().unwrap();
    assert_eq!(term::as_int(&r), Some(6));

    // Conditional, hit-count and log points on double/1 (line 12).
    c.ok(
        "setBreakpoints",
        json!({"source": {"path": steps}, "breakpoints": [{"line": 12, "condition": "x > 100"}]}),
    );
    let r = support::steps_in_background(&node, 1)
        .join()
        .unwrap()
        .unwrap();
    assert_eq!(term::as_int(&r), Some(6), "condition false: no stop");
    c.ok(
        "setBreakpoints",
        json!({"source": {"path": steps}, "breakpoints": [{"line": 13, "logMessage": "y is {y}"}]}),
    );
    support::steps_in_background(&node, 2)
        .join()
        .unwrap()
        .unwrap();
    let out = c.wait_event("output", LONG);
    assert_eq!(out["body"]["output"], "y is 6\n", "{out}");
    c.ok(
        "setBreakpoints",
        json!({"source": {"path": steps}, "breakpoints": [{"line": 12, "hitCondition": "2"}]}),
    );
    support::steps_in_background(&node, 1)
        .join()
        .unwrap()
        .unwrap();
    let call = support::steps_in_background(&node, 1);
    let s = c.wait_event("stopped", LONG);
    c.ok("continue", json!({"threadId": s["body"]["threadId"]}));
    call.join().unwrap().unwrap();

    // Function breakpoints stop at the first line with code of the function.
    c.ok(
        "setBreakpoints",
        json!({"source": {"path": steps}, "breakpoints": []}),
    );
    let fb = c.ok(
        "setFunctionBreakpoints",
        json!({"breakpoints": [{"name": "KV.Steps.double/1"}, {"name": "KV.Nope.x/0"}]}),
    );
    assert_eq!(fb["breakpoints"][0]["line"], json!(12), "{fb}");
    assert_eq!(fb["breakpoints"][1]["verified"], json!(false));
    let call = support::steps_in_background(&node, 1);
    let s = c.wait_event("stopped", LONG);
    assert_eq!(
        top_frame(&mut c, s["body"]["threadId"].as_i64().unwrap())["name"],
        "KV.Steps.double/1"
    );
    c.ok("setFunctionBreakpoints", json!({"breakpoints": []}));
    c.ok("continue", json!({"threadId": s["body"]["threadId"]}));
    call.join().unwrap().unwrap();

    // Disconnect restores the pristine code and removes Orrery from the node.
    assert_ne!(md5(&node, "Elixir.KV.Steps"), pristine);
    c.ok("disconnect", json!({}));
    assert!(c.wait_exit(LONG));
    assert_eq!(md5(&node, "Elixir.KV.Steps"), pristine);
    let loaded = rpc(
        &node,
        "code",
        "is_loaded",
        vec![term::atom("orrery_dbg_v1")],
    )
    .unwrap();
    assert!(term::is_atom(&loaded, "false"));
}

#[test]
fn client_dying_while_paused_resumes_and_restores() {
    let node = TestNode::start("kv");
    rpc(&node, "Elixir.KV.Steps", "run", vec![term::int(0)]).unwrap();
    let pristine = md5(&node, "Elixir.KV.Steps");
    let mut c = DapClient::start();
    attach(&mut c, &node);
    c.ok(
        "setBreakpoints",
        json!({"source": {"path": node.dir.join("lib/kv/steps.ex")}, "breakpoints": [{"line": 5}]}),
    );
    let call = support::steps_in_background(&node, 1);
    c.wait_event("stopped", LONG);
    // The editor goes away without a word: stdin closes.
    c.close_stdin();
    assert!(c.wait_exit(LONG));
    let r = call.join().unwrap().unwrap();
    assert_eq!(term::as_int(&r), Some(6), "the paused process was resumed");
    assert_eq!(md5(&node, "Elixir.KV.Steps"), pristine);
}

fn locals(c: &mut DapClient, thread: i64) -> Vec<(String, String)> {
    let top = top_frame(c, thread);
    let scopes = c.ok("scopes", json!({"frameId": top["id"]}));
    let vars = c.ok(
        "variables",
        json!({"variablesReference": scopes["scopes"][0]["variablesReference"]}),
    );
    vars["variables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap().to_string(),
                v["value"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn time_travel_steps_back_through_the_recording_and_forward_to_live() {
    let node = TestNode::start("kv");
    rpc(&node, "Elixir.KV.Steps", "run", vec![term::int(0)]).unwrap();
    let steps = node.dir.join("lib/kv/steps.ex");
    let mut c = DapClient::start();
    let caps = c.ok("initialize", json!({"adapterID": "orrery"}));
    assert_eq!(caps["supportsStepBack"], json!(true));
    c.ok("attach", json!({"node": node.node, "cookie": node.cookie, "cwd": node.dir, "record": true, "recordLimit": 1000}));
    c.wait_event("initialized", LONG);
    c.ok(
        "setBreakpoints",
        json!({"source": {"path": steps}, "breakpoints": [{"line": 8}]}),
    );
    let call = support::steps_in_background(&node, 1);
    let s = c.wait_event("stopped", LONG);
    let t = s["body"]["threadId"].as_i64().unwrap();
    assert_eq!(top_frame(&mut c, t)["line"], 8);

    // Back one line: line 7, with the earlier bindings (c not bound yet).
    c.ok("stepBack", json!({"threadId": t}));
    c.wait_event("stopped", LONG);
    let top = top_frame(&mut c, t);
    assert_eq!(top["line"], 7);
    assert!(top["name"].as_str().unwrap().contains("recorded"), "{top}");
    let l = locals(&mut c, t);
    assert!(
        l.contains(&("a".into(), "2".into())) && l.contains(&("b".into(), "4".into())),
        "{l:?}"
    );
    assert!(!l.iter().any(|(n, _)| n == "c"), "{l:?}");
    // What the previous line's call returned is shown beside the locals.
    let scopes = c.ok("scopes", json!({"frameId": top["id"]}));
    let returned = scopes["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "Returned")
        .unwrap_or_else(|| panic!("{scopes}"));
    let vars = c.ok(
        "variables",
        json!({"variablesReference": returned["variablesReference"]}),
    );
    assert_eq!(vars["variables"][0]["name"], "KV.Steps.double/1", "{vars}");
    assert_eq!(vars["variables"][0]["value"], "4", "{vars}");
    // Back again: into double/1, where y was 4.
    c.ok("stepBack", json!({"threadId": t}));
    c.wait_event("stopped", LONG);
    let top = top_frame(&mut c, t);
    assert_eq!(top["line"], 13);
    assert!(locals(&mut c, t).contains(&("y".into(), "4".into())));
    // Evaluate answers from the recorded point.
    let ev = c.ok(
        "evaluate",
        json!({"expression": "y * 10", "frameId": top["id"], "context": "repl"}),
    );
    assert_eq!(ev["result"], "40");

    // Reverse continue: no earlier breakpoint hit, so the start of the recording (line 5).
    c.ok("reverseContinue", json!({"threadId": t}));
    c.wait_event("stopped", LONG);
    assert_eq!(top_frame(&mut c, t)["line"], 5);
    let e = c.request("stepBack", json!({"threadId": t}));
    assert_eq!(e["success"], json!(false));

    // Forward through the recording: next skips double/1's lines.
    c.ok("next", json!({"threadId": t}));
    c.wait_event("stopped", LONG);
    assert_eq!(top_frame(&mut c, t)["line"], 6);
    c.ok("next", json!({"threadId": t}));
    c.wait_event("stopped", LONG);
    assert_eq!(top_frame(&mut c, t)["line"], 7);
    // Past the newest event: live again, then continue runs for real.
    c.ok("next", json!({"threadId": t}));
    c.wait_event("stopped", LONG);
    let top = top_frame(&mut c, t);
    assert_eq!(top["line"], 8);
    assert!(!top["name"].as_str().unwrap().contains("recorded"), "{top}");
    c.ok("continue", json!({"threadId": t}));
    assert_eq!(term::as_int(&call.join().unwrap().unwrap()), Some(6));

    // The timeline lists what happened.
    let tl = c.ok("orrery/timeline", json!({"module": "KV.Steps"}));
    let events = tl["events"].as_array().unwrap();
    let lines: Vec<i64> = events
        .iter()
        .filter(|e| e["kind"] == "line")
        .map(|e| e["line"].as_i64().unwrap())
        .collect();
    assert_eq!(&lines[..6], &[5, 6, 12, 13, 7, 8], "{tl}");
    // Returns are recorded with their results, in order: double/1, then run/1.
    let returns: Vec<(String, String)> = events
        .iter()
        .filter(|e| e["kind"] == "return")
        .map(|e| {
            (
                e["function"].as_str().unwrap().to_string(),
                e["result"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        &returns[..2],
        &[
            ("double/1".into(), "4".into()),
            ("run/1".into(), "6".into())
        ],
        "{tl}"
    );
    // A tail-recursive clause stays a tail call: only the base clause reports a return.
    rpc(&node, "Elixir.KV.Steps", "countdown", vec![term::int(3)]).unwrap();
    let tl = c.ok("orrery/timeline", json!({"module": "KV.Steps"}));
    let countdown: Vec<&Value> = tl["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["function"] == "countdown/1")
        .collect();
    assert_eq!(
        countdown.iter().filter(|e| e["kind"] == "line").count(),
        4,
        "{tl}"
    );
    let returned: Vec<&&Value> = countdown.iter().filter(|e| e["kind"] == "return").collect();
    assert_eq!(returned.len(), 1, "{tl}");
    assert_eq!(returned[0]["result"], ":done");
    // The value history of a variable across the recording.
    let vh = c.ok(
        "orrery/valueHistory",
        json!({"variable": "a", "module": "KV.Steps"}),
    );
    assert_eq!(vh["changes"][0]["value"], "2", "{vh}");

    // Save the recording, stop the node, and replay it without any node.
    let saved = c.ok("orrery/saveRecording", json!({"path": ".orrery/run.json"}));
    assert!(saved["events"].as_u64().unwrap() >= 6, "{saved}");
    c.ok("disconnect", json!({}));
    drop(node);
    let mut r = DapClient::start();
    r.ok("initialize", json!({"adapterID": "orrery"}));
    r.ok(
        "launch",
        json!({"recording": ".orrery/run.json", "cwd": support::fixture("kv")}),
    );
    r.wait_event("initialized", LONG);
    r.ok("configurationDone", json!({}));
    let s = r.wait_event("stopped", LONG);
    let t = s["body"]["threadId"].as_i64().unwrap();
    assert_eq!(top_frame(&mut r, t)["line"], 5);
    r.ok("next", json!({"threadId": t}));
    r.wait_event("stopped", LONG);
    r.ok("stepIn", json!({"threadId": t}));
    r.wait_event("stopped", LONG);
    assert_eq!(top_frame(&mut r, t)["line"], 12);
    assert!(locals(&mut r, t).contains(&("x".into(), "2".into())));
    r.ok("stepBack", json!({"threadId": t}));
    r.wait_event("stopped", LONG);
    assert_eq!(top_frame(&mut r, t)["line"], 6);
    r.ok("disconnect", json!({}));
}

#[test]
fn breakpoints_survive_a_save_through_the_language_server() {
    let dir = support::fixture_copy("kv");
    let node = TestNode::start_named(
        dir.path(),
        &support::random_token("kvd"),
        &support::random_token("c"),
    );
    rpc(&node, "Elixir.KV.Steps", "run", vec![term::int(0)]).unwrap();
    let steps = dir.path().join("lib/kv/steps.ex");
    let mut d = DapClient::start();
    attach(&mut d, &node);
    d.ok(
        "setBreakpoints",
        json!({"source": {"path": steps}, "breakpoints": [{"line": 5}]}),
    );

    let mut l = support::lsp::LspClient::start(&[]);
    l.initialize(
        dir.path(),
        json!({"node": node.node, "cookie": node.cookie}),
    );
    l.wait_status(LONG, "attach", |s| s["attached"] == json!(true));
    l.open(&steps);
    let src = std::fs::read_to_string(&steps).unwrap();
    std::fs::write(&steps, src.replace("a = n + 1", "a = n + 10")).unwrap();
    l.notify(
        "textDocument/didSave",
        json!({"textDocument": {"uri": format!("file://{}", steps.display())}}),
    );
    let msg = l.wait_nth(LONG, "window/showMessage", 1);
    assert!(
        msg["params"]["message"]
            .as_str()
            .unwrap()
            .contains("swapped"),
        "{msg}"
    );

    // The new code runs, and the breakpoint still stops it.
    let call = support::steps_in_background(&node, 1);
    let s = d.wait_event("stopped", LONG);
    let t = s["body"]["threadId"].as_i64().unwrap();
    assert_eq!(top_frame(&mut d, t)["line"], 5);
    d.ok("continue", json!({"threadId": t}));
    assert_eq!(term::as_int(&call.join().unwrap().unwrap()), Some(33));
    d.ok("disconnect", json!({}));
    assert!(l.shutdown().success());
}

#[test]
fn recording_stays_within_its_bounds_under_a_flood() {
    let node = TestNode::start("kv");
    rpc(&node, "Elixir.KV.Steps", "run", vec![term::int(0)]).unwrap();
    let mut c = DapClient::start();
    c.ok("initialize", json!({"adapterID": "orrery"}));
    c.ok("attach", json!({"node": node.node, "cookie": node.cookie, "cwd": node.dir, "record": true, "recordLimit": 200}));
    c.wait_event("initialized", LONG);
    // A breakpoint that never stops (its condition is false) instruments the module.
    c.ok("setBreakpoints", json!({"source": {"path": node.dir.join("lib/kv/steps.ex")}, "breakpoints": [{"line": 5, "condition": "false"}]}));
    // 2,000 calls, 8 events each (6 lines, 2 returns): far more than the limit.
    let script = "Enum.each(1..2000, &KV.Steps.run/1)";
    let r = rpc(
        &node,
        "Elixir.Code",
        "eval_string",
        vec![term::binary(script)],
    );
    assert!(r.is_ok(), "{r:?}");
    let tl = c.ok(
        "orrery/timeline",
        json!({"module": "KV.Steps", "limit": 10_000}),
    );
    let total = tl["total"].as_i64().unwrap();
    assert!(total <= 200 && total > 100, "ring holds {total} events");
    // The newest events are kept: the last call was run(2000), which returned 6003.
    let events = tl["events"].as_array().unwrap();
    let last_line = events.iter().rev().find(|e| e["kind"] == "line").unwrap();
    assert!(last_line["bindings"]["n"] == "2000", "{last_line}");
    let last = events.last().unwrap();
    assert_eq!(last["kind"], "return", "{last}");
    assert_eq!(last["result"], "6003", "{last}");
    // The node is fine and answers.
    let r = rpc(
        &node,
        "Elixir.KV.Calc",
        "add",
        vec![term::int(1), term::int(1)],
    )
    .unwrap();
    assert_eq!(term::as_int(&r), Some(2));
    c.ok("disconnect", json!({}));
}

#[test]
fn step_in_instruments_the_called_module_on_the_fly() {
    let node = TestNode::start("kv");
    rpc(&node, "Elixir.KV.Client", "sum", vec![]).unwrap();
    let client = node.dir.join("lib/kv/client.ex");
    let mut c = DapClient::start();
    attach(&mut c, &node);
    // `Calc.add(1, 2)` on line 7 of client.ex; calc.ex has no breakpoints (not instrumented).
    let bps = c.ok(
        "setBreakpoints",
        json!({"source": {"path": client}, "breakpoints": [{"line": 7}]}),
    );
    assert_eq!(bps["breakpoints"][0]["line"], 7, "{bps}");
    let call = support::rpc_in_background(
        &node,
        "Elixir.KV.Client",
        "sum",
        vec![],
        Duration::from_secs(120),
    );
    let s = c.wait_event("stopped", LONG);
    let t = s["body"]["threadId"].as_i64().unwrap();
    c.ok("stepIn", json!({"threadId": t}));
    c.wait_event("stopped", LONG);
    let top = top_frame(&mut c, t);
    assert_eq!(top["name"], "KV.Calc.add/2", "{top}");
    assert!(top["source"]["path"]
        .as_str()
        .unwrap()
        .ends_with("lib/kv/calc.ex"));
    c.ok("continue", json!({"threadId": t}));
    assert_eq!(term::as_int(&call.join().unwrap().unwrap()), Some(3));
    c.ok("disconnect", json!({}));
}

#[test]
fn genserver_state_history_lists_each_message_and_state() {
    let node = TestNode::start("kv");
    let mut c = DapClient::start();
    c.ok("initialize", json!({"adapterID": "orrery"}));
    c.ok(
        "attach",
        json!({"node": node.node, "cookie": node.cookie, "cwd": node.dir, "record": true}),
    );
    c.wait_event("initialized", LONG);
    // Instrument KV.Bucket with a breakpoint that never stops.
    let bps = c.ok("setBreakpoints", json!({"source": {"path": node.dir.join("lib/kv/bucket.ex")}, "breakpoints": [{"line": 35, "condition": "false"}]}));
    assert_eq!(bps["breakpoints"][0]["verified"], json!(true), "{bps}");
    rpc(
        &node,
        "Elixir.KV.Bucket",
        "put",
        vec![term::atom("a"), term::int(1)],
    )
    .unwrap();
    rpc(
        &node,
        "Elixir.KV.Bucket",
        "put",
        vec![term::atom("b"), term::int(2)],
    )
    .unwrap();
    let h = c.ok("orrery/stateHistory", json!({"module": "KV.Bucket"}));
    let entries = h["history"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{h}");
    assert_eq!(entries[0]["callback"], "handle_call/3");
    assert_eq!(entries[0]["message"]["key"], ":a", "{h}");
    assert_eq!(entries[0]["message"]["request"], "{:put, :a, 1}", "{h}");
    assert_eq!(entries[0]["stateBefore"], "%{}");
    assert_eq!(entries[0]["stateAfter"], "%{a: 1}");
    // Taken from what the callback returned.
    assert_eq!(entries[0]["returned"], "{:reply, :ok, %{a: 1}}", "{h}");
    assert_eq!(entries[1]["stateAfter"], "%{a: 1, b: 2}");
    c.ok("disconnect", json!({}));
}
