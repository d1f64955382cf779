//! Phoenix in the editor (issue 19), real `orrery lsp` and `orrery dap` against the
//! `beacon` fixture (Phoenix-shaped, no hex deps: its `lib/phoenix/` stand-ins have the
//! shapes of Phoenix's documented API). A LiveView's hover lists its connected views
//! (pid, URL, params, `socket.assigns`), its hint and lens count them, `orrery/state` by
//! module gives the assigns, `orrery/stateHistory` gives assigns before and after each
//! `handle_event`/`handle_info`; the router's hover lists its live routes, the
//! endpoint's its URL, adapter and port (no supervisor record); `X.MixProject` is no
//! completion. A view killed under Orrery, and Orrery SIGKILLed mid-request, leave the
//! node as found.

mod support;

use orrery::beam::term;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;
use support::check::{assert_healthy, health, wait_pristine};
use support::dap::DapClient;
use support::lsp::{after, hover, start_attached, LspClient};
use support::{fixture_copy, random_token, rpc, wait_until, TestNode};

const LONG: Duration = Duration::from_secs(90);
/// Module prefixes whose loaded code must be the build's at the end.
const APPS: &[&str] = &["Elixir.Beacon", "Elixir.Phoenix"];

fn beacon() -> (tempfile::TempDir, TestNode) {
    let dir = fixture_copy("beacon");
    let node = TestNode::start_named(dir.path(), &random_token("beacon"), &random_token("c"));
    wait_until(LONG, "the views connected", || {
        rpc(&node, "Elixir.Beacon", "views", vec![])
            .ok()
            .filter(|r| term::list_ref(r).len() == 3)
    });
    (dir, node)
}

fn uri(p: &Path) -> String {
    format!("file://{}", p.display())
}

fn wait_hover(c: &mut LspClient, path: &Path, needle: &str, want: &[&str]) -> String {
    support::lsp::wait_hover(c, path, needle, want, LONG)
}

fn hints(c: &mut LspClient, path: &Path) -> String {
    c.call(
        "textDocument/inlayHint",
        json!({"textDocument": {"uri": uri(path)}, "range": {"start": {"line": 0, "character": 0}, "end": {"line": 200, "character": 0}}}),
    )
    .to_string()
}

fn lenses(c: &mut LspClient, path: &Path) -> String {
    c.call(
        "textDocument/codeLens",
        json!({"textDocument": {"uri": uri(path)}}),
    )
    .to_string()
}

fn labels(r: &Value) -> Vec<String> {
    r["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {r}"))
        .iter()
        .map(|i| i["label"].as_str().unwrap_or("").to_string())
        .collect()
}

/// The channel pid of the first connected view of `view`, as an eetf pid.
fn channel_of(node: &TestNode, view: &str) -> eetf::Term {
    let pids = rpc(node, "Elixir.Beacon", "views", vec![]).unwrap();
    term::list_ref(&pids)
        .iter()
        .find(|p| {
            let s = rpc(node, "sys", "get_state", vec![(*p).clone()]).unwrap();
            let socket = term::get(&s, "socket").unwrap();
            term::get(socket, "view").and_then(term::as_atom) == Some(view)
        })
        .cloned()
        .unwrap_or_else(|| panic!("no view of {view}"))
}

