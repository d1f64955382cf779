//! The embedded default on a Phoenix-shaped project (the `beacon` fixture, whose build has
//! a `phx.server` task as a Phoenix dependency gives one): Orrery serves it with `mix
//! phx.server` (the endpoint serves), or as the `command` setting says; and when a node
//! of the project already runs (a developer's `iex -S mix phx.server`), it is offered and
//! attached to instead of a second copy started, or left alone with `attachRunning:
//! "never"` and found exactly as it was.

mod support;

use serde_json::{json, Value};
use std::time::Duration;
use support::check::{assert_healthy, health};
use support::lsp::LspClient;
use support::{fixture_copy, random_token, TestNode};

const LONG: Duration = Duration::from_secs(120);

fn attached(s: &Value) -> bool {
    s["attached"] == json!(true)
}

fn listener_state(c: &mut LspClient) -> Value {
    c.request(
        "orrery/state",
        json!({"target": "Phoenix.Endpoint.Listener"}),
        LONG,
    )
}

#[test]
fn a_phoenix_project_is_served_with_phx_server_or_the_command_setting() {
    let dir = fixture_copy("beacon");
    let mut c = LspClient::start(&[]);
    c.initialize(dir.path(), json!({}));
    let s = c.wait_status(LONG, "the managed node", attached);
    assert_eq!(s["mode"], "managed", "{s}");
    assert_eq!(s["managedRuns"], "mix phx.server", "{s}");
    let st = listener_state(&mut c);
    assert!(
        st.to_string().contains("%{port: 4123, serving: true}"),
        "the endpoint does not serve under `mix phx.server`: {st}"
    );
    assert!(c.shutdown().success());

    // `command`: what the user's app needs (here: not serving), env words included.
    let mut c = LspClient::start(&[]);
    c.initialize(
        dir.path(),
        json!({"command": "MIX_ENV=dev mix run --no-halt"}),
    );
    let s = c.wait_status(LONG, "the managed node", attached);
    assert_eq!(s["managedRuns"], "mix run --no-halt", "{s}");
    let st = listener_state(&mut c);
    assert!(st.get("error").is_some(), "{st}");
    assert!(c.shutdown().success());

    // A `command` that is no mix task: an error that says how to write one.
    let mut c = LspClient::start(&[]);
    c.initialize(dir.path(), json!({"command": "./start.sh"}));
    let s = c.wait_status(LONG, "the refusal", |s| {
        s["status"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("mix phx.server"))
    });
    assert_eq!(s["attached"], json!(false), "{s}");
    assert!(c.shutdown().success());
}

#[test]
fn a_running_node_of_the_project_is_offered_instead_of_a_second_copy() {
    let dir = fixture_copy("beacon");
    let cookie = random_token("c");
    let node = TestNode::start_named(dir.path(), &random_token("beacon_dev"), &cookie);
    let before = health(&node);

    // Asked (the test client dismisses the question): attached to the running node.
    let mut c = LspClient::start(&[]);
    c.initialize(dir.path(), json!({"cookie": cookie}));
    let s = c.wait_status(LONG, "attached to the running node", attached);
    assert_eq!(s["mode"], "attach", "{s}");
    assert_eq!(s["nodes"][0]["name"], json!(node.node), "{s}");
    assert!(s["managedPid"].is_null(), "a second copy was started: {s}");
    let asked = c.wait_seen(LONG, "the question", |m| {
        m["method"] == "window/showMessageRequest"
            && m["params"]["message"]
                .as_str()
                .is_some_and(|t| t.contains(&node.node) && t.contains("already runs"))
    });
    let actions = asked["params"]["actions"].to_string();
    assert!(
        actions.contains(&format!("Attach to {}", node.node))
            && actions.contains("Start Orrery's own node"),
        "{actions}"
    );
    assert!(c.shutdown().success());
    support::check::wait_pristine(&node, &["Elixir.Beacon"], LONG);

    // `attachRunning: "never"`: Orrery's own node; the running one is left as found.
    let mut c = LspClient::start(&[]);
    c.initialize(
        dir.path(),
        json!({"cookie": cookie, "attachRunning": "never"}),
    );
    let s = c.wait_status(LONG, "the managed node", attached);
    assert_eq!(s["mode"], "managed", "{s}");
    assert_ne!(s["nodes"][0]["name"], json!(node.node), "{s}");
    assert!(c.shutdown().success());
    assert_healthy(&node, &before);
}
