//! End-to-end: the real `orrery lsp` binary over stdio against real nodes.

mod support;

use serde_json::{json, Value};
use std::time::Duration;
use support::lsp::LspClient;
use support::{pid_alive, TestNode};

const LONG: Duration = Duration::from_secs(90);

fn attached(s: &Value) -> bool {
    s["attached"] == json!(true)
}

fn hover_text(c: &mut LspClient, uri: &str, line: u32, character: u32) -> String {
    support::lsp::hover(c, uri, (line, character))
}

#[test]
fn attach_symbols_definition_and_live_hover() {
    let node = TestNode::start("kv");
    let root = node.dir.clone();
    let mut c = LspClient::start(&[]);
    let init = c.initialize(
        &root,
        json!({"node": node.node, "cookie": node.cookie, "refreshMs": 100}),
    );
    assert_eq!(init["capabilities"]["hoverProvider"], json!(true));
    assert_eq!(init["capabilities"]["textDocumentSync"]["change"], json!(2));
    let status = c.wait_status(LONG, "attach", attached);
    assert_eq!(status["mode"], "attach");
    assert_eq!(status["nodes"][0]["name"], json!(node.node));
    assert_eq!(status["nodes"][0]["agent"], json!(true));
    assert!(
        status["nodes"][0]["otp"]
            .as_str()
            .unwrap()
            .parse::<u32>()
            .unwrap()
            >= 25
    );
    assert!(status["nodes"][0]["elixir"]
        .as_str()
        .unwrap()
        .starts_with("1."));
    // Progress was reported for indexing and attaching, and the cookie is nowhere.
    let seen = serde_json::to_string(&c.seen).unwrap();
    assert!(seen.contains("$/progress"), "no progress: {seen}");
    assert!(!seen.contains(&node.cookie), "cookie leaked to the client");

    // Symbols.
    let calc = root.join("lib/kv/calc.ex");
    let calc_uri = c.open(&calc);
    let syms = c.call(
        "textDocument/documentSymbol",
        json!({"textDocument": {"uri": calc_uri}}),
    );
    let names: Vec<String> = syms
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, vec!["KV.Calc", "KV.Calc.Helpers"]);
    let funs: Vec<&str> = syms[0]["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(
        funs.contains(&"add/2") && funs.contains(&"classify/1"),
        "{funs:?}"
    );
    let ws = c.call("workspace/symbol", json!({"query": "twice"}));
    assert_eq!(ws[0]["name"], "KV.Calc.Helpers.twice/1", "{ws}");

    // Definition through `alias KV.Calc` and `alias KV.Bucket, as: B`.
    let client = root.join("lib/kv/client.ex");
    let client_uri = c.open(&client);
    let src = std::fs::read_to_string(&client).unwrap();
    let (line, col) = src
        .lines()
        .enumerate()
        .find_map(|(i, l)| l.find("Calc.add").map(|c| (i as u32, c as u32 + 6)))
        .unwrap();
    let def = c.call(
        "textDocument/definition",
        json!({"textDocument": {"uri": client_uri}, "position": {"line": line, "character": col}}),
    );
    assert!(
        def["uri"].as_str().unwrap().ends_with("lib/kv/calc.ex"),
        "{def}"
    );
    assert_eq!(def["range"]["start"]["line"], 3);
    let (line, col) = src
        .lines()
        .enumerate()
        .find_map(|(i, l)| l.find("B.get").map(|c| (i as u32, c as u32)))
        .unwrap();
    let def = c.call(
        "textDocument/definition",
        json!({"textDocument": {"uri": client_uri}, "position": {"line": line, "character": col}}),
    );
    assert!(
        def["uri"].as_str().unwrap().ends_with("lib/kv/bucket.ex"),
        "{def}"
    );

    // Live hover on the GenServer module: its state now, and after a call changes it.
    let bucket = root.join("lib/kv/bucket.ex");
    let bucket_uri = c.open(&bucket);
    let text = support::wait_until(LONG, "hover with state", || {
        let t = hover_text(&mut c, &bucket_uri, 0, 15);
        t.contains("%{}").then_some(t)
    });
    assert!(text.contains("KV.Bucket"), "{text}");
    assert!(text.contains("1 process"), "{text}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let conn = orrery::beam::Connection::connect(&node.node, &node.cookie, LONG)
            .await
            .unwrap();
        let t = orrery::beam::term::binary("hello");
        conn.rpc(
            "Elixir.KV.Bucket",
            "put",
            vec![orrery::beam::term::atom("greeting"), t],
            LONG,
        )
        .await
        .unwrap();
        conn.close();
    });
    let text = support::wait_until(LONG, "hover with the new state", || {
        let t = hover_text(&mut c, &bucket_uri, 0, 15);
        t.contains("%{greeting: \"hello\"}").then_some(t)
    });
    assert!(text.contains("```elixir"), "{text}");

    // Inlay hints and code lenses carry the figures (after the next refresh).
    let labels = support::wait_until(LONG, "inlay hints", || {
        let hints = c.call(
            "textDocument/inlayHint",
            json!({"textDocument": {"uri": bucket_uri}, "range": {"start": {"line": 0, "character": 0}, "end": {"line": 200, "character": 0}}}),
        );
        let labels = hints.to_string();
        labels
            .contains("1 proc · %{greeting: \\\"hello\\\"}")
            .then_some(labels)
    });
    assert!(labels.contains("2 rows"), "ETS hint missing: {labels}");
    let lenses = c.call(
        "textDocument/codeLens",
        json!({"textDocument": {"uri": bucket_uri}}),
    );
    assert!(lenses.to_string().contains("1 live process"), "{lenses}");
    assert!(lenses.to_string().contains("Inspect state"), "{lenses}");

    // Custom views.
    let st = c.call("orrery/state", json!({"target": "KV.Bucket"}));
    assert_eq!(st["processes"][0]["state"], "%{greeting: \"hello\"}");
    let ets = c.call("orrery/ets", json!({"tables": [":kv_table"]}));
    assert_eq!(ets["tables"][0]["size"], 2, "{ets}");
    let procs = c.call("orrery/processes", json!({"sort": "memory", "limit": 5}));
    assert_eq!(procs["nodes"][0]["items"].as_array().unwrap().len(), 5);
    // Orrery's own processes (agent, guard, rpc workers) are not the app's.
    let all = c.call("orrery/processes", json!({"limit": 10000}));
    assert!(!all.to_string().contains("orrery_"), "{all}");
    let tree = c.call("orrery/supervisionTree", Value::Null);
    assert!(tree.to_string().contains("KV.Supervisor"), "{tree}");

    // Malformed input gets an error and the server keeps serving.
    c.send_raw("{not json");
    let bad = c.request("orrery/state", json!({"target": "#PID<garbage>"}), LONG);
    assert!(
        bad["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not a pid"),
        "{bad}"
    );
    let s = c.call("orrery/status", Value::Null);
    assert!(attached(&s));

    assert!(c.shutdown().success());
}

