//! Live views on apps shaped like real ones (issue 15, items 1-4), real `orrery lsp` (and
//! `orrery dap`) against the `cells` fixture: processes named through a module attribute
//! and through `via_tuple/1` helpers (local and in another module), the registry's own
//! hover counting its keys, a process whose name the code does not tell (found on the
//! node), state and writes by module + key / via tuple / pid, the supervision tree with
//! dynamic children and grouped siblings, every ETS table (one made by Registry), and
//! dates, MapSets and ranges printed as Elixir prints them, errors as Elixir says them.
//! Each test ends with the node as found and healthy.

mod support;

use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;
use support::check::{assert_healthy, health, wait_pristine};
use support::dap::DapClient;
use support::lsp::{after, start_attached, LspClient};
use support::{rpc, rpc_in_background, TestNode};

const LONG: Duration = Duration::from_secs(90);

/// The fixture's modules.
const CELLS: &[&str] = &["Elixir.Cells"];

/// A workspace holding a copy of the fixture's `lib`.
fn workspace(node: &TestNode) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["lib", "lib/cells"] {
        let to = dir.path().join(sub);
        std::fs::create_dir_all(&to).unwrap();
        for e in std::fs::read_dir(node.dir.join(sub)).unwrap().flatten() {
            if e.path().is_file() {
                std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
            }
        }
    }
    dir
}

fn file(root: &Path, name: &str) -> std::path::PathBuf {
    root.join("lib/cells").join(name)
}

fn wait_hover(c: &mut LspClient, root: &Path, name: &str, needle: &str, want: &[&str]) -> String {
    let path = file(root, name);
    support::lsp::wait_hover(c, &path, needle, want, LONG)
}

fn command(c: &mut LspClient, name: &str, args: Value) -> Value {
    c.request(
        "workspace/executeCommand",
        json!({"command": name, "arguments": [args]}),
        LONG,
    )
}

fn err(r: &Value) -> String {
    r["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error: {r}"))
        .to_string()
}

#[test]
fn hovers_list_processes_named_through_attributes_helpers_and_at_run_time() {
    let node = TestNode::start("cells");
    let before = health(&node);
    let ws = workspace(&node);
    let root = ws.path();
    let mut c = start_attached(&node, root, json!({}));
    for f in [
        "cell.ex",
        "todo_list.ex",
        "database.ex",
        "process_registry.ex",
        "player.ex",
        "clock.ex",
    ] {
        c.open(&file(root, f));
    }

    // `{:via, Registry, {@registry, position}}`: the attribute resolved.
    wait_hover(
        &mut c,
        root,
        "cell.ex",
        "defmodule Cells.Ce",
        &[
            "9 processes of `Cells.Cell` under `{:via, Registry, {Cells.CellRegistry, _}}`",
            "(first 5 by key)",
            "`{0, 0}` →",
            "alive: true",
        ],
    );
    // `name: via_tuple(name)` → `Cells.ProcessRegistry.via_tuple({__MODULE__, name})`.
    wait_hover(
        &mut c,
        root,
        "todo_list.ex",
        "defmodule Cells.TodoL",
        &[
            "2 processes of `Cells.TodoList` under `{:via, Registry, {Cells.ProcessRegistry, {Cells.TodoList, _}}}`",
            "`{Cells.TodoList, \"alice\"}` →",
            "~D[2024-01-01]",
        ],
    );
    wait_hover(
        &mut c,
        root,
        "database.ex",
        "defmodule Cells.DatabaseW",
        &["3 processes of `Cells.DatabaseWorker` under `{:via, Registry, {Cells.ProcessRegistry, {Cells.DatabaseWorker, _}}}`"],
    );
    // The registry's own module counts every key, saying what runs each.
    wait_hover(
        &mut c,
        root,
        "process_registry.ex",
        "defmodule Cells.ProcessR",
        &[
            "5 processes under `{:via, Registry, {Cells.ProcessRegistry, _}}`",
            "`{Cells.DatabaseWorker, 1}` →",
            "(`Cells.DatabaseWorker`)",
            "(`Cells.TodoList`)",
        ],
    );
    // `name: Keyword.fetch!(opts, :name)`: found on the node, with the name it has there.
    wait_hover(
        &mut c,
        root,
        "player.ex",
        "defmodule Cells.Pla",
        &[
            "1 process of `Cells.Player`",
            "(names as found on the node)",
            "`{:via, Registry, {Cells.CellRegistry, {:player, \"ann\"}}}` →",
            "score: 0",
        ],
    );
    // Dates, a MapSet, ranges, a pid and a reference as Elixir prints them.
    wait_hover(
        &mut c,
        root,
        "clock.ex",
        "defmodule Cells.Clo",
        &[
            "day: ~D[2024-01-01]",
            "at: ~U[2024-01-01 12:30:00Z]",
            "local: ~N[2024-01-01 12:30:00.250]",
            "time: ~T[09:15:00]",
            "seen: MapSet.new([:a, :b])",
            "span: 1..10",
            "every: 1..10//3",
            "owner: #PID<0.",
            "ref: #Reference<0.",
        ],
    );

    c.shutdown();
    wait_pristine(&node, CELLS, LONG);
    assert_healthy(&node, &before);
}

