//! Orrery beside the other things that load code into a node: a reloader that runs mix's
//! compiler inside the node on request (what Phoenix's CodeReloader and IEx's
//! `recompile/0` do). Breakpoints survive a reload made by the in-node reloader, and the
//! node ends on the code of the source.

mod support;

use orrery::beam::term;
use serde_json::json;
use std::time::Duration;
use support::check::{assert_healthy, changed_modules, health, wait_pristine};
use support::dap::DapClient;
use support::{edit_file as edit, rpc, TestNode};

const LONG: Duration = Duration::from_secs(90);

/// What `Phoenix.CodeReloader` does on a request: mix's Elixir compiler, in the node.
/// `"noop"` (nothing stale), `"ok"` (compiled and loaded) or the error.
fn reload_in_node(node: &TestNode) -> String {
    const SCRIPT: &str = r#"
Mix.Task.reenable("compile.elixir")
case Mix.Task.run("compile.elixir", ["--return-errors"]) do
  {status, _} -> Atom.to_string(status)
  other -> inspect(other)
end
"#;
    let r = rpc(
        node,
        "Elixir.Code",
        "eval_string",
        vec![term::binary(SCRIPT)],
    )
    .unwrap();
    match term::as_tuple(&r) {
        Some([v, _]) => term::as_string(v).unwrap_or_else(|| format!("{v:?}")),
        _ => panic!("{r:?}"),
    }
}

/// The node's Elixir minor version (`20` for 1.20.4).
fn elixir_minor(node: &TestNode) -> u32 {
    let v = rpc(node, "Elixir.System", "version", vec![]).unwrap();
    let v = term::as_string(&v).unwrap_or_default();
    v.split('.')
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or(0)
}

fn kv_node() -> (tempfile::TempDir, TestNode) {
    let dir = support::fixture_copy("kv");
    let node = TestNode::start_named(
        dir.path(),
        &support::random_token("kvo"),
        &support::random_token("c"),
    );
    (dir, node)
}

#[test]
fn after_a_save_an_in_node_reloader_finds_nothing_to_do() {
    let (dir, node) = kv_node();
    let before = health(&node);
    assert_eq!(support::kv_add(&node), 3);
    let mut c = support::lsp::start_attached(&node, dir.path(), json!({}));
    let calc = dir.path().join("lib/kv/calc.ex");
    c.open(&calc);
    for (from, to, want) in [
        ("a + b", "a + b + 100", 103),
        ("a + b + 100", "a + b + 1", 4),
    ] {
        edit(&calc, from, to);
        let msg = support::lsp::save_for(&mut c, &calc, "KV.Calc");
        assert!(msg.contains("KV.Calc swapped on 1 node"), "{msg}");
        assert!(!msg.contains("_build not updated"), "{msg}");
        // Served once and right: the reloader compiles nothing and loads nothing. (Known
        // open: on Elixir 1.20 an in-node `compile.elixir` compiles the saved file once
        // more, though a `mix compile` from a shell finds nothing to do; what it loads is
        // the same code, checked below.)
        let reloaded = reload_in_node(&node);
        if elixir_minor(&node) < 20 {
            assert_eq!(reloaded, "noop");
        }
        assert_eq!(support::kv_add(&node), want);
        assert_eq!(
            changed_modules(&node, &["Elixir.KV.Calc"]),
            Vec::<String>::new(),
            "the node runs what _build holds"
        );
    }
    assert_healthy(&node, &before);
    assert!(c.shutdown().success());
    wait_pristine(&node, &["Elixir.KV"], LONG);

    // Edited while Orrery is not running: mix still sees it. (mix compares file times to
    // the second, and sizes: an edit of the same size within the second of the last
    // compile is one mix itself would miss.)
    edit(&calc, "a + b + 1", "a + b + 70");
    assert_eq!(reload_in_node(&node), "ok");
    assert_eq!(support::kv_add(&node), 73);
}