#[test]
fn embedded_default_starts_and_stops_the_app() {
    let root = support::fixture("kv");
    let mut c = LspClient::start(&[]);
    // Other tests run kv nodes in this same directory: not to be offered here.
    c.initialize(&root, json!({"attachRunning": "never"}));
    let status = c.wait_status(LONG, "managed attach", attached);
    assert_eq!(status["mode"], "managed");
    let name = status["nodes"][0]["name"].as_str().unwrap().to_string();
    assert!(name.starts_with("kv_orrery_"), "{name}");
    let pid = status["managedPid"].as_u64().unwrap() as u32;
    assert!(pid_alive(pid));
    // The app's output reaches window/logMessage.
    assert!(c.shutdown().success());
    assert!(
        !pid_alive(pid),
        "managed node {pid} still running after shutdown"
    );
    let names = std::process::Command::new("epmd")
        .arg("-names")
        .output()
        .unwrap();
    let names = String::from_utf8_lossy(&names.stdout);
    assert!(!names.contains(name.split('@').next().unwrap()), "{names}");
}

#[test]
fn managed_node_dies_with_the_editor() {
    let root = support::fixture("kv");
    let mut c = LspClient::start(&[]);
    c.initialize(&root, json!({"attachRunning": "never"}));
    let status = c.wait_status(LONG, "managed attach", attached);
    let pid = status["managedPid"].as_u64().unwrap() as u32;
    // The editor (and with it Orrery) is killed without any goodbye.
    unsafe {
        libc::kill(c.pid() as i32, libc::SIGKILL);
    }
    support::wait_until(LONG, "managed node to halt", || {
        (!pid_alive(pid)).then_some(())
    });
}

