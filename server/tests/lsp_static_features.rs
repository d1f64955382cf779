//! `staticFeatures`: Orrery beside a static Elixir language server. With it off, Orrery
//! announces and answers only live things (no symbols, definition or completion; hovers
//! without docs); with dynamic registration, it registers and unregisters those features
//! as the setting changes. The real binary against a real kv node.

mod support;

use serde_json::{json, Value};
use std::time::Duration;
use support::lsp::{after, hover, LspClient};
use support::TestNode;

const LONG: Duration = Duration::from_secs(90);
const STATIC: [&str; 4] = [
    "definitionProvider",
    "documentSymbolProvider",
    "workspaceSymbolProvider",
    "completionProvider",
];
const METHODS: [&str; 4] = [
    "textDocument/definition",
    "textDocument/documentSymbol",
    "workspace/symbol",
    "textDocument/completion",
];

fn attach(c: &mut LspClient) {
    c.wait_status(LONG, "attach", |s| s["attached"] == json!(true));
}

fn options(node: &TestNode, extra: Value) -> Value {
    let mut o = json!({"node": node.node, "cookie": node.cookie, "refreshMs": 200});
    for (k, v) in extra.as_object().unwrap() {
        o[k] = v.clone();
    }
    o
}

/// The answers to the four static requests on bucket.ex.
fn static_answers(c: &mut LspClient, uri: &str, src: &str) -> Vec<Value> {
    let (l, ch) = after(src, "GenServer.call(__MOD");
    let pos = json!({"line": l, "character": ch - 3});
    let (cl, cc) = after(src, "Map.");
    vec![
        c.call(
            "textDocument/definition",
            json!({"textDocument": {"uri": uri}, "position": pos}),
        ),
        c.call(
            "textDocument/documentSymbol",
            json!({"textDocument": {"uri": uri}}),
        ),
        c.call("workspace/symbol", json!({"query": "Bucket"})),
        c.call(
            "textDocument/completion",
            json!({"textDocument": {"uri": uri}, "position": {"line": cl, "character": cc}}),
        ),
    ]
}

/// The live hover on `KV.Bucket` shows its state, whatever the setting.
fn live_hover(c: &mut LspClient, uri: &str) -> String {
    support::wait_until(LONG, "the live hover on KV.Bucket", || {
        let t = hover(c, uri, (0, 15));
        t.contains("%{}").then_some(t)
    })
}

/// The registrations (method → id) the server asked for, and the ids it took back.
fn registrations(c: &LspClient) -> (Vec<(String, String)>, Vec<String>) {
    let mut reg = vec![];
    let mut unreg = vec![];
    for v in &c.seen {
        match v["method"].as_str() {
            Some("client/registerCapability") => {
                for r in v["params"]["registrations"].as_array().unwrap() {
                    reg.push((
                        r["method"].as_str().unwrap().to_string(),
                        r["id"].as_str().unwrap().to_string(),
                    ));
                }
            }
            Some("client/unregisterCapability") => {
                // The protocol's misspelling: `unregisterations`.
                for r in v["params"]["unregisterations"].as_array().unwrap() {
                    unreg.push(r["id"].as_str().unwrap().to_string());
                }
            }
            _ => {}
        }
    }
    (reg, unreg)
}