#[test]
fn state_and_writes_take_a_module_and_key_a_via_tuple_or_a_pid() {
    let node = TestNode::start("cells");
    let before = health(&node);
    let ws = workspace(&node);
    let root = ws.path();
    let mut c = start_attached(&node, root, json!({}));

    let st = c.call(
        "orrery/state",
        json!({"target": "Cells.TodoList", "key": "\"alice\""}),
    );
    let alice = &st["processes"][0];
    assert_eq!(st["count"], 1, "{st}");
    let state = alice["state"].as_str().unwrap();
    assert!(
        state.contains("name: \"alice\"") && state.contains("due: ~D[2024-01-01]"),
        "{st}"
    );
    assert_eq!(
        alice["name"],
        "{:via, Registry, {Cells.ProcessRegistry, {Cells.TodoList, \"alice\"}}}"
    );
    // By pid: the same process.
    let pid = alice["pid"].as_str().unwrap().to_string();
    let by_pid = c.call("orrery/state", json!({"target": pid}));
    assert_eq!(by_pid["processes"][0]["state"], alice["state"], "{by_pid}");
    // The module alone: both lists.
    let both = c.call("orrery/state", json!({"target": "Cells.TodoList"}));
    assert_eq!(both["count"], 2, "{both}");
    assert_eq!(both["processes"].as_array().unwrap().len(), 2, "{both}");
    // A via tuple.
    let bob = c.call(
        "orrery/state",
        json!({"target": "{:via, Registry, {Cells.ProcessRegistry, {Cells.TodoList, \"bob\"}}}"}),
    );
    assert!(
        bob["processes"][0]["state"]
            .as_str()
            .unwrap()
            .contains("\"bob\""),
        "{bob}"
    );
    // A name the code does not tell.
    let player = c.call("orrery/state", json!({"target": "Cells.Player"}));
    assert_eq!(player["processes"][0]["state"], "%{score: 0}", "{player}");
    // A key that names nothing.
    let none = c.request(
        "orrery/state",
        json!({"target": "Cells.Cell", "key": "{9, 9}"}),
        LONG,
    );
    assert!(
        err(&none).contains("no process Cells.Cell {9, 9}"),
        "{none}"
    );

    // Writes by module + key; several processes need a key; undo puts the state back.
    let cell = |c: &mut LspClient| {
        c.call(
            "orrery/state",
            json!({"target": "Cells.Cell", "key": "{1, 2}"}),
        )["processes"][0]["state"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(cell(&mut c), "%{alive: false, x: 1, y: 2}");
    let r = command(
        &mut c,
        "orrery.replaceState",
        json!({"target": "Cells.Cell", "key": "{1, 2}", "expression": "%{state | alive: true}"}),
    );
    assert!(r["error"].is_null(), "{r}");
    assert_eq!(cell(&mut c), "%{alive: true, x: 1, y: 2}");
    let r = command(&mut c, "orrery.undo", json!({}));
    assert!(r["error"].is_null(), "{r}");
    assert_eq!(cell(&mut c), "%{alive: false, x: 1, y: 2}");
    let e = err(&command(
        &mut c,
        "orrery.replaceState",
        json!({"target": "Cells.Cell", "expression": "state"}),
    ));
    assert!(
        e.contains("names 9 processes") && e.contains("pass a key"),
        "{e}"
    );
    assert!(e.contains("nothing was changed"), "{e}");
    // An expression's error as Elixir says it.
    let e = err(&command(
        &mut c,
        "orrery.replaceState",
        json!({"target": "Cells.Cell", "key": "{0, 0}", "expression": "state + x"}),
    ));
    assert!(
        e.contains("(CompileError)") && e.contains("x") && !e.contains("__exception__"),
        "{e}"
    );
    let e = err(&command(
        &mut c,
        "orrery.replaceState",
        json!({"target": "Cells.Cell", "key": "{0, 0}", "expression": "raise ArgumentError, \"boom\""}),
    ));
    assert!(e.contains("(ArgumentError) boom"), "{e}");
    // A message by via tuple (the cell ignores it).
    let r = command(
        &mut c,
        "orrery.sendMessage",
        json!({"target": "{:via, Registry, {Cells.CellRegistry, {0, 0}}}", "message": ":ping"}),
    );
    assert!(r["error"].is_null(), "{r}");
    assert_eq!(r["result"]["sent"], ":ping", "{r}");

    c.shutdown();
    wait_pristine(&node, CELLS, LONG);
    assert_healthy(&node, &before);
}

/// The node of `tree` whose name is `name`, anywhere below.
fn find<'a>(tree: &'a Value, name: &str) -> Option<&'a Value> {
    if tree["name"] == name {
        return Some(tree);
    }
    tree["children"]
        .as_array()?
        .iter()
        .find_map(|c| find(c, name))
}

