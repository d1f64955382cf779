//! End-to-end: live completion, docs on hover, and writes to live state (audited,
//! undoable, refused without `allowWrites`), with the real `orrery lsp` binary against
//! real nodes of the kv fixture.

mod support;

use serde_json::{json, Value};
use std::time::Duration;
use support::lsp::{after, hover, start_attached as start, LspClient};
use support::TestNode;

const LONG: Duration = Duration::from_secs(90);

/// A workspace holding a copy of the fixture's sources (so `.orrery/audit.log` lands in a
/// temp dir), plus a scratch file with half-typed calls.
fn workspace(node: &TestNode) -> tempfile::TempDir {
    let dir = support::lib_copy(node);
    std::fs::write(dir.path().join("lib/kv/scratch.ex"), SCRATCH).unwrap();
    dir
}

const SCRATCH: &str = "defmodule KV.Scratch do
  alias KV.Calc

  def g do
    Enum.map([1], fn x -> x end)
    :ets.new(:scratch, [])
  end

  def f do
    KV.Calc.
    Enum.
    Calc.
    :et
    KV.
  end
end
";

/// End of the line that is exactly `text`.
fn eol(src: &str, text: &str) -> (u32, u32) {
    src.lines()
        .enumerate()
        .find_map(|(i, l)| (l == text).then_some((i as u32, l.len() as u32)))
        .unwrap_or_else(|| panic!("no line {text:?}"))
}

fn labels(r: &Value) -> Vec<String> {
    r["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {r}"))
        .iter()
        .map(|i| i["label"].as_str().unwrap().to_string())
        .collect()
}

fn complete(c: &mut LspClient, uri: &str, (line, character): (u32, u32)) -> Value {
    c.call(
        "textDocument/completion",
        json!({"textDocument": {"uri": uri}, "position": {"line": line, "character": character}}),
    )
}

fn command(c: &mut LspClient, name: &str, args: Value) -> Value {
    c.request(
        "workspace/executeCommand",
        json!({"command": name, "arguments": [args]}),
        LONG,
    )
}

fn ok(r: &Value) -> &Value {
    assert!(r.get("error").is_none(), "command failed: {r}");
    &r["result"]
}

fn err(r: &Value) -> String {
    r["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error: {r}"))
        .to_string()
}

fn state(c: &mut LspClient) -> String {
    let st = c.call("orrery/state", json!({"target": "KV.Bucket"}));
    st["processes"][0]["state"].as_str().unwrap().to_string()
}

fn kv_rows(c: &mut LspClient) -> (i64, String) {
    let ets = c.call("orrery/ets", json!({"tables": [":kv_table"], "rows": 20}));
    (
        ets["tables"][0]["size"].as_i64().unwrap(),
        ets["tables"][0]["rows"].as_str().unwrap().to_string(),
    )
}

