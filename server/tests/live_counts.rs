//! Call counts across hot swaps, real `orrery lsp` against real kv nodes: the count of a
//! function goes on across a save that swaps its module, a rollback and a breakpoint's
//! instrumented load (a debug session); a function gone with a swap drops
//! out, a renamed one starts at 0; after a load Orrery did not make the count says since
//! when it runs. Detach and a SIGKILL leave no call_count pattern nor table of ours.

mod support;

use orrery::beam::term::{self, atom};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;
use support::check::{assert_healthy, health, wait_pristine};
use support::dap::DapClient;
use support::lsp::{after, hover, LspClient};
use support::{edit_file, rpc, wait_until, TestNode};

const LONG: Duration = Duration::from_secs(90);
const APPS: &[&str] = &["Elixir.KV"];

fn start(dir: &Path, node: &TestNode, envs: &[(&str, &str)]) -> LspClient {
    let mut c = LspClient::start(envs);
    c.initialize(
        dir,
        json!({"node": node.node, "cookie": node.cookie, "refreshMs": 200}),
    );
    c.wait_status(LONG, "attach", |s| s["attached"] == json!(true));
    c
}

/// `KV.Calc.<fun>(args)` on the node: its integer result.
fn call(node: &TestNode, fun: &str, args: &[i64]) -> i64 {
    let args = args.iter().map(|a| term::int(*a)).collect();
    let r = rpc(node, "Elixir.KV.Calc", fun, args).unwrap();
    term::as_int(&r).unwrap_or_else(|| panic!("{fun}: {r:?}"))
}

/// The hover on the def head `def <fun>` of calc.ex as it is now.
fn def_hover(c: &mut LspClient, calc: &Path, fun: &str) -> String {
    let src = std::fs::read_to_string(calc).unwrap();
    let uri = format!("file://{}", calc.display());
    hover(c, &uri, after(&src, &format!("def {fun}")))
}

/// The count in a def hover (`**KV.Calc.add/2** — 12 calls since attach`).
fn count_in(h: &str) -> Option<i64> {
    let rest = h.split("** — ").nth(1)?;
    rest.split(' ').next()?.parse().ok()
}