fn names(node: &Value) -> Vec<String> {
    node["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn supervision_tree_names_dynamic_children_and_groups_siblings_and_ets_lists_every_table() {
    let node = TestNode::start("cells");
    let before = health(&node);
    let ws = workspace(&node);
    let root = ws.path();
    let mut c = start_attached(&node, root, json!({}));

    let trees = c.call("orrery/supervisionTree", Value::Null);
    let apps = trees["nodes"][0]["applications"].as_array().unwrap();
    let cells = &apps.iter().find(|a| a["application"] == "cells").unwrap()["tree"];
    let sup = find(cells, "Cells.CellSupervisor").unwrap_or_else(|| panic!("{cells}"));
    let kids = names(sup);
    assert_eq!(kids.len(), 10, "{kids:?}");
    for want in ["{0, 0}", "{2, 2}", "{:player, \"ann\"}"] {
        assert!(kids.contains(&want.to_string()), "{want} in {kids:?}");
    }
    let first = &sup["children"][0];
    assert_eq!(first["registry"], "Cells.CellRegistry", "{first}");
    let lists = find(cells, "Cells.ListSupervisor").unwrap();
    assert!(
        names(lists).contains(&"{Cells.TodoList, \"alice\"}".to_string()),
        "{lists}"
    );
    let acceptors = find(cells, "Cells.Acceptors").unwrap();
    let group = &acceptors["children"][0];
    assert_eq!(
        acceptors["children"].as_array().unwrap().len(),
        1,
        "{acceptors}"
    );
    assert_eq!(group["name"], "5 × Cells.Acceptor", "{group}");
    assert_eq!(group["count"], 5);
    assert_eq!(group["pids"].as_array().unwrap().len(), 5);
    assert!(
        group["ids"]
            .as_array()
            .unwrap()
            .contains(&json!("{:acceptor, 1}")),
        "{group}"
    );
    // A group of supervisors holds all its members' children: the two live connections
    // under 4 acceptor supervisors show, whichever acceptors hold them.
    let listeners = find(cells, "Cells.Listeners").unwrap_or_else(|| panic!("{cells}"));
    let sups = &listeners["children"][0];
    assert_eq!(sups["name"], "4 × Cells.AcceptorSupervisor", "{sups}");
    let conn_sups = &sups["children"][0];
    assert_eq!(conn_sups["name"], "4 × Cells.Connections", "{sups}");
    assert_eq!(conn_sups["childCount"], 2, "{conn_sups}");
    assert_eq!(
        conn_sups["children"][0]["name"], "2 × Cells.Connection",
        "{conn_sups}"
    );
    // Workers named in a Registry keep their ids and are not grouped.
    let db = cells["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == "Cells.Database")
        .unwrap_or_else(|| panic!("{cells}"));
    let mut ids = names(db);
    ids.sort();
    assert_eq!(ids, ["1", "2", "3"], "{db}");
    let worker = db["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "1")
        .unwrap();
    assert_eq!(worker["key"], "{Cells.DatabaseWorker, 1}", "{db}");
    assert_eq!(worker["registry"], "Cells.ProcessRegistry", "{db}");

    // Every table of the node, one made by Registry for a module-named registry.
    let all = c.call("orrery/ets", json!({}));
    let tables = all["tables"].as_array().unwrap();
    assert!(tables.len() > 5, "{all}");
    let reg = tables
        .iter()
        .find(|t| t["table"] == "Cells.CellRegistry")
        .unwrap_or_else(|| panic!("{all}"));
    assert_eq!(reg["ownerName"], "Cells.CellRegistry", "{reg}");
    assert!(reg["memory"].as_i64().unwrap() > 0, "{reg}");
    assert_eq!(all["nodes"][0]["total"].as_i64(), Some(tables.len() as i64));
    // An alias names a table.
    let one = c.call(
        "orrery/ets",
        json!({"table": "Cells.CellRegistry", "rows": 2}),
    );
    assert_eq!(one["tables"][0]["table"], "Cells.CellRegistry", "{one}");
    assert_eq!(one["tables"][0]["type"], "set", "{one}");
    // A name that is no table: an error, and no atom made for it on the node.
    let e = c.request(
        "orrery/ets",
        json!({"table": "orrery_no_such_table_15"}),
        LONG,
    );
    assert!(
        err(&e).contains("no ETS table named :orrery_no_such_table_15"),
        "{e}"
    );
    let made = rpc(
        &node,
        "erlang",
        "binary_to_existing_atom",
        vec![orrery::beam::term::binary("orrery_no_such_table_15")],
    );
    assert!(made.is_err(), "{made:?}");

    c.shutdown();
    wait_pristine(&node, CELLS, LONG);
    assert_healthy(&node, &before);
}

#[test]
fn evaluate_errors_and_values_read_as_elixir() {
    let node = TestNode::start("cells");
    let before = health(&node);
    let mut c = DapClient::start();
    c.ok(
        "initialize",
        json!({"adapterID": "orrery", "linesStartAt1": true}),
    );
    c.ok(
        "attach",
        json!({"node": node.node, "cookie": node.cookie, "cwd": node.dir}),
    );
    c.wait_event("initialized", LONG);
    let src = node.dir.join("lib/cells.ex");
    let line = after(&std::fs::read_to_string(&src).unwrap(), "m = n + 1").0 + 1;
    let bps = c.ok(
        "setBreakpoints",
        json!({"source": {"path": src}, "breakpoints": [{"line": line}]}),
    );
    assert_eq!(bps["breakpoints"][0]["verified"], json!(true), "{bps}");
    c.ok("configurationDone", json!({}));
    let call = rpc_in_background(
        &node,
        "Elixir.Cells",
        "step",
        vec![orrery::beam::term::int(1)],
        LONG,
    );
    let stopped = c.wait_event("stopped", LONG);
    let thread = stopped["body"]["threadId"].as_i64().unwrap();
    let st = c.ok("stackTrace", json!({"threadId": thread}));
    let frame = st["stackFrames"][0]["id"].clone();

    let eval = |c: &mut DapClient, expr: &str| {
        c.request(
            "evaluate",
            json!({"expression": expr, "frameId": frame, "context": "repl"}),
        )
    };
    let undefined = eval(&mut c, "x + n").to_string();
    assert!(
        undefined.contains("(CompileError)")
            && undefined.contains("x")
            && !undefined.contains("__exception__"),
        "{undefined}"
    );
    let raised = eval(&mut c, "raise ArgumentError, \"boom\"").to_string();
    assert!(raised.contains("(ArgumentError) boom"), "{raised}");
    let syntax = eval(&mut c, "n +").to_string();
    assert!(syntax.contains("syntax error"), "{syntax}");
    let value = eval(&mut c, "%{d: ~D[2024-01-01], s: MapSet.new([n]), r: 1..n}");
    assert_eq!(
        value["body"]["result"], "%{d: ~D[2024-01-01], r: 1..1, s: MapSet.new([1])}",
        "{value}"
    );

    c.ok("continue", json!({"threadId": thread}));
    let r = call.join().unwrap().unwrap();
    assert_eq!(orrery::beam::term::as_int(&r), Some(4));
    c.ok("disconnect", json!({}));
    assert!(c.wait_exit(LONG));
    wait_pristine(&node, CELLS, LONG);
    assert_healthy(&node, &before);
}