#[test]
fn liveviews_routers_and_endpoints_in_hovers_hints_lenses_and_state() {
    let (dir, node) = beacon();
    let before = health(&node);
    let root = dir.path();
    let mut c = start_attached(&node, root, json!({}));
    let counter = root.join("lib/beacon_web/live/counter_live.ex");
    let thermostat = root.join("lib/beacon_web/live/thermostat_live.ex");
    let router = root.join("lib/beacon_web/router.ex");
    let endpoint = root.join("lib/beacon_web/endpoint.ex");
    for f in [&counter, &thermostat, &router, &endpoint] {
        c.open(f);
    }

    // The LiveView: its connected views, each with URL, params and assigns.
    let h = wait_hover(
        &mut c,
        &counter,
        "defmodule BeaconWeb.Cou",
        &[
            "2 connected views of LiveView `BeaconWeb.CounterLive`",
            "http://localhost:4123",
            "`socket.assigns`",
            "%{count: 0, label: \"clicks\"}",
            "%{count: 5, label: \"clicks\"}",
            "params `%{\"_mounts\" => 0}`",
            "topic `lv:phx-F",
        ],
    );
    assert!(!h.contains("__changed__"), "{h}");
    wait_hover(
        &mut c,
        &thermostat,
        "defmodule BeaconWeb.Ther",
        &[
            "1 connected view of LiveView",
            "%{room: \"kitchen\", temperature: 21}",
        ],
    );
    let hs = wait_until(LONG, "a hint counting views", || {
        let h = hints(&mut c, &counter);
        h.contains("2 views · %{").then_some(h)
    });
    assert!(!hs.contains("__changed__"), "{hs}");
    let ls = lenses(&mut c, &counter);
    assert!(ls.contains("2 connected views"), "{ls}");
    assert!(ls.contains("Inspect state"), "{ls}");

    // "Inspect state": orrery/state by module gives each view's assigns.
    let st = c.call("orrery/state", json!({"target": "BeaconWeb.CounterLive"}));
    assert_eq!(st["count"], 2, "{st}");
    let states: Vec<String> = st["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["state"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        states.contains(&"%{count: 0, label: \"clicks\"}".to_string()),
        "{st}"
    );
    assert!(
        states.contains(&"%{count: 5, label: \"clicks\"}".to_string()),
        "{st}"
    );

    // A click in one browser: the hover follows.
    let pid = channel_of(&node, "Elixir.BeaconWeb.ThermostatLive");
    let counter_pid = channel_of(&node, "Elixir.BeaconWeb.CounterLive");
    rpc(
        &node,
        "Elixir.Beacon",
        "click",
        vec![counter_pid, term::binary("inc")],
    )
    .unwrap();
    let h = wait_hover(
        &mut c,
        &counter,
        "defmodule BeaconWeb.Cou",
        &["label: \"clicks\"}"],
    );
    wait_until(LONG, "the click in the hover", || {
        let h = hover(
            &mut c,
            &uri(&counter),
            after(
                &std::fs::read_to_string(&counter).unwrap(),
                "defmodule BeaconWeb.Cou",
            ),
        );
        (h.contains("%{count: 1, label: \"clicks\"}")
            || h.contains("%{count: 6, label: \"clicks\"}"))
        .then_some(())
    });
    drop(h);

    // The router: live routes with their views, the other routes with their plugs.
    wait_hover(
        &mut c,
        &router,
        "defmodule BeaconWeb.Rou",
        &[
            "3 routes on",
            "2 live",
            "Live routes:",
            "- `GET /counter` → `BeaconWeb.CounterLive` :index",
            "- `GET /thermostat/:room` → `BeaconWeb.ThermostatLive` :show",
            "- `GET /` → `BeaconWeb.PageController` :home",
        ],
    );
    // The endpoint: URL, adapter, port; its supervisor is no raw record.
    let h = wait_hover(
        &mut c,
        &endpoint,
        "defmodule BeaconWeb.End",
        &[
            "Endpoint `BeaconWeb.Endpoint`",
            "http://localhost:4123",
            "adapter `Bandit.PhoenixAdapter`",
            "port 4123",
            "(`Phoenix.Endpoint.Supervisor`)",
        ],
    );
    assert!(!h.contains(":state") && !h.contains("{:local"), "{h}");

    // The project definition of mix.exs is no completion (open or not).
    c.open(&root.join("mix.exs"));
    let scratch = root.join("lib/scratch.ex");
    let text = "defmodule Scratch do\n  def f, do: Beacon.\nend\n";
    let su = c.open_text(&scratch, text);
    let r = c.call(
        "textDocument/completion",
        json!({"textDocument": {"uri": su}, "position": {"line": 1, "character": 20}}),
    );
    let l = labels(&r);
    assert!(l.contains(&"Application".to_string()), "{l:?}");
    assert!(!l.iter().any(|x| x.contains("MixProject")), "{l:?}");

    // A view killed (the browser tab closed hard): the hover drops it.
    rpc(&node, "erlang", "exit", vec![pid, term::atom("kill")]).unwrap();
    wait_hover(
        &mut c,
        &thermostat,
        "defmodule BeaconWeb.Ther",
        &["0 connected views of LiveView"],
    );
    let st = c.request(
        "orrery/state",
        json!({"target": "BeaconWeb.ThermostatLive"}),
        LONG,
    );
    assert!(
        st["error"].to_string().contains("no connected view"),
        "{st}"
    );

    // Orrery SIGKILLed in the middle of a request: the guard leaves the node as found.
    let h = c.pid();
    c.send_raw(
        &json!({"jsonrpc": "2.0", "id": 9999, "method": "orrery/state",
                "params": {"target": "BeaconWeb.CounterLive"}})
        .to_string(),
    );
    unsafe {
        libc::kill(h as i32, libc::SIGKILL);
    }
    drop(c);
    wait_pristine(&node, APPS, LONG);
    assert_healthy(&node, &before);
}