#[test]
fn completion_and_docs_come_from_the_live_node() {
    let node = TestNode::start("kv");
    let ws = workspace(&node);
    let mut c = start(&node, ws.path(), json!({}));
    let scratch = ws.path().join("lib/kv/scratch.ex");
    let uri = c.open(&scratch);

    // After `KV.Calc.`: the module's live exports with arity.
    let r = complete(&mut c, &uri, eol(SCRATCH, "    KV.Calc."));
    let l = labels(&r);
    for want in ["add/2", "double/1", "classify/1"] {
        assert!(l.contains(&want.to_string()), "{want} missing: {l:?}");
    }
    assert!(!l.iter().any(|x| x.starts_with("module_info")), "{l:?}");
    // Nested module offered as a segment.
    assert!(l.contains(&"Helpers".to_string()), "{l:?}");

    // After `Enum.`: with docs and specs as documentation.
    let r = complete(&mut c, &uri, eol(SCRATCH, "    Enum."));
    let l = labels(&r);
    assert!(l.contains(&"map/2".to_string()), "{l:?}");
    assert!(l.len() <= 200, "unbounded: {}", l.len());
    let map = r["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["label"] == "map/2")
        .unwrap();
    let doc = map["documentation"]["value"].as_str().unwrap();
    assert!(doc.contains("Enum.map(enumerable, fun)"), "{doc}");
    assert!(doc.contains("@spec map("), "{doc}");
    assert!(doc.contains("Returns a list"), "{doc}");
    assert_eq!(map["textEdit"]["newText"], "map");

    // Through `alias KV.Calc`.
    let l = labels(&complete(&mut c, &uri, eol(SCRATCH, "    Calc.")));
    assert!(l.contains(&"add/2".to_string()), "{l:?}");
    // `:et` completes Erlang modules; `KV.` completes submodules.
    let l = labels(&complete(&mut c, &uri, eol(SCRATCH, "    :et")));
    assert!(l.contains(&"ets".to_string()), "{l:?}");
    let l = labels(&complete(&mut c, &uri, eol(SCRATCH, "    KV.")));
    for want in ["Bucket", "Calc", "Registry"] {
        assert!(l.contains(&want.to_string()), "{want} missing: {l:?}");
    }

    // Hover on a remote call shows the live docs and specs.
    let (line, col) = after(SCRATCH, "Enum.ma");
    let text = hover(&mut c, &uri, (line, col));
    assert!(text.contains("Enum.map(enumerable, fun)"), "{text}");
    assert!(text.contains("@spec map("), "{text}");
    assert!(text.contains("Returns a list where each element"), "{text}");
    assert!(text.contains(&node.node), "{text}");
    // KV.Calc.add has no @doc in the fixture: the signature from the docs chunk.
    let client = ws.path().join("lib/kv/client.ex");
    let client_src = std::fs::read_to_string(&client).unwrap();
    let curi = c.open(&client);
    let text = hover(&mut c, &curi, after(&client_src, "Calc.ad"));
    assert!(text.contains("KV.Calc.add(a, b)"), "{text}");
    // An Erlang module: its signature (and spec when the node has debug info).
    let text = hover(&mut c, &uri, after(SCRATCH, ":ets.ne"));
    assert!(text.contains(":ets.new"), "{text}");
    // `KV` in `defmodule KV.Scratch` is a namespace (no module `KV`): what is in it.
    let text = hover(&mut c, &uri, (0, 11));
    assert!(text.contains("namespace"), "{text}");
    assert!(text.contains("`KV.Calc`"), "{text}");
    assert!(!text.contains("not loaded"), "{text}");

    assert!(c.shutdown().success());
}

#[test]
fn completion_falls_back_to_the_index_when_detached() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib/kv");
    std::fs::create_dir_all(&lib).unwrap();
    let fixture = support::repo().join("tests/fixtures/kv/lib/kv");
    for e in std::fs::read_dir(fixture).unwrap().flatten() {
        std::fs::copy(e.path(), lib.join(e.file_name())).unwrap();
    }
    std::fs::write(lib.join("scratch.ex"), SCRATCH).unwrap();
    let mut c = LspClient::start(&[]);
    let nowhere = format!("nobody{}@{}", rand::random::<u32>(), support::hostname());
    c.initialize(dir.path(), json!({"node": nowhere, "cookie": "x"}));
    c.wait_seen(LONG, "indexing", |v| {
        v["params"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("indexed"))
    });
    let uri = c.open(&lib.join("scratch.ex"));
    let l = labels(&complete(&mut c, &uri, eol(SCRATCH, "    KV.Calc.")));
    assert!(l.contains(&"add/2".to_string()), "{l:?}");
    assert!(l.contains(&"double/1".to_string()), "{l:?}");
    let l = labels(&complete(&mut c, &uri, eol(SCRATCH, "    KV.")));
    assert!(l.contains(&"Bucket".to_string()), "{l:?}");
    // Writes say why they cannot happen.
    let e = err(&command(
        &mut c,
        "orrery.replaceState",
        json!({"target": "KV.Bucket", "expression": "state"}),
    ));
    assert!(e.contains("not attached") || e.contains("attaching"), "{e}");
    assert!(c.shutdown().success());
}