/// Mix 1.18+ tells every mix process of a build what a compile changed, and their
/// listeners (Phoenix.CodeReloader's, IEx's with auto_reload) unload those modules. The
/// compile Orrery runs for a save tells nobody: a breakpoint armed before the save stops
/// the very first call after it, and the app's listener unloaded nothing. (Before 1.18
/// mix has no listeners: the rest still holds.)
#[test]
fn a_mix_listener_in_the_app_does_not_unload_what_a_save_loaded() {
    let dir = support::fixture_copy_with("reloading", &["reloader_dep"]);
    let root = dir.path().join("reloading");
    let node = TestNode::start_named(
        &root,
        &support::random_token("rld"),
        &support::random_token("c"),
    );
    let before = health(&node);
    let bump =
        || term::as_int(&rpc(&node, "Elixir.Reloading.Tally", "bump", vec![]).unwrap()).unwrap();
    assert_eq!(bump(), 1);
    let tally = root.join("lib/reloading/tally.ex");
    let mut d = DapClient::start();
    d.attach_to(&node, &root, json!({}));
    let bps = d.ok(
        "setBreakpoints",
        json!({"source": {"path": tally}, "breakpoints": [{"line": 15}]}),
    );
    assert_eq!(bps["breakpoints"][0]["verified"], json!(true), "{bps}");
    d.ok("configurationDone", json!({}));

    let mut c = support::lsp::start_attached(&node, &root, json!({}));
    c.open(&tally);
    edit(&tally, "    1\n", "    10\n");
    let msg = support::lsp::save_for(&mut c, &tally, "Reloading.Tally");
    assert!(msg.contains("Reloading.Tally swapped on 1 node"), "{msg}");
    assert!(!msg.contains("_build not updated"), "{msg}");

    // The very first call after the save stops, in the new code.
    let call = support::rpc_in_background(&node, "Elixir.Reloading.Tally", "step", vec![], LONG);
    let stopped = d.wait_event("stopped", LONG);
    d.ok("continue", json!({"threadId": stopped["body"]["threadId"]}));
    assert_eq!(term::as_int(&call.join().unwrap().unwrap()), Some(10));
    let listening = rpc(
        &node,
        "erlang",
        "whereis",
        vec![term::atom("Elixir.ReloaderDep.Listener")],
    )
    .unwrap();
    if !term::is_atom(&listening, "undefined") {
        let purged = rpc(&node, "Elixir.ReloaderDep.Listener", "purged", vec![]).unwrap();
        assert_eq!(
            term::list_ref(&purged).len(),
            0,
            "the listener unloaded {purged:?}"
        );
    }

    d.ok("disconnect", json!({}));
    assert!(c.shutdown().success());
    wait_pristine(&node, &["Elixir.Reloading"], LONG);
    assert_eq!(bump(), 11);
    assert_eq!(
        changed_modules(&node, &["Elixir.Reloading.Tally"]),
        Vec::<String>::new(),
        "the node runs what _build holds"
    );
    assert_healthy(&node, &before);
}

/// A debug session handed to the language server by an `orrery dap` started in the
/// workspace, its `attach` without `cwd` (as editors send it), the language server run
/// elsewhere: breakpoints and saves compile in the project (a compile node set up
/// outside it had no project: `mix compile` failed and `_build` fell behind). The
/// debugger SIGKILLed afterwards: the node runs the saved code, as `_build` has it.
#[test]
fn a_relayed_debug_session_compiles_in_the_project_whatever_the_servers_cwd() {
    let dir = support::fixture_copy_with("reloading", &["reloader_dep"]);
    let root = dir.path().join("reloading");
    let node = TestNode::start_named(
        &root,
        &support::random_token("rly"),
        &support::random_token("c"),
    );
    let before = health(&node);
    let bump =
        || term::as_int(&rpc(&node, "Elixir.Reloading.Tally", "bump", vec![]).unwrap()).unwrap();
    assert_eq!(bump(), 1);
    let tally = root.join("lib/reloading/tally.ex");
    // The test's cwd (the crate) holds no mix project.
    let mut c = support::lsp::start_attached(&node, &root, json!({}));
    c.open(&tally);
    let mut d = DapClient::start_in(Some(&root), &[]);
    d.ok(
        "initialize",
        json!({"adapterID": "orrery", "linesStartAt1": true}),
    );
    d.ok("attach", json!({"node": node.node, "cookie": node.cookie}));
    d.wait_output("through the language server's connection", LONG);
    d.wait_event("initialized", LONG);
    let bps = d.ok(
        "setBreakpoints",
        json!({"source": {"path": tally}, "breakpoints": [{"line": 15}]}),
    );
    assert_eq!(bps["breakpoints"][0]["verified"], json!(true), "{bps}");
    d.ok("configurationDone", json!({}));

    edit(&tally, "    1\n", "    10\n");
    let msg = support::lsp::save_for(&mut c, &tally, "Reloading.Tally");
    assert!(msg.contains("Reloading.Tally swapped on 1 node"), "{msg}");
    assert!(!msg.contains("_build not updated"), "{msg}");
    let call = support::rpc_in_background(&node, "Elixir.Reloading.Tally", "step", vec![], LONG);
    let stopped = d.wait_event("stopped", LONG);
    d.ok("continue", json!({"threadId": stopped["body"]["threadId"]}));
    assert_eq!(term::as_int(&call.join().unwrap().unwrap()), Some(10));

    unsafe {
        libc::kill(d.pid() as i32, libc::SIGKILL);
    }
    // The probes go (the language server stays attached): the node runs what _build holds.
    support::wait_until(LONG, "the saved code, unprobed, as _build has it", || {
        changed_modules(&node, &["Elixir.Reloading.Tally"])
            .is_empty()
            .then_some(())
    });
    assert_eq!(bump(), 11);
    assert!(c.shutdown().success());
    wait_pristine(&node, &["Elixir.Reloading"], LONG);
    assert_healthy(&node, &before);
}

