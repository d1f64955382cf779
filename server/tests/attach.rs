//! End-to-end: the distribution client and the agent against real nodes.

mod support;

use orrery::attach::{Session, Status};
use orrery::beam::term;
use orrery::beam::{BeamError, Connection};
use std::collections::BTreeSet;
use std::time::Duration;
use support::{wait_for, TestNode};

const T: Duration = Duration::from_secs(20);

async fn loaded_and_registered(node: &TestNode) -> (BTreeSet<String>, BTreeSet<String>) {
    let c = Connection::connect(&node.node, &node.cookie, T)
        .await
        .unwrap();
    let atoms = |t: eetf::Term| -> BTreeSet<String> {
        term::list_ref(&t)
            .iter()
            .filter_map(|a| term::as_atom(a).map(str::to_string))
            .collect()
    };
    let loaded = atoms(c.rpc("erlang", "loaded", vec![], T).await.unwrap());
    let registered = atoms(c.rpc("erlang", "registered", vec![], T).await.unwrap());
    c.close();
    (loaded, registered)
}

#[tokio::test(flavor = "multi_thread")]
async fn attach_reports_versions_and_rpc_errors_are_clear() {
    let node = TestNode::start("kv");
    let s = Session::start(&node.node, &node.cookie, true);
    s.wait_attached(T).await.unwrap();
    let nodes = s.nodes();
    assert_eq!(nodes.len(), 1);
    let info = &nodes[0].info;
    assert_eq!(info.name, node.node);
    assert!(!info.otp.is_empty());
    assert!(info.elixir.is_some(), "elixir version missing: {info:?}");
    assert!(info.apps.iter().any(|(a, _)| a == "kv"));
    assert!(info.process_count > 10);

    let conn = s.primary().unwrap();
    // An RPC into Elixir code: binaries are strings, modules carry Elixir.
    let r = conn
        .rpc(
            "Elixir.KV.Calc",
            "add",
            vec![term::int(2), term::int(40)],
            T,
        )
        .await
        .unwrap();
    assert_eq!(term::as_int(&r), Some(42));
    let r = conn
        .rpc("Elixir.String", "upcase", vec![term::binary("héllo")], T)
        .await
        .unwrap();
    assert_eq!(term::as_string(&r).unwrap(), "HÉLLO");
    // An undefined function is a clear error, not a hang or a panic.
    let e = conn
        .rpc("Elixir.KV.Calc", "nope", vec![], T)
        .await
        .unwrap_err();
    assert!(matches!(e, BeamError::Rpc { .. }), "{e:?}");
    assert!(e.to_string().contains("undef"), "{e}");
    // A call that outlives its timeout fails with a timeout, and the connection stays usable.
    let e = conn
        .rpc(
            "timer",
            "sleep",
            vec![term::int(2000)],
            Duration::from_millis(100),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, BeamError::Timeout { .. }), "{e:?}");
    let r = conn.rpc("erlang", "node", vec![], T).await.unwrap();
    assert_eq!(term::as_atom(&r), Some(node.node.as_str()));
    s.detach().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_cookie_and_unknown_node_say_what_to_do() {
    let node = TestNode::start("kv");
    let e = Connection::connect(&node.node, "not-the-cookie", T)
        .await
        .err()
        .unwrap();
    assert_eq!(
        e,
        BeamError::CookieRejected {
            node: node.node.clone()
        }
    );
    assert!(e
        .to_string()
        .starts_with(&format!("cookie rejected by {}", node.node)));
    assert!(!e.to_string().contains("not-the-cookie"));

    let host = support::hostname();
    let e = Connection::connect(&format!("nosuchnode@{host}"), "x", T)
        .await
        .err()
        .unwrap();
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!("no node named nosuchnode on {host} (registered: ")),
        "{msg}"
    );
    assert!(msg.contains(&node.sname), "{msg}");

    let e = Connection::connect("no-at-sign", "x", T)
        .await
        .err()
        .unwrap();
    assert!(matches!(e, BeamError::BadNodeName(_)));

    // The session keeps the reason as its status.
    let s = Session::start(&node.node, "not-the-cookie", false);
    match s.wait_settled(T).await {
        Status::Detached { reason } => assert!(reason.contains("cookie rejected"), "{reason}"),
        other => panic!("expected detached, got {other:?}"),
    }
    s.detach().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn node_killed_mid_session_then_reattaches_by_itself() {
    let mut node = TestNode::start("kv");
    let s = Session::start(&node.node, &node.cookie, false);
    s.wait_attached(T).await.unwrap();
    let conn = s.primary().unwrap();
    // A request in flight when the node dies fails with "went down".
    let pending = tokio::spawn({
        let conn = conn.clone();
        async move {
            conn.rpc(
                "timer",
                "sleep",
                vec![term::int(30_000)],
                Duration::from_secs(60),
            )
            .await
        }
    });
    node.kill();
    let e = pending.await.unwrap().unwrap_err();
    assert!(matches!(e, BeamError::NodeDown { .. }), "{e:?}");
    let reason = wait_for(T, "detached status", || {
        let st = s.status();
        async move {
            match st {
                Status::Detached { reason } => Some(reason),
                _ => None,
            }
        }
    })
    .await;
    assert!(
        reason.contains("went down") || reason.contains("no node named"),
        "{reason}"
    );
    assert!(matches!(s.primary(), Err(BeamError::Detached(_))));

    // Same name, same cookie: the session finds it again by itself.
    let node2 = TestNode::start_named(&node.dir, &node.sname, &node.cookie);
    s.wait_attached(Duration::from_secs(60)).await.unwrap();
    let r = s
        .primary()
        .unwrap()
        .rpc("erlang", "node", vec![], T)
        .await
        .unwrap();
    assert_eq!(term::as_atom(&r), Some(node2.node.as_str()));
    s.detach().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn detach_leaves_the_node_as_found() {
    let node = TestNode::start("kv");
    // Load KV.Calc (interactive mode loads on first call) so call counting has something to count.
    let c = Connection::connect(&node.node, &node.cookie, T)
        .await
        .unwrap();
    c.rpc("Elixir.KV.Calc", "add", vec![term::int(1), term::int(1)], T)
        .await
        .unwrap();
    c.close();
    let before = loaded_and_registered(&node).await;
    let s = Session::start(&node.node, &node.cookie, false);
    s.wait_attached(T).await.unwrap();
    // Use the agent the way the editor does, including queries that load OTP modules.
    let live = orrery::live::LiveModel::new();
    let interest = orrery::live::Interest {
        modules: ["KV.Bucket".to_string(), "KV.Calc".to_string()].into(),
        tables: [":kv_table".to_string()].into(),
        ..Default::default()
    };
    // Mean call times (liveCallTime) too: they set trace flags on processes.
    live.set_call_time(Some(true));
    live.refresh(&s, &interest, true).await;
    let conn = s.primary().unwrap();
    conn.rpc("Elixir.KV.Calc", "add", vec![term::int(1), term::int(1)], T)
        .await
        .unwrap();
    live.refresh(&s, &interest, true).await;
    let snap = live.snapshot();
    assert!(snap.times.contains_key("KV.Calc"), "{:?}", snap.times);
    assert!(snap.modules["KV.Bucket"][0].loaded);
    assert_eq!(snap.modules["KV.Bucket"][0].stale, Some(false));
    let (during, _) = loaded_and_registered(&node).await;
    assert!(during.contains(orrery::agent::MODULE));
    live.stop_tracing(&s).await;
    s.detach().await;
    let after = loaded_and_registered(&node).await;
    assert_eq!(before.0, after.0, "loaded modules differ after detach");
    assert_eq!(before.1, after.1, "registered names differ after detach");
    // Call counting was switched off again.
    let c = Connection::connect(&node.node, &node.cookie, T)
        .await
        .unwrap();
    let info = c
        .rpc(
            "erlang",
            "trace_info",
            vec![
                term::tuple(vec![
                    term::module("KV.Calc"),
                    term::atom("add"),
                    term::int(2),
                ]),
                term::atom("call_count"),
            ],
            T,
        )
        .await
        .unwrap();
    assert!(
        matches!(term::as_tuple(&info), Some([_, v]) if term::is_atom(v, "false")),
        "{info:?}"
    );
    // So were call times, and no process (nor new ones) keeps a trace flag.
    let mfa = term::tuple(vec![
        term::module("KV.Calc"),
        term::atom("add"),
        term::int(2),
    ]);
    let info = c
        .rpc(
            "erlang",
            "trace_info",
            vec![mfa, term::atom("call_time")],
            T,
        )
        .await
        .unwrap();
    assert!(
        matches!(term::as_tuple(&info), Some([_, v]) if term::is_atom(v, "false")),
        "{info:?}"
    );
    let procs = c.rpc("erlang", "processes", vec![], T).await.unwrap();
    let mut who = term::list_ref(&procs).to_vec();
    who.push(term::atom("new"));
    for p in who {
        let f = c
            .rpc(
                "erlang",
                "trace_info",
                vec![p.clone(), term::atom("flags")],
                T,
            )
            .await
            .unwrap();
        if let Some([_, flags]) = term::as_tuple(&f) {
            assert!(term::list_ref(flags).is_empty(), "{p:?} keeps {flags:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn live_state_follows_the_node() {
    let node = TestNode::start("kv");
    let s = Session::start(&node.node, &node.cookie, false);
    s.wait_attached(T).await.unwrap();
    // Modules load on first call in interactive mode; counting starts once loaded.
    let conn = s.primary().unwrap();
    conn.rpc("Elixir.KV.Calc", "add", vec![term::int(0), term::int(0)], T)
        .await
        .unwrap();
    let live = orrery::live::LiveModel::new();
    let interest = orrery::live::Interest {
        modules: ["KV.Bucket".to_string(), "KV.Calc".to_string()].into(),
        tables: [":kv_table".to_string()].into(),
        ..Default::default()
    };
    live.refresh(&s, &interest, true).await;
    let snap = live.snapshot();
    assert_eq!(snap.procs["KV.Bucket"][0].state.as_deref(), Ok("%{}"));
    assert_eq!(snap.modules["KV.Bucket"][0].procs, 1);
    assert_eq!(snap.tables[":kv_table"][0].size, 2);
    assert!(
        snap.tables[":kv_table"][0].rows.contains("alpha: 1"),
        "{:?}",
        snap.tables
    );

    conn.rpc(
        "Elixir.KV.Bucket",
        "put",
        vec![term::atom("count"), term::int(3)],
        T,
    )
    .await
    .unwrap();
    for _ in 0..3 {
        conn.rpc("Elixir.KV.Calc", "add", vec![term::int(1), term::int(2)], T)
            .await
            .unwrap();
    }
    assert!(
        live.refresh(&s, &interest, true).await,
        "snapshot should change"
    );
    let snap = live.snapshot();
    assert_eq!(
        snap.procs["KV.Bucket"][0].state.as_deref(),
        Ok("%{count: 3}")
    );
    assert_eq!(
        orrery::live::render::calls(&snap, "KV.Calc", "add/2"),
        Some((3, 1))
    );
    // Nothing changed: no refresh needed.
    let before = live.snapshot();
    let changed = live.refresh(&s, &interest, true).await;
    assert!(
        !changed,
        "unchanged node, but: {:?}\n vs {:?}",
        before.visible(),
        live.snapshot().visible()
    );
    live.stop_tracing(&s).await;
    s.detach().await;
}
