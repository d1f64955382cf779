//! The debug session and the node's life: a node that restarts under an attached session
//! gets every breakpoint back (its dead paused process is no thread any more); a breakpoint
//! that lands on no code loads nothing into the node; a session inside the language server
//! compiles on the language server's compile node (one code store per node).

mod support;

use orrery::beam::term;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;
use support::check::wait_pristine;
use support::dap::DapClient;
use support::{module_md5 as md5, rpc, TestNode};

const LONG: Duration = Duration::from_secs(90);

fn paused_threads(c: &mut DapClient) -> Vec<Value> {
    let threads = c.ok("threads", json!({}));
    threads["threads"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| {
            let name = t["name"].as_str().unwrap_or("");
            !name.ends_with("(running)") && !name.starts_with("Any process")
        })
        .cloned()
        .collect()
}

#[test]
fn breakpoints_are_armed_again_when_the_node_restarts() {
    let dir = support::fixture_copy("kv");
    let (sname, cookie) = (support::random_token("kvr"), support::random_token("c"));
    let mut node = TestNode::start_named(dir.path(), &sname, &cookie);
    rpc(&node, "Elixir.KV.Steps", "run", vec![term::int(0)]).unwrap();
    let steps = dir.path().join("lib/kv/steps.ex");
    let mut c = DapClient::start();
    c.attach_to(&node, &node.dir.clone(), json!({}));
    let bps = c.ok(
        "setBreakpoints",
        json!({"source": {"path": steps}, "breakpoints": [{"line": 5}]}),
    );
    assert_eq!(bps["breakpoints"][0]["verified"], json!(true), "{bps}");
    c.ok("configurationDone", json!({}));
    let call = support::steps_in_background(&node, 1);
    let first = c.wait_event("stopped", LONG)["body"]["threadId"]
        .as_i64()
        .unwrap();

    // The node dies with a process paused in it.
    node.kill();
    let _ = call.join();
    loop {
        let e = c.wait_event("thread", LONG);
        if e["body"]["threadId"] == json!(first) && e["body"]["reason"] == "exited" {
            break;
        }
    }
    c.wait_output("lost", LONG);
    assert!(
        paused_threads(&mut c).is_empty(),
        "a dead process is listed"
    );

    // It comes back (same name, same cookie): the session arms the breakpoint again.
    let node = TestNode::start_named(dir.path(), &sname, &cookie);
    let said = c.wait_output("armed again", LONG);
    assert!(said.contains("1 breakpoint "), "{said}");
    let call = support::steps_in_background(&node, 1);
    let stopped = c.wait_event("stopped", LONG);
    let thread = stopped["body"]["threadId"].as_i64().unwrap();
    assert_ne!(thread, first);
    let st = c.ok("stackTrace", json!({"threadId": thread}));
    assert_eq!(st["stackFrames"][0]["line"], 5, "{st}");
    let paused = paused_threads(&mut c);
    assert_eq!(paused.len(), 1, "{paused:?}");
    c.ok("continue", json!({"threadId": thread}));
    assert_eq!(term::as_int(&call.join().unwrap().unwrap()), Some(6));
    c.ok("disconnect", json!({}));
    wait_pristine(&node, &["Elixir.KV"], LONG);
}