/// A breakpoint in `KV.Calc.add`, then the file edited on disk (`a + b + 1`) and reloaded
/// plain by the in-node reloader: Orrery says it armed the breakpoint again.
fn armed_again_after_a_reload(d: &mut DapClient, node: &TestNode, calc: &std::path::Path) {
    let bps = d.ok(
        "setBreakpoints",
        json!({"source": {"path": calc}, "breakpoints": [{"line": 5}]}),
    );
    assert_eq!(bps["breakpoints"][0]["verified"], json!(true), "{bps}");
    d.ok("configurationDone", json!({}));
    edit(calc, "a + b", "a + b + 1");
    assert_eq!(reload_in_node(node), "ok");
    // A request uses it (newer mix purges what it recompiled instead of loading it).
    rpc(
        node,
        "code",
        "ensure_loaded",
        vec![term::atom("Elixir.KV.Calc")],
    )
    .unwrap();
    d.wait_output("armed again", LONG);
}

#[test]
fn breakpoints_survive_a_reload_made_by_an_in_node_reloader() {
    let (dir, node) = kv_node();
    let before = health(&node);
    assert_eq!(support::kv_add(&node), 3);
    let calc = dir.path().join("lib/kv/calc.ex");
    let mut d = DapClient::start();
    d.attach_to(&node, dir.path(), json!({}));
    // The file changes on disk and the in-node reloader loads it, plain.
    armed_again_after_a_reload(&mut d, &node, &calc);

    // The next call stops at the breakpoint, in the new code.
    let call = support::rpc_in_background(
        &node,
        "Elixir.KV.Calc",
        "add",
        vec![term::int(1), term::int(2)],
        LONG,
    );
    let stopped = d.wait_event("stopped", LONG);
    let thread = stopped["body"]["threadId"].clone();
    d.ok("continue", json!({"threadId": thread}));
    let r = call.join().unwrap().unwrap();
    assert_eq!(term::as_int(&r), Some(4));

    // The end of the session leaves the code of the source, as _build has it (not the
    // code from before the session).
    d.ok("disconnect", json!({}));
    wait_pristine(&node, &["Elixir.KV"], LONG);
    assert_eq!(support::kv_add(&node), 4);
    assert_eq!(
        changed_modules(&node, &["Elixir.KV.Calc"]),
        Vec::<String>::new()
    );
    assert_healthy(&node, &before);
}

/// The debugger killed (`kill -9`) after the in-node reloader replaced its probes and it
/// armed them again: the guard puts back the code of the source (the reloaded one), not
/// the code from before the debug session.
#[test]
fn a_debugger_killed_after_a_reload_by_others_leaves_the_code_of_the_source() {
    let (dir, node) = kv_node();
    let before = health(&node);
    assert_eq!(support::kv_add(&node), 3);
    let calc = dir.path().join("lib/kv/calc.ex");
    let mut d = DapClient::start_with(&[("ORRERY_GRACE_MS", "300")]);
    d.attach_to(&node, dir.path(), json!({}));
    armed_again_after_a_reload(&mut d, &node, &calc);
    unsafe {
        libc::kill(d.pid() as i32, libc::SIGKILL);
    }
    wait_pristine(&node, &["Elixir.KV"], LONG);
    assert_eq!(support::kv_add(&node), 4);
    assert_eq!(
        changed_modules(&node, &["Elixir.KV.Calc"]),
        Vec::<String>::new()
    );
    assert_healthy(&node, &before);
}
