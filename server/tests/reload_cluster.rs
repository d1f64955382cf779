//! Hot swap on a cluster: two real nodes of the kv fixture connected to each other, the
//! language server attached to one (and, through `attachPeers`, the other). A save changes
//! both nodes, or neither: when one node refuses (its `code_change/3` raises), the other
//! never runs the new code, its state is as before, and the message names the node. And a
//! swap held between its two phases is aborted (processes resumed, code put back) as soon
//! as Orrery goes away.

mod support;

use orrery::beam::term;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;
use support::lsp::LspClient;
use support::{rpc, TestNode};

use support::{
    edit_file as edit, kv_add as add, kv_bucket_state as bucket_state, module_md5 as md5,
};

const LONG: Duration = Duration::from_secs(90);

fn save(c: &mut LspClient, path: &Path) -> String {
    support::lsp::save_and_wait(c, path)
}

#[test]
fn a_cluster_changes_together_or_not_at_all() {
    let dir = support::fixture_copy("kv");
    let cookie = support::random_token("c");
    let a = TestNode::start_named(dir.path(), &support::random_token("kva"), &cookie);
    let b = TestNode::start_named(dir.path(), &support::random_token("kvb"), &cookie);
    let connected = rpc(&a, "net_kernel", "connect_node", vec![term::atom(&b.node)]).unwrap();
    assert!(term::is_atom(&connected, "true"), "{connected:?}");

    // Attached to A; B comes in as A's peer (attachPeers defaults to true).
    let mut c = LspClient::start(&[]);
    c.initialize(dir.path(), json!({"node": a.node, "cookie": a.cookie}));
    let status = c.wait_status(LONG, "both nodes attached", |s| {
        s["attached"] == json!(true) && s["nodes"].as_array().is_some_and(|n| n.len() == 2)
    });
    let names: Vec<&str> = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["name"].as_str())
        .collect();
    assert_eq!(names, vec![a.node.as_str(), b.node.as_str()], "{status}");
    assert!(
        status["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["agent"] == json!(true)),
        "{status}"
    );

    // A save changes both nodes.
    let calc = dir.path().join("lib/kv/calc.ex");
    c.open(&calc);
    assert_eq!((add(&a), add(&b)), (3, 3));
    edit(&calc, "a + b", "a + b + 100");
    let msg = save(&mut c, &calc);
    assert!(
        msg.contains("KV.Calc swapped on 2 nodes") && !msg.contains("Helpers"),
        "{msg}"
    );
    assert_eq!((add(&a), add(&b)), (103, 103));

    // Each node's bucket has its own state.
    rpc(
        &a,
        "Elixir.KV.Bucket",
        "put",
        vec![term::atom("on_a"), term::int(1)],
    )
    .unwrap();
    rpc(
        &b,
        "Elixir.KV.Bucket",
        "put",
        vec![term::atom("on_b"), term::int(2)],
    )
    .unwrap();
    let before = (md5(&a, "Elixir.KV.Bucket"), md5(&b, "Elixir.KV.Bucket"));

    // A new KV.Bucket whose code_change/3 migrates the state on A but raises on B only.
    let bucket = dir.path().join("lib/kv/bucket.ex");
    c.open(&bucket);
    edit(
        &bucket,
        "  @impl true\n  def init(",
        &format!(
            "  @impl true\n  def code_change(_old, state, _extra) do\n    if String.starts_with?(Atom.to_string(Node.self()), \"{}@\") do\n      raise \"no migration on this node\"\n    else\n      {{:ok, Map.put(state, :migrated, true)}}\n    end\n  end\n\n  @impl true\n  def init(",
            b.sname
        ),
    );
    let msg = save(&mut c, &bucket);
    assert!(
        msg.contains(&b.node) && msg.contains("code_change/3 failed"),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("nothing changed on {}", a.node)),
        "{msg}"
    );
    // Neither node changed: same code, same state (A was never migrated), both resumed.
    assert_eq!(
        (md5(&a, "Elixir.KV.Bucket"), md5(&b, "Elixir.KV.Bucket")),
        before
    );
    assert_eq!(bucket_state(&a), "%{on_a: 1}");
    assert_eq!(bucket_state(&b), "%{on_b: 2}");
    rpc(
        &a,
        "Elixir.KV.Bucket",
        "put",
        vec![term::atom("again"), term::int(3)],
    )
    .unwrap();
    rpc(
        &b,
        "Elixir.KV.Bucket",
        "put",
        vec![term::atom("again"), term::int(4)],
    )
    .unwrap();
    assert_eq!(bucket_state(&a), "%{again: 3, on_a: 1}");
    assert_eq!(bucket_state(&b), "%{again: 4, on_b: 2}");

    // The refused version was not recorded: the next save and a rollback behave.
    edit(&calc, "a + b + 100", "a + b + 7");
    let msg = save(&mut c, &calc);
    assert!(
        msg.contains("KV.Calc swapped on 2 nodes") && !msg.contains("Helpers"),
        "{msg}"
    );
    assert_eq!((add(&a), add(&b)), (10, 10));
    let r = c.call(
        "workspace/executeCommand",
        json!({"command": "orrery.rollback", "arguments": ["KV.Calc"]}),
    );
    assert!(
        r.as_str().unwrap().contains("rolled back on 2 nodes"),
        "{r}"
    );
    assert_eq!((add(&a), add(&b)), (103, 103));

    // Once the bucket migrates everywhere, both nodes take it.
    edit(
        &bucket,
        "raise \"no migration on this node\"",
        "{:ok, Map.put(state, :migrated, :b)}",
    );
    let msg = save(&mut c, &bucket);
    assert!(
        msg.contains("KV.Bucket swapped on 2 nodes") && msg.contains("2 processes migrated"),
        "{msg}"
    );
    assert_eq!(bucket_state(&a), "%{again: 3, migrated: true, on_a: 1}");
    assert_eq!(bucket_state(&b), "%{again: 4, migrated: :b, on_b: 2}");
    let _ = c.call("orrery/status", Value::Null);
    assert!(c.shutdown().success());
}