#[test]
fn a_breakpoint_that_lands_on_no_code_loads_nothing() {
    let node = TestNode::start("kv");
    rpc(&node, "Elixir.KV.Steps", "run", vec![term::int(0)]).unwrap();
    let pristine = md5(&node, "Elixir.KV.Steps");
    let steps = node.dir.join("lib/kv/steps.ex");
    let mut c = DapClient::start();
    c.attach_to(&node, &node.dir.clone(), json!({}));
    let bps = c.ok(
        "setBreakpoints",
        json!({"source": {"path": steps}, "breakpoints": [{"line": 999}]}),
    );
    assert_eq!(bps["breakpoints"][0]["verified"], json!(false), "{bps}");
    assert_eq!(
        md5(&node, "Elixir.KV.Steps"),
        pristine,
        "probes were loaded"
    );
    // Clearing what was never armed changes nothing either.
    c.ok(
        "setBreakpoints",
        json!({"source": {"path": steps}, "breakpoints": []}),
    );
    assert_eq!(md5(&node, "Elixir.KV.Steps"), pristine);

    // A real one loads probes; clearing it disarms (the call runs through).
    let bps = c.ok(
        "setBreakpoints",
        json!({"source": {"path": steps}, "breakpoints": [{"line": 5}]}),
    );
    assert_eq!(bps["breakpoints"][0]["verified"], json!(true), "{bps}");
    assert_ne!(md5(&node, "Elixir.KV.Steps"), pristine);
    c.ok(
        "setBreakpoints",
        json!({"source": {"path": steps}, "breakpoints": []}),
    );
    let r = rpc(&node, "Elixir.KV.Steps", "run", vec![term::int(1)]).unwrap();
    assert_eq!(term::as_int(&r), Some(6));
    c.ok("disconnect", json!({}));
    wait_pristine(&node, &["Elixir.KV"], LONG);
}

/// The compile nodes (their snames) among `pids`.
fn compile_nodes(pids: &BTreeSet<u32>) -> BTreeSet<String> {
    pids.iter()
        .flat_map(|p| {
            support::procs::read(format!("/proc/{p}/cmdline"))
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .filter(|a| a.starts_with("orrery_cc_"))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn a_session_inside_the_language_server_shares_its_code_store() {
    let dir = support::fixture_copy("kv");
    let node = TestNode::start_named(
        dir.path(),
        &support::random_token("kvs"),
        &support::random_token("c"),
    );
    rpc(&node, "Elixir.KV.Steps", "run", vec![term::int(0)]).unwrap();
    let steps = dir.path().join("lib/kv/steps.ex");
    let mut l = support::lsp::start_attached(&node, dir.path(), json!({}));
    l.open(&steps);
    support::edit_file(&steps, "a = n + 1", "a = n + 10");
    let msg = support::lsp::save_and_wait(&mut l, &steps);
    assert!(msg.contains("swapped"), "{msg}");

    // The debug session runs inside the language server (the bridge).
    let mut d = DapClient::start();
    d.attach_to(&node, &node.dir.clone(), json!({}));
    d.wait_output("through the language server", LONG);
    let bps = d.ok(
        "setBreakpoints",
        json!({"source": {"path": steps}, "breakpoints": [{"line": 5}]}),
    );
    assert_eq!(bps["breakpoints"][0]["verified"], json!(true), "{bps}");
    let mut pids = support::procs::tree(l.pid());
    pids.extend(support::procs::tree(d.pid()));
    let cc = compile_nodes(&pids);
    assert_eq!(
        cc.len(),
        1,
        "one compile node for the editor and the debugger: {cc:?}"
    );
    let call = support::steps_in_background(&node, 1);
    let t = d.wait_event("stopped", LONG)["body"]["threadId"]
        .as_i64()
        .unwrap();
    d.ok("continue", json!({"threadId": t}));
    assert_eq!(term::as_int(&call.join().unwrap().unwrap()), Some(33));
    d.ok("disconnect", json!({}));
    // The edit stays (the debugger puts back the code of the source, not the build's),
    // and the language server still has its compile node.
    let r = rpc(&node, "Elixir.KV.Steps", "run", vec![term::int(1)]).unwrap();
    assert_eq!(term::as_int(&r), Some(33));
    support::edit_file(&steps, "a = n + 10", "a = n + 1");
    let msg = support::lsp::save_and_wait(&mut l, &steps);
    assert!(msg.contains("swapped"), "{msg}");
    assert!(l.shutdown().success());
    wait_pristine(&node, &["Elixir.KV"], LONG);
}
