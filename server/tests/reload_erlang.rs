//! Hot swap of Erlang sources (`src/*.erl` of an umbrella app, headers through the
//! sources that include them), over the orchard fixture: an unchanged save is mix's
//! build, an edit changes the node, errors are diagnostics and change nothing, going back
//! runs mix's build again, the watcher swaps files changed outside the editor.

mod support;

use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;
use support::check::changed_modules;
use support::check::{assert_healthy, eval_text, health, wait_pristine};
use support::lsp::{save_and_wait, start_attached, LspClient};
use support::{edit_file as edit, wait_until};

const LONG: Duration = Duration::from_secs(90);
const APPS: &[&str] = &["Elixir.Store", "Elixir.Web", "store_"];

/// Save `path` (didSave) that does not compile: the first non-empty diagnostics published
/// for a file ending in `file` after the save.
fn save_failing(c: &mut LspClient, path: &Path, file: &str) -> Value {
    let n = c.seen.len();
    c.notify(
        "textDocument/didSave",
        json!({"textDocument": {"uri": format!("file://{}", path.display())}}),
    );
    wait_until(LONG, "error diagnostics", || {
        let _ = c.call("orrery/status", Value::Null);
        c.seen[n..]
            .iter()
            .rev()
            .find(|v| {
                v["method"] == "textDocument/publishDiagnostics"
                    && v["params"]["uri"].as_str().unwrap_or("").ends_with(file)
            })
            .map(|v| v["params"]["diagnostics"].clone())
            .filter(|d| d.as_array().is_some_and(|a| !a.is_empty()))
    })
}

/// The last diagnostics published for a file ending in `file`.
fn diagnostics_for(c: &LspClient, file: &str) -> Value {
    c.seen
        .iter()
        .rev()
        .find(|v| {
            v["method"] == "textDocument/publishDiagnostics"
                && v["params"]["uri"].as_str().unwrap_or("").ends_with(file)
        })
        .map(|v| v["params"]["diagnostics"].clone())
        .unwrap_or(Value::Null)
}

/// 0-based line of the first line of `path` containing `needle`.
fn line_of(path: &Path, needle: &str) -> u64 {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .position(|l| l.contains(needle))
        .unwrap() as u64
}