/// `sys` status of the registered process `name`: `running` or `suspended`.
fn sys_state(node: &TestNode, name: &str) -> String {
    let st = rpc(node, "sys", "get_status", vec![term::atom(name)]).unwrap();
    let misc = term::as_tuple(&st)
        .and_then(|t| t.get(3))
        .map(term::list_ref)
        .unwrap_or(&[]);
    misc.get(1)
        .and_then(term::as_atom)
        .unwrap_or("?")
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_held_swap_aborts_when_orrery_goes_away() {
    let node = TestNode::start("kv");
    let t = Duration::from_secs(10);
    let conn = orrery::beam::Connection::connect(&node.node, &node.cookie, t)
        .await
        .unwrap();
    let _agent = orrery::agent::load(&conn, &orrery::agent::Owner::new())
        .await
        .unwrap();
    let obj = conn
        .rpc(
            "code",
            "get_object_code",
            vec![term::atom("Elixir.KV.Bucket")],
            t,
        )
        .await
        .unwrap();
    let bin = term::as_tuple(&obj).unwrap()[1].clone();
    let md5_before = md5(&node, "Elixir.KV.Bucket");

    // Phase one: loaded, the bucket suspended and held for up to a minute…
    let opts = term::map(vec![
        ("timeout", term::int(5000)),
        ("hold", term::int(60_000)),
        ("owner", term::atom(conn.local_name())),
    ]);
    let r = orrery::agent::call_swap(
        &conn,
        "swap",
        vec![term::atom("Elixir.KV.Bucket"), bin, opts],
        t,
    )
    .await
    .unwrap();
    let info = orrery::agent::ok_value(&r).unwrap_or_else(|| panic!("{r:?}"));
    assert!(
        matches!(term::get(info, "token"), Some(eetf::Term::Pid(_))),
        "{info:?}"
    );
    assert_eq!(term::get_int(info, "processes"), Some(1));
    assert_eq!(sys_state(&node, "Elixir.KV.Bucket"), "suspended");

    // …but Orrery goes away before committing: aborted at once, the process runs again.
    conn.close();
    support::wait_until(Duration::from_secs(10), "the bucket to be resumed", || {
        (sys_state(&node, "Elixir.KV.Bucket") == "running").then_some(())
    });
    assert_eq!(md5(&node, "Elixir.KV.Bucket"), md5_before);
    assert_eq!(bucket_state(&node), "%{}");
}