/// Wait until the def hover of `fun` shows `want` calls; the hover.
fn wait_count(c: &mut LspClient, calc: &Path, fun: &str, want: i64) -> String {
    let mut last = String::new();
    let deadline = std::time::Instant::now() + LONG;
    loop {
        let h = def_hover(c, calc, fun);
        if count_in(&h) == Some(want) {
            return h;
        }
        if h != last {
            last = h;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{fun} never showed {want} calls; last hover: {last}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Counting is on (the hover shows a count): that count.
fn wait_counting(c: &mut LspClient, calc: &Path, fun: &str) -> i64 {
    wait_until(LONG, &format!("a count for {fun}"), || {
        count_in(&def_hover(c, calc, fun))
    })
}

/// The inlay hints of a file, as text.
fn hints(c: &mut LspClient, path: &Path) -> String {
    c.call(
        "textDocument/inlayHint",
        json!({"textDocument": {"uri": format!("file://{}", path.display())},
               "range": {"start": {"line": 0, "character": 0}, "end": {"line": 200, "character": 0}}}),
    )
    .to_string()
}

/// Edit `path` on disk and in the editor (the document follows), save, and return the
/// message the save ends with.
fn edit_and_save(c: &mut LspClient, path: &Path, edits: &[(&str, &str)], version: i32) -> String {
    for (from, to) in edits {
        edit_file(path, from, to);
    }
    let uri = format!("file://{}", path.display());
    let text = std::fs::read_to_string(path).unwrap();
    c.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": version}, "contentChanges": [{"text": text}]}),
    );
    let n = c.count("window/showMessage");
    c.notify(
        "textDocument/didSave",
        json!({"textDocument": {"uri": uri}}),
    );
    let v = c.wait_nth(LONG, "window/showMessage", n + 1);
    v["params"]["message"].as_str().unwrap_or("").to_string()
}

/// The functions of KV.Calc the node reports counts for ("add/2").
fn node_counts(node: &TestNode) -> Vec<String> {
    let mods = term::list(vec![term::module("KV.Calc")]);
    let r = rpc(node, "orrery_counts_v1", "counts", vec![mods]).unwrap();
    let Some(eetf::Term::Map(m)) = term::get(&r, "Elixir.KV.Calc")
        .and_then(|v| term::get(v, "counts"))
        .cloned()
    else {
        return vec![];
    };
    m.map
        .keys()
        .filter_map(|k| match term::as_tuple(k) {
            Some([f, a]) => Some(format!("{}/{}", term::as_atom(f)?, term::as_int(a)?)),
            _ => None,
        })
        .collect()
}

/// Rows of the guard's call count table (`None`: there is no such table).
fn count_rows(node: &TestNode) -> Option<i64> {
    let r = rpc(
        node,
        "ets",
        "info",
        vec![atom("orrery_guard_v1_counts"), atom("size")],
    )
    .unwrap();
    term::as_int(&r)
}

#[test]
fn counts_go_on_across_swaps_and_rollbacks_and_say_since_when_after_a_foreign_load() {
    let dir = support::fixture_copy("kv");
    let node = TestNode::start_named(
        dir.path(),
        &support::random_token("kvc"),
        &support::random_token("c"),
    );
    let before = health(&node);
    assert_eq!(call(&node, "add", &[1, 2]), 3); // loaded (interactive mode)
    let mut c = start(dir.path(), &node, &[]);
    let calc = dir.path().join("lib/kv/calc.ex");
    c.open(&calc);

    // Counted: the calls made once counting is on.
    let add0 = wait_counting(&mut c, &calc, "add");
    let dbl0 = wait_counting(&mut c, &calc, "double");
    for _ in 0..5 {
        call(&node, "add", &[1, 2]);
    }
    call(&node, "double", &[4]);
    call(&node, "double", &[5]);
    let h = wait_count(&mut c, &calc, "add", add0 + 5);
    assert!(h.contains("calls since attach"), "{h}");
    wait_count(&mut c, &calc, "double", dbl0 + 2);

    // A save that swaps the module (add changed, double renamed to triple; the nested
    // module, unchanged, is not loaded): add's count goes on, double drops out, triple
    // starts at 0.
    let msg = edit_and_save(
        &mut c,
        &calc,
        &[
            ("a + b", "a + b + 100"),
            ("def double(x) do\n    x * 2", "def triple(x) do\n    x * 3"),
        ],
        2,
    );
    assert!(msg.contains("swapped"), "{msg}");
    for _ in 0..3 {
        assert_eq!(call(&node, "add", &[1, 2]), 103);
    }
    let h = wait_count(&mut c, &calc, "add", add0 + 8);
    assert!(h.contains("since attach"), "{h}");
    let hint = hints(&mut c, &calc);
    // The label is the count, with the mean time after it once call times are in.
    let label = |n: i64, s: &str| {
        s.contains(&format!("\"{n} calls\"")) || s.contains(&format!("\"{n} calls ·"))
    };
    assert!(label(add0 + 8, &hint), "{hint}");
    let funs = node_counts(&node);
    assert!(
        funs.contains(&"add/2".to_string()) && !funs.contains(&"double/1".to_string()),
        "{funs:?}"
    );
    assert_eq!(call(&node, "triple", &[2]), 6);
    wait_count(&mut c, &calc, "triple", 1);
    // The code lens says the same.
    let lenses = c.call(
        "textDocument/codeLens",
        json!({"textDocument": {"uri": format!("file://{}", calc.display())}}),
    );
    assert!(label(add0 + 8, &lenses.to_string()), "{lenses}");

    // Rollback (the editor's text back too): add goes on from the sum, double is back
    // with the calls it had.
    let r = c.call(
        "workspace/executeCommand",
        json!({"command": "orrery.rollback", "arguments": ["KV.Calc"]}),
    );
    assert!(r.as_str().unwrap_or("").contains("rolled back"), "{r}");
    edit_file(&calc, "a + b + 100", "a + b");
    edit_file(
        &calc,
        "def triple(x) do\n    x * 3",
        "def double(x) do\n    x * 2",
    );
    let text = std::fs::read_to_string(&calc).unwrap();
    c.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": format!("file://{}", calc.display()), "version": 3},
               "contentChanges": [{"text": text}]}),
    );
    assert_eq!(call(&node, "add", &[1, 2]), 3);
    assert_eq!(call(&node, "add", &[1, 2]), 3);
    let h = wait_count(&mut c, &calc, "add", add0 + 10);
    assert!(h.contains("since attach"), "{h}");
    wait_count(&mut c, &calc, "double", dbl0 + 2);

    // A breakpoint (a debug session, `orrery dap`) loads instrumented code and, at
    // disconnect, the code back: the counts go on through both loads.
    let mut d = DapClient::start();
    d.attach_to(&node, dir.path(), json!({}));
    let line = text.lines().position(|l| l.contains("a + b")).unwrap() + 1;
    let bps = d.ok(
        "setBreakpoints",
        json!({"source": {"path": calc}, "breakpoints": [{"line": line, "condition": "a == 1000"}]}),
    );
    assert_eq!(bps["breakpoints"][0]["verified"], json!(true), "{bps}");
    assert_eq!(call(&node, "add", &[1, 2]), 3);
    wait_count(&mut c, &calc, "add", add0 + 11);
    d.ok("disconnect", json!({}));
    d.close_stdin();
    assert!(d.wait_exit(LONG), "orrery dap did not exit");
    assert_eq!(call(&node, "add", &[1, 2]), 3);
    wait_count(&mut c, &calc, "add", add0 + 12);

    // Someone else loads the module (here: its build, again): those counts cannot be
    // kept; the count starts again and says since when.
    let purged = rpc(&node, "code", "purge", vec![term::module("KV.Calc")]);
    assert!(purged.is_ok(), "{purged:?}");
    let loaded = rpc(&node, "code", "load_file", vec![term::module("KV.Calc")]).unwrap();
    assert!(
        matches!(term::as_tuple(&loaded), Some([m, _]) if term::is_atom(m, "module")),
        "{loaded:?}"
    );
    let h = wait_until(LONG, "the count restarted, since a time", || {
        c.call("orrery/status", Value::Null);
        let h = def_hover(&mut c, &calc, "add");
        (count_in(&h) == Some(0) && h.contains("calls since ") && !h.contains("since attach"))
            .then_some(h)
    });
    assert!(h.contains("loaded by something other than Orrery"), "{h}");
    call(&node, "add", &[1, 2]);
    wait_count(&mut c, &calc, "add", 1);
    let hint = hints(&mut c, &calc);
    assert!(hint.contains("1 call since "), "{hint}");

    assert!(count_rows(&node).is_some_and(|n| n > 0));
    c.shutdown();
    wait_pristine(&node, APPS, LONG);
    assert_eq!(count_rows(&node), None, "the counts table is left");
    assert_healthy(&node, &before);
}