#[test]
fn off_announces_and_answers_only_live_things() {
    let node = TestNode::start("kv");
    let root = node.dir.clone();
    let bucket = root.join("lib/kv/bucket.ex");
    let src = std::fs::read_to_string(&bucket).unwrap();

    // Off, without dynamic registration: not announced, and not answered.
    let mut c = LspClient::start(&[]);
    let init = c.initialize(&root, options(&node, json!({"staticFeatures": "off"})));
    let caps = &init["capabilities"];
    for k in STATIC {
        assert!(
            caps.get(k).is_none(),
            "{k} announced with staticFeatures off: {caps}"
        );
    }
    assert_eq!(caps["hoverProvider"], json!(true));
    assert_eq!(caps["inlayHintProvider"], json!(true));
    assert!(caps.get("codeLensProvider").is_some());
    attach(&mut c);
    let uri = c.open(&bucket);
    for (m, a) in METHODS.iter().zip(static_answers(&mut c, &uri, &src)) {
        assert_eq!(a, Value::Null, "{m} answered with staticFeatures off");
    }
    // Live things stay: the state in the module's hover, hints and lenses.
    let live = live_hover(&mut c, &uri);
    assert!(live.contains("KV.Bucket"), "{live}");
    support::wait_until(LONG, "a live inlay hint", || {
        let h = c.call(
            "textDocument/inlayHint",
            json!({"textDocument": {"uri": uri}, "range": {"start": {"line": 0, "character": 0}, "end": {"line": 45, "character": 0}}}),
        );
        (h.to_string().contains("1 proc")).then_some(())
    });
    let lenses = c.call(
        "textDocument/codeLens",
        json!({"textDocument": {"uri": uri}}),
    );
    assert!(lenses.to_string().contains("live process"), "{lenses}");
    // Hover on a standard library call: the docs are the static server's, so Orrery
    // has nothing to add (no docs, no "not attached" note).
    let (l, ch) = after(&src, "Map.pu");
    assert_eq!(hover(&mut c, &uri, (l, ch - 1)), "");
    c.shutdown();

    // On (the default), same client: everything announced and answered, docs in hovers.
    let mut c = LspClient::start(&[]);
    let init = c.initialize(&root, options(&node, json!({})));
    for k in STATIC {
        assert!(
            init["capabilities"].get(k).is_some(),
            "{k} not announced by default"
        );
    }
    attach(&mut c);
    let uri = c.open(&bucket);
    let answers = static_answers(&mut c, &uri, &src);
    for (m, a) in METHODS.iter().zip(&answers) {
        assert_ne!(*a, Value::Null, "{m} not answered with staticFeatures on");
    }
    assert!(
        answers[1].to_string().contains("start_link"),
        "{}",
        answers[1]
    );
    assert!(answers[3].to_string().contains("put"), "{}", answers[3]);
    let docs = support::wait_until(LONG, "docs in the hover of Map.put", || {
        let t = hover(&mut c, &uri, (l, ch - 1));
        t.contains("Puts").then_some(t)
    });
    assert!(docs.contains("Map.put"), "{docs}");
    // A client without dynamic registration keeps what initialize announced: turned off
    // later, the requests are answered with null.
    c.notify(
        "workspace/didChangeConfiguration",
        json!({"settings": {"orrery": {"staticFeatures": "off"}}}),
    );
    support::wait_until(LONG, "documentSymbol to answer null", || {
        let a = c.call(
            "textDocument/documentSymbol",
            json!({"textDocument": {"uri": uri}}),
        );
        a.is_null().then_some(())
    });
    assert_eq!(
        registrations(&c),
        (vec![], vec![]),
        "no registrations without support"
    );
    c.shutdown();
}

#[test]
fn dynamic_registration_follows_the_setting() {
    let node = TestNode::start("kv");
    let root = node.dir.clone();
    let bucket = root.join("lib/kv/bucket.ex");
    let src = std::fs::read_to_string(&bucket).unwrap();
    let dynamic = json!({
        "textDocument": {
            "definition": {"dynamicRegistration": true},
            "documentSymbol": {"dynamicRegistration": true},
            "completion": {"dynamicRegistration": true}
        },
        "workspace": {"symbol": {"dynamicRegistration": true}}
    });
    let mut c = LspClient::start(&[]);
    let init = c.initialize_with(&root, options(&node, json!({})), dynamic);
    for k in STATIC {
        assert!(
            init["capabilities"].get(k).is_none(),
            "{k} announced statically to a client that registers it dynamically"
        );
    }
    // Registered after `initialized`, with the completion triggers.
    let reg = c.wait_seen(LONG, "client/registerCapability", |v| {
        v["method"] == "client/registerCapability"
    });
    let methods: Vec<&str> = reg["params"]["registrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["method"].as_str().unwrap())
        .collect();
    for m in METHODS {
        assert!(methods.contains(&m), "{m} not registered: {reg}");
    }
    assert!(
        reg.to_string().contains(r#""triggerCharacters":[".",":"]"#),
        "{reg}"
    );
    attach(&mut c);
    let uri = c.open(&bucket);
    assert_ne!(static_answers(&mut c, &uri, &src)[1], Value::Null);

    // Off: all four unregistered, and answered with null.
    c.notify(
        "workspace/didChangeConfiguration",
        json!({"settings": {"orrery": {"staticFeatures": "off"}}}),
    );
    c.wait_seen(LONG, "client/unregisterCapability", |v| {
        v["method"] == "client/unregisterCapability"
    });
    let (reg, unreg) = registrations(&c);
    assert_eq!(unreg.len(), 4, "{unreg:?}");
    for (_, id) in &reg {
        assert!(unreg.contains(id), "{id} not unregistered: {unreg:?}");
    }
    for (m, a) in METHODS.iter().zip(static_answers(&mut c, &uri, &src)) {
        assert_eq!(a, Value::Null, "{m} answered after unregistering");
    }
    assert!(live_hover(&mut c, &uri).contains("%{}"));

    // A change of something else registers nothing; on again registers the four again.
    c.notify(
        "workspace/didChangeConfiguration",
        json!({"settings": {"orrery": {"refreshMs": 300}}}),
    );
    c.notify(
        "workspace/didChangeConfiguration",
        json!({"settings": {"orrery": {"staticFeatures": "on"}}}),
    );
    support::wait_until(LONG, "the second registration", || {
        c.call("orrery/status", Value::Null);
        (c.count("client/registerCapability") == 2).then_some(())
    });
    let (reg, _) = registrations(&c);
    assert_eq!(reg.len(), 8, "{reg:?}");
    assert_eq!(c.count("client/unregisterCapability"), 1);
    assert_ne!(static_answers(&mut c, &uri, &src)[1], Value::Null);
    c.shutdown();
}