#[test]
fn erlang_sources_and_headers_swap_report_errors_and_come_back_to_the_build() {
    let (dir, node) = support::orchard();
    let before = health(&node);
    let mut c = start_attached(&node, dir.path(), json!({}));
    let store = dir.path().join("apps/store");
    let hash = store.join("src/store_hash.erl");
    let ring = store.join("src/store_ring.erl");
    let header = store.join("include/store_hash.hrl");
    // Open in the editor: only didSave compiles them (the watcher leaves them alone).
    c.open(&hash);
    c.open(&header);
    let (hash_src, header_src, ring_src) = (
        std::fs::read_to_string(&hash).unwrap(),
        std::fs::read_to_string(&header).unwrap(),
        std::fs::read_to_string(&ring).unwrap(),
    );
    let range = || eval_text(&node, ":store_hash.range()");
    let salt = || eval_text(&node, ":store_ring.salt()");
    assert_eq!(range(), "1000");

    // Unchanged: the same code as mix's build (the erlc_options macro, the header).
    let msg = save_and_wait(&mut c, &hash);
    assert!(
        msg.contains(":store_hash: compiled; the node already runs this code"),
        "{msg}"
    );

    // An edit changes the node; a warning is a diagnostic on its line.
    edit(
        &hash,
        "range() -> ?HASH_RANGE.",
        "range() -> ?HASH_RANGE + 1.\n\nunused() -> ok.",
    );
    let msg = save_and_wait(&mut c, &hash);
    assert!(msg.contains(":store_hash swapped on 1 node"), "{msg}");
    assert_eq!(range(), "1001");
    assert_eq!(eval_text(&node, ":store_hash.hash(:plums) < 1001"), "true");
    let diags = diagnostics_for(&c, "store_hash.erl");
    assert_eq!(diags[0]["severity"], 2, "{diags}");
    assert!(
        diags[0]["message"].as_str().unwrap().contains("unused/0"),
        "{diags}"
    );
    assert_eq!(
        diags[0]["range"]["start"]["line"],
        line_of(&hash, "unused() ->"),
        "{diags}"
    );

    // A compile error: an error diagnostic on its line, the node keeps what it runs.
    edit(&hash, "?HASH_RANGE + 1.", "?HASH_RANGE + .");
    let diags = save_failing(&mut c, &hash, "store_hash.erl");
    assert_eq!(diags[0]["severity"], 1, "{diags}");
    assert_eq!(
        diags[0]["range"]["start"]["line"],
        line_of(&hash, "range() ->"),
        "{diags}"
    );
    assert_eq!(range(), "1001");

    // Back to the source mix built: the node runs mix's build again, diagnostics clear.
    std::fs::write(&hash, &hash_src).unwrap();
    let msg = save_and_wait(&mut c, &hash);
    assert!(msg.contains(":store_hash swapped on 1 node"), "{msg}");
    assert_eq!(diagnostics_for(&c, "store_hash.erl"), json!([]));
    assert_eq!(
        changed_modules(&node, &["store_hash"]),
        Vec::<String>::new()
    );
    assert_eq!(range(), "1000");

    // A header: the sources of its app that include it (-include, -include_lib).
    edit(&header, "<<\"orchard\">>", "<<\"orchard 2\">>");
    let msg = save_and_wait(&mut c, &header);
    // :store_ring is loaded by nobody yet: the code server loads it from `_build`, which
    // mix brought up to the header.
    assert!(
        msg.contains(":store_hash") && msg.contains("swapped on 1 node"),
        "{msg}"
    );
    assert_eq!(salt(), "\"orchard 2\"");

    // A broken header: the error is on the header, nothing changes.
    edit(&header, "<<\"orchard 2\">>).", "<<\"orchard 3\">>.");
    let diags = save_failing(&mut c, &header, "store_hash.hrl");
    assert_eq!(diags[0]["severity"], 1, "{diags}");
    assert_eq!(salt(), "\"orchard 2\"");

    // Back: both run mix's build again.
    std::fs::write(&header, &header_src).unwrap();
    let msg = save_and_wait(&mut c, &header);
    assert!(
        msg.contains(":store_hash, :store_ring swapped on 1 node"),
        "{msg}"
    );
    assert_eq!(diagnostics_for(&c, "store_hash.hrl"), json!([]));
    assert_eq!(
        changed_modules(&node, &["store_hash", "store_ring"]),
        Vec::<String>::new()
    );

    // Changed outside the editor (not open here): swapped like a save, and back.
    let n = c.count("window/showMessage");
    edit(&ring, "salt() -> ?SALT.", "salt() -> {ring, ?SALT}.");
    // (The client answers the server's progress requests while it waits.)
    wait_until(LONG, "the external edit swapped", || {
        let _ = c.call("orrery/status", Value::Null);
        (salt() == "{:ring, \"orchard\"}").then_some(())
    });
    // Its message too, before the next change.
    let msg = c.wait_nth(LONG, "window/showMessage", n + 1);
    assert!(msg.to_string().contains(":store_ring swapped"), "{msg}");
    std::fs::write(&ring, &ring_src).unwrap();
    wait_until(LONG, "the external revert swapped", || {
        let _ = c.call("orrery/status", Value::Null);
        (salt() == "\"orchard\"").then_some(())
    });
    // The node and `_build` agree.
    assert_eq!(
        changed_modules(&node, &["store_ring"]),
        Vec::<String>::new()
    );
    let msg = c.wait_nth(LONG, "window/showMessage", n + 2);
    assert!(msg.to_string().contains(":store_ring swapped"), "{msg}");

    // A new module with an on_load hook (how NIFs load) is refused, not loaded.
    let nif = store.join("src/store_nif.erl");
    let nif_src = "-module(store_nif).\n-on_load(init/0).\n-export([init/0]).\n\ninit() -> ok.\n";
    c.open_text(&nif, nif_src);
    std::fs::write(&nif, nif_src).unwrap();
    let msg = save_and_wait(&mut c, &nif);
    assert!(
        msg.contains(":store_nif was not swapped") && msg.contains("on_load"),
        "{msg}"
    );
    assert_eq!(eval_text(&node, ":code.is_loaded(:store_nif)"), "false");
    std::fs::remove_file(&nif).unwrap();

    assert_healthy(&node, &before);
    assert!(c.shutdown().success());
    wait_pristine(&node, APPS, LONG);
    assert_healthy(&node, &before);
}
