//! End-to-end: save → isolated compile → hot swap into real nodes, with state migration,
//! rollback, diagnostics, timeouts, clusters and external changes.

mod support;

use orrery::beam::term;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;
use support::lsp::LspClient;
use support::{rpc, wait_until, TestNode};

use support::{edit_file as edit, kv_add as add, kv_bucket_state as bucket_state};

const LONG: Duration = Duration::from_secs(90);

fn save(c: &mut LspClient, path: &Path) {
    c.notify(
        "textDocument/didSave",
        json!({"textDocument": {"uri": format!("file://{}", path.display())}}),
    );
}

/// The next showMessage after `after` seen so far.
fn next_message(c: &mut LspClient, after: usize) -> String {
    let v = c.wait_nth(LONG, "window/showMessage", after + 1);
    v["params"]["message"].as_str().unwrap_or("").to_string()
}

fn diagnostics_for(c: &LspClient, file: &str) -> Option<Value> {
    c.seen
        .iter()
        .rev()
        .find(|v| {
            v["method"] == "textDocument/publishDiagnostics"
                && v["params"]["uri"].as_str().unwrap_or("").ends_with(file)
        })
        .map(|v| v["params"]["diagnostics"].clone())
}

fn start(dir: &Path, node: &TestNode, extra: Value) -> LspClient {
    let mut c = LspClient::start(&[]);
    let mut opts = json!({"node": node.node, "cookie": node.cookie});
    if let (Some(o), Some(e)) = (opts.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    c.initialize(dir, opts);
    c.wait_status(LONG, "attach", |s| s["attached"] == json!(true));
    c
}

#[test]
fn save_swaps_rolls_back_and_reports_errors() {
    let dir = support::fixture_copy("kv");
    let node = TestNode::start_named(
        dir.path(),
        &support::random_token("kvr"),
        &support::random_token("c"),
    );
    let mut c = start(dir.path(), &node, json!({"compileTimeoutMs": 3000}));
    assert_eq!(add(&node), 3);
    let calc = dir.path().join("lib/kv/calc.ex");
    c.open(&calc);

    // Edit + save changes behaviour on the node.
    edit(&calc, "a + b", "a + b + 100");
    let n = c.count("window/showMessage");
    save(&mut c, &calc);
    let msg = next_message(&mut c, n);
    assert!(
        msg.contains("KV.Calc") && msg.contains("swapped on 1 node"),
        "{msg}"
    );
    assert_eq!(add(&node), 103);
    // The build is kept honest: the new beam is where mix puts it.
    let beam = std::fs::read(
        dir.path()
            .join("_build/dev/lib/kv/ebin/Elixir.KV.Calc.beam"),
    )
    .unwrap();
    assert!(!beam.is_empty());
    let audit = std::fs::read_to_string(dir.path().join(".orrery/audit.log")).unwrap();
    assert!(
        audit.contains("\"action\":\"hot_swap\"") && audit.contains("Elixir.KV.Calc"),
        "{audit}"
    );

    // A compile error publishes diagnostics and the old code keeps serving.
    edit(&calc, "a + b + 100", "a + b +");
    save(&mut c, &calc);
    let diags = wait_until(LONG, "error diagnostics", || {
        let _ = c.call("orrery/status", Value::Null);
        diagnostics_for(&c, "calc.ex").filter(|d| !d.as_array().unwrap().is_empty())
    });
    assert_eq!(diags[0]["severity"], 1, "{diags}");
    assert!(
        diags[0]["range"]["start"]["line"].as_u64().unwrap() >= 4,
        "{diags}"
    );
    assert_eq!(add(&node), 103);
    // Fixing it clears them.
    edit(&calc, "a + b +", "a + b + 1000");
    let n = c.count("window/showMessage");
    save(&mut c, &calc);
    let msg = next_message(&mut c, n);
    assert!(msg.contains("swapped"), "{msg}");
    assert_eq!(add(&node), 1003);
    assert_eq!(diagnostics_for(&c, "calc.ex").unwrap(), json!([]));

    // A lens offers the rollback, and hover says which version runs.
    let calc_uri = format!("file://{}", calc.display());
    let lenses = c.call(
        "textDocument/codeLens",
        json!({"textDocument": {"uri": calc_uri}}),
    );
    assert!(lenses.to_string().contains("Roll back to"), "{lenses}");
    let hover = c.call(
        "textDocument/hover",
        json!({"textDocument": {"uri": calc_uri}, "position": {"line": 0, "character": 14}}),
    );
    assert!(hover.to_string().contains("swapped in at"), "{hover}");

    // Rollback restores the previous behaviour, twice.
    let r = c.call(
        "workspace/executeCommand",
        json!({"command": "orrery.rollback", "arguments": ["KV.Calc"]}),
    );
    assert!(r.as_str().unwrap().contains("rolled back"), "{r}");
    assert_eq!(add(&node), 103);
    c.call(
        "workspace/executeCommand",
        json!({"command": "orrery.rollback", "arguments": ["KV.Calc"]}),
    );
    assert_eq!(add(&node), 3);
    let e = c.request(
        "workspace/executeCommand",
        json!({"command": "orrery.rollback", "arguments": ["KV.Calc"]}),
        LONG,
    );
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no previous version"),
        "{e}"
    );

    // A macro that never finishes is stopped by the timeout; the target is untouched.
    let looping = dir.path().join("lib/kv/loop.ex");
    std::fs::write(
        &looping,
        "defmodule KV.Loop do\n  Process.sleep(:infinity)\nend\n",
    )
    .unwrap();
    c.open(&looping);
    save(&mut c, &looping);
    let diags = wait_until(LONG, "timeout diagnostic", || {
        let _ = c.call("orrery/status", Value::Null);
        diagnostics_for(&c, "loop.ex").filter(|d| !d.as_array().unwrap().is_empty())
    });
    assert!(diags.to_string().contains("longer than"), "{diags}");
    let loaded = rpc(
        &node,
        "code",
        "is_loaded",
        vec![term::atom("Elixir.KV.Loop")],
    )
    .unwrap();
    assert!(term::is_atom(&loaded, "false"));
    // And the compile node came back for the next save.
    std::fs::remove_file(&looping).unwrap();
    edit(&calc, "a + b + 1000", "a + b + 7");
    let n = c.count("window/showMessage");
    save(&mut c, &calc);
    assert!(next_message(&mut c, n).contains("swapped"));
    assert_eq!(add(&node), 10);
    assert!(c.shutdown().success());
}