#[test]
fn state_and_ets_writes_are_audited_and_undoable() {
    let node = TestNode::start("kv");
    let ws = workspace(&node);
    let mut c = start(&node, ws.path(), json!({"allowWrites": true}));
    let log = ws.path().join(".orrery/audit.log");

    // Replace the state; the audit line is there with the backup.
    let r = command(
        &mut c,
        "orrery.replaceState",
        json!({"target": "KV.Bucket", "expression": "Map.put(state, :a, 1)"}),
    );
    assert_eq!(ok(&r)["after"], "%{a: 1}", "{r}");
    assert_eq!(state(&mut c), "%{a: 1}");
    let audit = std::fs::read_to_string(&log).unwrap();
    let line: Value = serde_json::from_str(audit.lines().last().unwrap()).unwrap();
    assert_eq!(line["action"], "replace_state");
    assert_eq!(line["target"], "KV.Bucket");
    assert_eq!(line["node"], json!(node.node));
    assert_eq!(line["before"], "%{}");
    assert_eq!(line["after"], "%{a: 1}");
    assert!(
        line["detail"].as_str().unwrap().contains("backup: %{}"),
        "{line}"
    );
    assert!(!audit.contains(&node.cookie));

    // Bad expressions: a clear error, and the state stays as it was.
    for (expr, want) in [
        ("Map.put(state, :b", "TokenMissingError"),
        ("raise \"boom\"", "boom"),
        ("state.nokey", "KeyError"),
        ("Process.sleep(60_000)", "stopped"),
    ] {
        let e = err(&command(
            &mut c,
            "orrery.replaceState",
            json!({"target": "KV.Bucket", "expression": expr}),
        ));
        assert!(e.contains(want), "{expr}: {e}");
        assert!(e.contains("nothing was changed"), "{expr}: {e}");
        assert_eq!(state(&mut c), "%{a: 1}", "{expr} changed the state");
    }
    let e = err(&command(
        &mut c,
        "orrery.replaceState",
        json!({"target": "KV.Nope", "expression": "state"}),
    ));
    assert!(e.contains("no such process"), "{e}");

    // Undo puts the previous state back.
    let r = command(&mut c, "orrery.undo", json!({}));
    assert_eq!(ok(&r)["state"], "%{}", "{r}");
    assert_eq!(state(&mut c), "%{}");

    // ETS: insert, delete, undo both.
    assert_eq!(kv_rows(&mut c).0, 2);
    ok(&command(
        &mut c,
        "orrery.etsInsert",
        json!({"table": ":kv_table", "row": "{:gamma, 3}"}),
    ));
    let (size, rows) = kv_rows(&mut c);
    assert_eq!(size, 3, "{rows}");
    assert!(rows.contains("gamma: 3"), "{rows}");
    ok(&command(
        &mut c,
        "orrery.etsDelete",
        json!({"table": "kv_table", "key": ":alpha"}),
    ));
    let (size, rows) = kv_rows(&mut c);
    assert_eq!(size, 2, "{rows}");
    assert!(!rows.contains("alpha"), "{rows}");
    let e = err(&command(
        &mut c,
        "orrery.etsDelete",
        json!({"table": ":kv_table", "key": ":nope"}),
    ));
    assert!(e.contains("no row with key :nope"), "{e}");
    let e = err(&command(
        &mut c,
        "orrery.etsInsert",
        json!({"table": ":kv_table", "row": ":not_a_tuple"}),
    ));
    assert!(e.contains("must be a tuple"), "{e}");
    let e = err(&command(
        &mut c,
        "orrery.etsInsert",
        json!({"table": ":no_such_table", "row": "{1}"}),
    ));
    assert!(e.contains("no ETS table"), "{e}");
    ok(&command(&mut c, "orrery.undo", json!({})));
    let (size, rows) = kv_rows(&mut c);
    assert_eq!(size, 3, "{rows}");
    assert!(rows.contains("alpha: 1"), "{rows}");
    ok(&command(&mut c, "orrery.undo", json!({})));
    let (size, rows) = kv_rows(&mut c);
    assert_eq!(size, 2, "{rows}");
    assert!(!rows.contains("gamma"), "{rows}");

    // A message is sent (and audited), but cannot be taken back.
    let r = command(
        &mut c,
        "orrery.sendMessage",
        json!({"target": "KV.Registry", "message": "{:orrery_test, 1}"}),
    );
    assert_eq!(ok(&r)["sent"], "{:orrery_test, 1}");
    let e = err(&command(&mut c, "orrery.undo", json!({})));
    assert!(e.contains("cannot be taken back"), "{e}");
    let e = err(&command(&mut c, "orrery.undo", json!({})));
    assert!(e.contains("nothing to undo"), "{e}");

    let audit = std::fs::read_to_string(&log).unwrap();
    let all: Vec<String> = audit
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["action"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    // Each evaluation of user code is audited before it runs (none for a target that
    // names no process: it is looked up first).
    assert_eq!(all[..2], ["eval", "replace_state"], "{audit}");
    assert_eq!(all.iter().filter(|a| *a == "eval").count(), 10, "{audit}");
    let actions: Vec<&String> = all.iter().filter(|a| *a != "eval").collect();
    assert_eq!(
        actions,
        [
            "replace_state",
            "undo_replace_state",
            "ets_insert",
            "ets_delete",
            "undo_ets",
            "undo_ets",
            "send"
        ],
        "{audit}"
    );
    assert!(c.shutdown().success());
}

#[test]
fn writes_are_refused_without_allow_writes() {
    let node = TestNode::start("kv");
    let ws = workspace(&node);
    let mut c = start(&node, ws.path(), json!({"allowWrites": false}));
    for (cmd, args) in [
        (
            "orrery.replaceState",
            json!({"target": "KV.Bucket", "expression": "Map.put(state, :a, 1)"}),
        ),
        (
            "orrery.etsInsert",
            json!({"table": ":kv_table", "row": "{:x, 1}"}),
        ),
        (
            "orrery.etsDelete",
            json!({"table": ":kv_table", "key": ":alpha"}),
        ),
        (
            "orrery.sendMessage",
            json!({"target": "KV.Bucket", "message": ":hi"}),
        ),
        ("orrery.undo", json!({})),
    ] {
        let e = err(&command(&mut c, cmd, args));
        assert!(e.contains("allowWrites"), "{cmd}: {e}");
        assert!(e.contains(".orrery.toml"), "{cmd}: says how to enable: {e}");
    }
    assert_eq!(state(&mut c), "%{}");
    assert_eq!(kv_rows(&mut c).0, 2);
    assert!(!ws.path().join(".orrery/audit.log").exists());
    assert!(c.shutdown().success());
}

#[test]
fn a_genserver_with_a_megabyte_of_state_still_hovers() {
    let node = TestNode::start("kv");
    let ws = workspace(&node);
    let mut c = start(&node, ws.path(), json!({"allowWrites": true}));
    // About 1 MB of state, put there through the node.
    let r = command(
        &mut c,
        "orrery.replaceState",
        json!({"target": "KV.Bucket",
               "expression": "Map.new(1..10_000, fn i -> {i, String.duplicate(\"x\", 100)} end)"}),
    );
    ok(&r);
    let bucket = ws.path().join("lib/kv/bucket.ex");
    let uri = c.open(&bucket);
    let text = support::wait_until(LONG, "hover with the big state", || {
        let t = hover(&mut c, &uri, (0, 15));
        t.contains(" => \"xxx").then_some(t)
    });
    assert!(text.contains('…'), "not truncated: {text}");
    assert!(text.len() < 12_000, "hover grew to {} bytes", text.len());
    // The full view is bounded too.
    let st = c.call("orrery/state", json!({"target": "KV.Bucket"}));
    let s = st["processes"][0]["state"].as_str().unwrap();
    assert!(s.len() < 400_000, "state view grew to {} bytes", s.len());
    // Hover keeps answering while the refresh reads the big state.
    for _ in 0..20 {
        let t = hover(&mut c, &uri, (0, 15));
        assert!(t.contains("KV.Bucket"), "{t}");
    }
    assert!(c.shutdown().success());
}