#[test]
fn broken_project_reports_the_compiler_output() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mix.exs"),
        "defmodule Broken.MixProject do\n  use Mix.Project\n  def project, do: [app: :broken, version: \"0.1.0\"]\nend\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("lib")).unwrap();
    std::fs::write(
        dir.path().join("lib/broken.ex"),
        "defmodule Broken do\n  def f(, do: 1\nend\n",
    )
    .unwrap();
    let mut c = LspClient::start(&[]);
    c.initialize(dir.path(), json!({}));
    let msg = c.wait_seen(LONG, "showMessage", |v| v["method"] == "window/showMessage");
    let text = msg["params"]["message"].as_str().unwrap();
    assert!(text.contains("does not compile"), "{text}");
    assert!(text.contains("broken.ex"), "{text}");
    let s = c.call("orrery/status", Value::Null);
    assert_eq!(s["attached"], json!(false));
    assert!(c.shutdown().success());
}

#[test]
fn trace_calls_shows_the_last_calls_with_arguments_and_results() {
    let node = TestNode::start("kv");
    support::rpc(
        &node,
        "Elixir.KV.Calc",
        "add",
        vec![orrery::beam::term::int(0), orrery::beam::term::int(0)],
    )
    .unwrap();
    let mut c = LspClient::start(&[]);
    c.initialize(
        &node.dir,
        json!({"node": node.node, "cookie": node.cookie, "refreshMs": 100}),
    );
    c.wait_status(LONG, "attach", attached);
    let calc = node.dir.join("lib/kv/calc.ex");
    let uri = c.open(&calc);
    let lenses = support::wait_until(LONG, "a Trace calls lens", || {
        let l = c.call(
            "textDocument/codeLens",
            json!({"textDocument": {"uri": uri}}),
        );
        l.to_string().contains("Trace calls").then_some(l)
    });
    let lens = lenses
        .as_array()
        .unwrap()
        .iter()
        .find(|l| {
            l["command"]["title"] == "Trace calls"
                && l["command"]["arguments"][0] == "KV.Calc.add/2"
        })
        .cloned()
        .expect("lens for add/2");
    let r = c.call(
        "workspace/executeCommand",
        json!({"command": lens["command"]["command"], "arguments": lens["command"]["arguments"]}),
    );
    assert!(r.as_str().unwrap().starts_with("tracing calls of"), "{r}");
    support::rpc(
        &node,
        "Elixir.KV.Calc",
        "add",
        vec![orrery::beam::term::int(2), orrery::beam::term::int(3)],
    )
    .unwrap();
    // Hover on `def add` lists the call with its arguments and result.
    let text = support::wait_until(LONG, "the traced call in the hover", || {
        let t = hover_text(&mut c, &uri, 3, 7);
        t.contains("`add(2, 3)` → `5` in ").then_some(t)
    });
    assert!(
        text.contains("Last calls") && text.contains("Mean time of these calls"),
        "{text}"
    );
    let r = c.call(
        "workspace/executeCommand",
        json!({"command": "orrery.traceCalls", "arguments": ["KV.Calc.add/2"]}),
    );
    assert!(r.as_str().unwrap().starts_with("stopped tracing"), "{r}");
    assert!(c.shutdown().success());
}

#[test]
fn changing_the_node_in_the_settings_attaches_to_it() {
    let node = TestNode::start("kv");
    let ws = support::lib_copy(&node);
    let mut c = LspClient::start(&[]);
    // A node that does not exist first (a typo), then the right one.
    let typo = format!(
        "{}@{}",
        support::random_token("nobody"),
        support::hostname()
    );
    c.initialize(ws.path(), json!({"node": typo, "cookie": node.cookie}));
    c.wait_status(LONG, "not attached", |s| {
        s["attached"] == json!(false) && s["reason"].is_string()
    });
    c.notify(
        "workspace/didChangeConfiguration",
        json!({"settings": {"orrery": {"node": node.node, "cookie": node.cookie}}}),
    );
    c.wait_status(LONG, "attached after the change", attached);
    let s = c.call("orrery/status", Value::Null);
    assert!(s.to_string().contains(&node.node), "{s}");
    assert!(c.shutdown().success());
    support::check::wait_pristine(&node, &["Elixir.KV"], LONG);
}