/// `orrery lsp` SIGKILLed while counting, after swaps left bases on the node: the guard
/// switches the counting off and the table goes with it.
#[test]
fn lsp_killed_while_counting_leaves_no_pattern_nor_table() {
    let dir = support::fixture_copy("kv");
    let node = TestNode::start_named(
        dir.path(),
        &support::random_token("kvk"),
        &support::random_token("c"),
    );
    let before = health(&node);
    call(&node, "add", &[1, 2]);
    let mut c = start(dir.path(), &node, &[("ORRERY_GRACE_MS", "300")]);
    let calc = dir.path().join("lib/kv/calc.ex");
    c.open(&calc);
    let add0 = wait_counting(&mut c, &calc, "add");
    call(&node, "add", &[1, 2]);
    wait_count(&mut c, &calc, "add", add0 + 1);
    // An edit swapped in and the source saved back: the node runs its build again, with
    // the calls kept across both loads.
    let msg = edit_and_save(&mut c, &calc, &[("a + b", "a + b + 1")], 2);
    assert!(msg.contains("swapped"), "{msg}");
    assert_eq!(call(&node, "add", &[1, 2]), 4);
    let msg = edit_and_save(&mut c, &calc, &[("a + b + 1", "a + b")], 3);
    assert!(msg.contains("swapped"), "{msg}");
    assert_eq!(call(&node, "add", &[1, 2]), 3);
    wait_count(&mut c, &calc, "add", add0 + 3);
    assert!(count_rows(&node).is_some_and(|n| n > 0));
    unsafe {
        libc::kill(c.pid() as i32, libc::SIGKILL);
    }
    wait_pristine(&node, APPS, LONG);
    assert_eq!(count_rows(&node), None, "the counts table is left");
    assert_healthy(&node, &before);
}
