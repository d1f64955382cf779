//! The real `orrery dap` `launch`ing the app: the node it starts carries no cookie in its
//! argv and listens on loopback only; `evaluate` of a term nested 10,000 levels deep is
//! answered (cut), and the adapter goes on.

mod support;

use serde_json::json;
use std::time::Duration;
use support::dap::DapClient;

const LONG: Duration = Duration::from_secs(120);

#[test]
fn launched_node_is_private_and_deep_terms_do_not_crash_evaluate() {
    let dir = support::fixture_copy("kv");
    let mut c = DapClient::start();
    c.ok(
        "initialize",
        json!({"adapterID": "orrery", "linesStartAt1": true}),
    );
    c.ok("launch", json!({"cwd": dir.path()}));
    c.wait_event("initialized", LONG);
    c.ok("configurationDone", json!({}));

    let secrets = support::procs::assert_private(c.pid());
    assert!(
        !secrets.is_empty(),
        "the launched node got its cookie from the environment"
    );

    let deep = c.ok(
        "evaluate",
        json!({"expression": "Enum.reduce(1..10_000, :leaf, fn _, a -> {a} end)", "context": "repl"}),
    );
    let shown = deep["result"].as_str().unwrap();
    assert!(shown.starts_with("{{{"), "{shown}");
    assert!(shown.contains('…'), "cut with a visible marker: {shown}");
    // Expanding it level by level works too.
    let mut r = deep["variablesReference"].as_i64().unwrap();
    for _ in 0..20 {
        let v = c.ok("variables", json!({"variablesReference": r}));
        r = v["variables"][0]["variablesReference"]
            .as_i64()
            .unwrap_or(0);
        if r == 0 {
            break;
        }
    }
    let two = c.ok(
        "evaluate",
        json!({"expression": "1 + 1", "context": "repl"}),
    );
    assert_eq!(two["result"], "2");
    c.ok("disconnect", json!({}));
    c.close_stdin();
    assert!(c.wait_exit(LONG));
}
