//! The live model on shapes of real code (issue 22, item 8), real `orrery lsp` against the
//! `shapes` fixture: processes of a behaviour layer between gen_server and the user's
//! module (as GenStage's) count for the user's module; a Registry name with a computed key
//! counts the registry's matching keys; a Registry registered under a module's name (as
//! ConCache's) is not shown as that module's process. The node is left as found.

mod support;

use orrery::beam::term::{self, atom};
use serde_json::json;
use std::path::Path;
use std::time::Duration;
use support::check::wait_pristine;
use support::lsp::{hover, start_attached, LspClient};
use support::{rpc, TestNode};

const LONG: Duration = Duration::from_secs(90);

/// A workspace holding a copy of the fixture's `lib/shapes` (server files land in a temp dir).
/// The fixture's modules (protocol implementations for its types included).
const SHAPES: &[&str] = &["Elixir.Shapes", "Elixir.String.Chars.Shapes", "shapes_"];

fn workspace(node: &TestNode) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib/shapes");
    std::fs::create_dir_all(&lib).unwrap();
    for e in std::fs::read_dir(node.dir.join("lib/shapes"))
        .unwrap()
        .flatten()
    {
        std::fs::copy(e.path(), lib.join(e.file_name())).unwrap();
    }
    dir
}

fn wait_hover(c: &mut LspClient, root: &Path, file: &str, needle: &str, want: &[&str]) -> String {
    let path = root.join("lib/shapes").join(file);
    support::lsp::wait_hover(c, &path, needle, want, LONG)
}

#[test]
fn hovers_count_layered_processes_registry_keys_and_not_a_registry_named_like_the_module() {
    let node = TestNode::start("shapes");
    rpc(&node, "shapes_erl", "add", vec![term::int(1), term::int(2)]).unwrap();
    let ws = workspace(&node);
    let root = ws.path();
    let mut c = start_attached(&node, root, json!({}));
    for f in ["counter_stage.ex", "cache.ex", "session.ex", "stage.ex"] {
        c.open(&root.join("lib/shapes").join(f));
    }

    // Three processes whose `$initial_call` is {Shapes.Stage, :init, 1}, run for the user's
    // module Shapes.CounterStage (it sits in their state).
    wait_hover(
        &mut c,
        root,
        "counter_stage.ex",
        "defmodule Shapes.CounterSt",
        &["· 3 processes"],
    );
    // They run the layer's code too.
    wait_hover(
        &mut c,
        root,
        "stage.ex",
        "defmodule Shapes.Sta",
        &["· 3 processes"],
    );

    // ConCache's shape: keys {:cache, name} (supervisors running Supervisor.Default) and
    // {:owner, name} (Shapes.Cache.Owner), both written in Shapes.Cache; and the Registry
    // registered as `Shapes.Cache` is named as what it is.
    let h = wait_hover(
        &mut c,
        root,
        "cache.ex",
        "defmodule Shapes.Cach",
        &[
            "2 processes of `Shapes.Cache` under `{:via, Registry, {Shapes.Cache, {:cache, _}}}`",
            "2 processes of `Shapes.Cache` under `{:via, Registry, {Shapes.Cache, {:owner, _}}}`",
            "`{:cache, :alpha}` →",
            "`{:owner, :beta}` →",
        ],
    );
    assert!(h.contains("is the registered name of"), "{h}");
    assert!(h.contains("(not `Shapes.Cache` code)"), "{h}");
    assert!(
        !h.contains("```elixir"),
        "no Registry state shown as the module's: {h}"
    );

    // A computed key in the module that runs the processes.
    wait_hover(
        &mut c,
        root,
        "session.ex",
        "defmodule Shapes.Sess",
        &[
            "2 processes of `Shapes.Session` under `{:via, Registry, {Shapes.Sessions, {:session, _}}}`",
            "`%{id: 1}`",
        ],
    );

    // An Erlang source opened and saved: not indexed as Elixir (no made-up hover); this
    // workspace (a copy of lib/) is no mix project, so nothing is compiled or swapped
    // (reload_erlang.rs swaps Erlang sources in a project).
    let erl = node.dir.join("src/shapes_erl.erl");
    let erl_uri = c.open(&erl);
    let h = hover(&mut c, &erl_uri, (5, 8));
    assert!(h.is_empty(), "{h}");
    let msg = support::lsp::save_and_wait(&mut c, &erl);
    assert!(msg.contains("nothing to compile"), "{msg}");
    let syms = c.call(
        "textDocument/documentSymbol",
        json!({"textDocument": {"uri": erl_uri}}),
    );
    assert!(syms.as_array().is_none_or(|a| a.is_empty()), "{syms}");

    c.shutdown();
    let table = rpc(&node, "ets", "info", vec![atom("orrery_names_v1_layers")]).unwrap();
    assert!(term::is_atom(&table, "undefined"), "{table:?}");
    wait_pristine(&node, SHAPES, LONG);
}