#[test]
fn genserver_state_survives_and_code_change_runs_or_rolls_back() {
    let dir = support::fixture_copy("kv");
    let node = TestNode::start_named(
        dir.path(),
        &support::random_token("kvg"),
        &support::random_token("c"),
    );
    let mut c = start(dir.path(), &node, json!({}));
    rpc(
        &node,
        "Elixir.KV.Bucket",
        "put",
        vec![term::atom("a"), term::int(1)],
    )
    .unwrap();
    let bucket = dir.path().join("lib/kv/bucket.ex");
    c.open(&bucket);

    // A new version with code_change/3 that migrates the state.
    edit(
        &bucket,
        "  @impl true\n  def init(",
        "  @impl true\n  def code_change(_old, state, _extra), do: {:ok, Map.put(state, :migrated, true)}\n\n  @impl true\n  def init(",
    );
    let n = c.count("window/showMessage");
    save(&mut c, &bucket);
    let msg = next_message(&mut c, n);
    assert!(msg.contains("1 process migrated"), "{msg}");
    assert_eq!(bucket_state(&node), "%{a: 1, migrated: true}");

    // A code_change/3 that raises: rolled back, the process is alive and resumed.
    edit(
        &bucket,
        "{:ok, Map.put(state, :migrated, true)}",
        "raise \"no migration for you\"",
    );
    let n = c.count("window/showMessage");
    save(&mut c, &bucket);
    let msg = next_message(&mut c, n);
    assert!(
        msg.contains("code_change/3 failed") && msg.contains("restored"),
        "{msg}"
    );
    assert_eq!(bucket_state(&node), "%{a: 1, migrated: true}");
    rpc(
        &node,
        "Elixir.KV.Bucket",
        "put",
        vec![term::atom("b"), term::int(2)],
    )
    .unwrap();
    assert_eq!(bucket_state(&node), "%{a: 1, b: 2, migrated: true}");
    assert!(c.shutdown().success());
}