#[test]
fn state_history_of_a_liveview_is_its_assigns() {
    let (dir, node) = beacon();
    let before = health(&node);
    let mut c = DapClient::start();
    c.attach_to(&node, dir.path(), json!({"record": true}));
    let counter = dir.path().join("lib/beacon_web/live/counter_live.ex");
    let src = std::fs::read_to_string(&counter).unwrap();
    let line = |needle: &str| after(&src, needle).0 + 1;
    let bps = c.ok(
        "setBreakpoints",
        json!({"source": {"path": counter}, "breakpoints": [
            {"line": line("{:noreply, update(socket"), "logMessage": "inc"},
            {"line": line("{:noreply, assign(socket, :count, n)}"), "logMessage": "set {n}"},
        ]}),
    );
    assert!(
        bps["breakpoints"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["verified"] == json!(true)),
        "{bps}"
    );
    c.ok("configurationDone", json!({}));

    let pid = channel_of(&node, "Elixir.BeaconWeb.CounterLive");
    let start = rpc(&node, "sys", "get_state", vec![pid.clone()]).unwrap();
    let count0 = term::get(&start, "socket")
        .and_then(|s| term::get(s, "assigns"))
        .and_then(|a| term::get_int(a, "count"))
        .unwrap();
    rpc(
        &node,
        "Elixir.Beacon",
        "click",
        vec![pid.clone(), term::binary("inc")],
    )
    .unwrap();
    c.wait_output("inc", LONG);
    let msg = eetf::Tuple::from(vec![term::atom("set"), term::int(42)]).into();
    rpc(&node, "erlang", "send", vec![pid.clone(), msg]).unwrap();
    c.wait_output("set 42", LONG);

    let h = c.ok(
        "orrery/stateHistory",
        json!({"module": "BeaconWeb.CounterLive"}),
    );
    let entries = h["history"].as_array().unwrap();
    let ev = entries
        .iter()
        .find(|e| e["callback"] == "handle_event/3")
        .unwrap_or_else(|| panic!("no handle_event: {h}"));
    assert_eq!(
        ev["stateBefore"],
        format!("%{{count: {count0}, label: \"clicks\"}}"),
        "{h}"
    );
    assert_eq!(
        ev["stateAfter"],
        format!("%{{count: {}, label: \"clicks\"}}", count0 + 1),
        "{h}"
    );
    assert!(ev["message"].get("socket").is_none(), "{h}");
    // What it got, though its head matches a literal and `_value`.
    assert_eq!(ev["message"]["event"], "\"inc\"", "{h}");
    assert_eq!(ev["message"]["params"], "%{}", "{h}");
    assert!(ev["message"].get("orrery_arg1__").is_none(), "{h}");
    let info = entries
        .iter()
        .find(|e| e["callback"] == "handle_info/2")
        .unwrap_or_else(|| panic!("no handle_info: {h}"));
    assert_eq!(
        info["stateBefore"],
        format!("%{{count: {}, label: \"clicks\"}}", count0 + 1),
        "{h}"
    );
    assert_eq!(info["stateAfter"], "%{count: 42, label: \"clicks\"}", "{h}");
    assert!(info["message"].get("socket").is_none(), "{h}");
    assert_eq!(info["message"]["msg"], "{:set, 42}", "{h}");

    c.ok("disconnect", json!({}));
    wait_pristine(&node, APPS, LONG);
    assert_healthy(&node, &before);
}