#[test]
fn files_changed_outside_the_editor_are_swapped() {
    let dir = support::fixture_copy("kv");
    let node = TestNode::start_named(
        dir.path(),
        &support::random_token("kvw"),
        &support::random_token("c"),
    );
    let mut c = start(dir.path(), &node, json!({}));
    assert_eq!(add(&node), 3);
    // Like `git checkout`: the file changes on disk, not in the editor.
    edit(&dir.path().join("lib/kv/calc.ex"), "a + b", "a * b");
    wait_until(LONG, "the external change to be swapped", || {
        let _ = c.call("orrery/status", Value::Null);
        (add(&node) == 2).then_some(())
    });
    assert!(c.shutdown().success());
}

#[test]
fn writes_refused_when_not_allowed() {
    let dir = support::fixture_copy("kv");
    let node = TestNode::start_named(
        dir.path(),
        &support::random_token("kvn"),
        &support::random_token("c"),
    );
    let mut c = start(dir.path(), &node, json!({"allowWrites": false}));
    let calc = dir.path().join("lib/kv/calc.ex");
    c.open(&calc);
    edit(&calc, "a + b", "a - b");
    let n = c.count("window/showMessage");
    save(&mut c, &calc);
    let msg = next_message(&mut c, n);
    assert!(msg.contains("allowWrites"), "{msg}");
    assert_eq!(add(&node), 3);
    let e = c.request(
        "workspace/executeCommand",
        json!({"command": "orrery.rollback", "arguments": ["KV.Calc"]}),
        LONG,
    );
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("allowWrites"),
        "{e}"
    );
    // Tracing calls sets trace patterns: refused too.
    let e = c.request(
        "workspace/executeCommand",
        json!({"command": "orrery.traceCalls", "arguments": ["KV.Calc.add/2"]}),
        LONG,
    );
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("allowWrites"),
        "{e}"
    );
    assert!(c.shutdown().success());
}

fn call_text(node: &TestNode, module: &str, fun: &str) -> String {
    let r = rpc(node, module, fun, vec![]).unwrap();
    orrery::beam::pretty::to_elixir_compact(&r, 200)
}

#[test]
fn users_of_changed_macros_and_structs_are_recompiled_or_named_stale() {
    let dir = support::fixture_copy("kv");
    // A module with a struct and a macro, and a user of both (compile-time uses).
    let shape = dir.path().join("lib/kv/shape.ex");
    std::fs::write(
        &shape,
        "defmodule KV.Shape do\n  defstruct sides: 3\n\n  defmacro label, do: \"triangle\"\nend\n",
    )
    .unwrap();
    let geometry = dir.path().join("lib/kv/geometry.ex");
    std::fs::write(
        &geometry,
        "defmodule KV.Geometry do\n  require KV.Shape\n\n  def default_sides, do: %KV.Shape{}.sides\n  def label, do: KV.Shape.label()\n  def five, do: %KV.Shape{sides: 5}\nend\n",
    )
    .unwrap();
    let st = std::process::Command::new("mix")
        .arg("compile")
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let node = TestNode::start_named(
        dir.path(),
        &support::random_token("kvd"),
        &support::random_token("c"),
    );
    let mut c = start(dir.path(), &node, json!({}));
    assert_eq!(call_text(&node, "Elixir.KV.Geometry", "default_sides"), "3");
    assert_eq!(
        call_text(&node, "Elixir.KV.Geometry", "label"),
        "\"triangle\""
    );
    c.open(&shape);

    // The user is recompiled against the new struct and macro, in the same swap.
    edit(&shape, "sides: 3", "sides: 4");
    edit(&shape, "\"triangle\"", "\"square\"");
    let n = c.count("window/showMessage");
    save(&mut c, &shape);
    let msg = next_message(&mut c, n);
    // KV.Shape is loaded by nobody (its struct and macro are used at compile time): the
    // code server loads it from `_build`, which mix brought up to the source.
    assert!(msg.contains("KV.Geometry swapped on 1 node"), "{msg}");
    assert!(!msg.contains("stale"), "{msg}");
    assert_eq!(call_text(&node, "Elixir.KV.Geometry", "default_sides"), "4");
    assert_eq!(
        call_text(&node, "Elixir.KV.Geometry", "label"),
        "\"square\""
    );

    // A change the user does not compile against: the module itself is swapped, the user
    // is named stale (and keeps its previous code), its error is a diagnostic in its file.
    edit(&shape, "defstruct sides: 4", "defstruct corners: 4");
    edit(&shape, "\"square\"", "\"box\"");
    let n = c.count("window/showMessage");
    save(&mut c, &shape);
    let msg = next_message(&mut c, n);
    assert!(msg.contains("KV.Shape swapped on 1 node"), "{msg}");
    assert!(
        msg.contains("stale") && msg.contains("KV.Geometry (lib/kv/geometry.ex"),
        "{msg}"
    );
    assert_eq!(
        call_text(&node, "Elixir.KV.Geometry", "label"),
        "\"square\""
    );
    let r = rpc(&node, "Elixir.KV.Shape", "__struct__", vec![]).unwrap();
    assert!(
        orrery::beam::pretty::to_elixir_compact(&r, 200).contains("corners: 4"),
        "{r:?}"
    );
    let diags = diagnostics_for(&c, "geometry.ex").unwrap();
    assert!(diags.to_string().contains("sides"), "{diags}");
    assert!(c.shutdown().success());
}

/// The part of `text` a diagnostic's range covers (a one-line range).
fn covered(text: &str, d: &Value) -> String {
    let (s, e) = (&d["range"]["start"], &d["range"]["end"]);
    let line = s["line"].as_u64().unwrap() as usize;
    assert_eq!(s["line"], e["line"], "{d}");
    let l: Vec<u16> = text.lines().nth(line).unwrap().encode_utf16().collect();
    let from = s["character"].as_u64().unwrap() as usize;
    let to = (e["character"].as_u64().unwrap() as usize).min(l.len());
    String::from_utf16(&l[from..to]).unwrap()
}

/// A compile error and a warning: with Elixir 1.15+ (`Code.with_diagnostics/2`, the
/// compiler's spans) their ranges cover exactly the text they are about; with 1.14 (lines
/// only) the line's text.
#[test]
fn diagnostics_have_ranges_covering_their_text() {
    let dir = support::fixture_copy("kv");
    let node = TestNode::start_named(
        dir.path(),
        &support::random_token("kvd"),
        &support::random_token("c"),
    );
    let spans = support::check::eval_text(&node, "function_exported?(Code, :with_diagnostics, 2)")
        == "true";
    let mut c = start(dir.path(), &node, json!({}));
    let calc = dir.path().join("lib/kv/calc.ex");
    c.open(&calc);
    edit(&calc, "    a + b\n", "    a + b + undefined_thing\n");
    edit(&calc, "    x * 2\n", "    unused = x * 3\n    x * 2\n");
    let text = std::fs::read_to_string(&calc).unwrap();
    save(&mut c, &calc);
    let diags = wait_until(LONG, "an error and a warning", || {
        let _ = c.call("orrery/status", Value::Null);
        diagnostics_for(&c, "calc.ex").filter(|d| {
            let d = d.as_array().unwrap();
            d.iter().any(|x| x["severity"] == 1) && d.iter().any(|x| x["severity"] == 2)
        })
    });
    let list = diags.as_array().unwrap();
    let about = |word: &str, severity: u64| {
        list.iter()
            .find(|d| d["severity"] == severity && d["message"].as_str().unwrap().contains(word))
            .unwrap_or_else(|| panic!("no diagnostic about {word}: {diags}"))
    };
    let error = about("undefined_thing", 1);
    let warning = about("unused", 2);
    // Both on their lines (0-based): `a + b + ..` is line 4, `unused = ..` line 8.
    assert_eq!(error["range"]["start"]["line"], 4, "{error}");
    assert_eq!(warning["range"]["start"]["line"], 8, "{warning}");
    if spans {
        assert_eq!(covered(&text, error), "undefined_thing", "{error}");
        assert_eq!(covered(&text, warning), "unused", "{warning}");
    } else {
        assert_eq!(covered(&text, error), "a + b + undefined_thing", "{error}");
        assert_eq!(covered(&text, warning), "unused = x * 3", "{warning}");
    }
    assert!(c.shutdown().success());
}
