//! Orrery's tracing next to the user's own (`dbg`, and a tracer in the node's global
//! session as `recon_trace` and `redbug` set): real `orrery lsp`, real kv nodes. Where the
//! node has trace sessions (OTP 27+) call counts, call times (on by default there) and
//! "Trace calls" live in sessions of Orrery's own: the user's tracers get every message,
//! Orrery's counts keep working, and detaching (or Orrery killed with SIGKILL) leaves the
//! user's tracing as it was and no session of Orrery's. Without sessions (OTP 25, 26) the
//! documented fallback: call times off by default and the status says why; a process
//! has one tracer, so the processes Orrery traces stay Orrery's and the user's tracer
//! gets those created after it started (the hover says so); Orrery's counts keep
//! working; Orrery takes back only what it set, so the user's patterns and tracer survive
//! detach, and their `dbg:p(all, c)` traces every process once Orrery is gone.

mod support;

use orrery::beam::term::int;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;
use support::check::{assert_healthy, eval_text, health, wait_pristine};
use support::lsp::{after, hover, LspClient};
use support::tracing::{
    add_via_worker, global_flags, has_sessions, orrery_sessions, start_user_tracing, start_worker,
    stop_user_tracing, user_saw_call, user_traces_all_again, worker_traced_by_orrery,
};
use support::{lib_copy as workspace, rpc, wait_until, TestNode};

const LONG: Duration = Duration::from_secs(90);
const KV: &[&str] = &["Elixir.KV"];
/// Orrery's sessions while it counts, times and traces calls.
const ALL_SESSIONS: [&str; 3] = ["orrery_calls_v1", "orrery_calltime_v1", "orrery_trace_v1"];

fn add(node: &TestNode, a: i64, b: i64) {
    rpc(node, "Elixir.KV.Calc", "add", vec![int(a), int(b)]).unwrap();
}

/// `orrery lsp` on `node` with defaults, `calc.ex` open and "Trace calls" on for
/// `KV.Calc.add/2`, and the user's worker started; returns the client, the document's
/// uri and its source.
fn counting_and_tracing(
    node: &TestNode,
    root: &Path,
    env: &[(&str, &str)],
) -> (LspClient, String, String) {
    let mut c = LspClient::start(env);
    c.initialize(
        root,
        json!({"node": node.node, "cookie": node.cookie, "refreshMs": 200}),
    );
    c.wait_status(LONG, "attach", |s| s["attached"] == json!(true));
    let calc = root.join("lib/kv/calc.ex");
    let uri = c.open(&calc);
    let src = std::fs::read_to_string(&calc).unwrap();
    let r = c.call(
        "workspace/executeCommand",
        json!({"command": "orrery.traceCalls", "arguments": ["KV.Calc.add/2"]}),
    );
    assert!(
        r.as_str()
            .is_some_and(|s| s.starts_with("tracing calls of")),
        "{r}"
    );
    start_worker(node);
    (c, uri, src)
}

/// Wait until the hover on `def add` shows the call `add(a, 1)` made by the worker,
/// traced, and counts.
fn wait_traced(c: &mut LspClient, node: &TestNode, uri: &str, src: &str, a: i64) -> String {
    wait_until(LONG, &format!("add({a}, 1) traced and counted"), || {
        add_via_worker(node, a, 1);
        let h = hover(c, uri, after(src, "def ad"));
        (h.contains(&format!("`add({a}, 1)` → `{}`", a + 1)) && h.contains("calls since attach"))
            .then_some(h)
    })
}

/// The count in "N calls since attach".
fn count_in(hover: &str) -> i64 {
    let before = hover.split(" call").next().unwrap_or("");
    before
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no call count in {hover}"))
}

fn node_status(c: &mut LspClient) -> Value {
    c.call("orrery/status", Value::Null)["nodes"][0].clone()
}

#[test]
fn user_tracing_keeps_working_while_orrery_counts_and_traces() {
    let node = TestNode::start("kv");
    support::kv_add(&node); // loaded (interactive mode loads on first call)
    let before = health(&node);
    let sessions = has_sessions(&node);
    let ws = workspace(&node);
    let (mut c, uri, src) = counting_and_tracing(&node, ws.path(), &[]);
    let st = node_status(&mut c);
    assert_eq!(st["traceSessions"], json!(sessions), "{st}");

    if sessions {
        // Call times are on by default, in Orrery's own sessions; nothing of Orrery's is
        // in the node's global session.
        let h = wait_until(LONG, "a mean call time by default", || {
            let h = wait_traced(&mut c, &node, &uri, &src, 1);
            h.contains(" · mean ").then_some(h)
        });
        assert!(!h.contains("no trace sessions"), "{h}");
        assert!(
            st["callTimes"]
                .as_str()
                .unwrap()
                .starts_with("on, in Orrery's own"),
            "{st}"
        );
        wait_until(LONG, "Orrery's three sessions", || {
            c.call("orrery/status", Value::Null);
            let s = orrery_sessions(&node);
            ALL_SESSIONS
                .iter()
                .all(|n| s.iter().any(|x| x == n))
                .then_some(())
        });
        assert_eq!(global_flags(&node), "[]");

        // The user traces with dbg and in the global session: both get the call, and so
        // does Orrery, whose counts go on.
        start_user_tracing(&node, "KV.Calc", true);
        let h1 = wait_traced(&mut c, &node, &uri, &src, 21);
        wait_until(LONG, "the user's tracers get add(21, 1)", || {
            c.call("orrery/status", Value::Null);
            (user_saw_call(&node, "dbg", "KV.Calc", "add", "[21, 1]")
                && user_saw_call(&node, "global", "KV.Calc", "add", "[21, 1]"))
            .then_some(())
        });
        add(&node, 22, 1);
        let h2 = wait_traced(&mut c, &node, &uri, &src, 23);
        assert!(count_in(&h2) > count_in(&h1), "{h1}\n{h2}");
        wait_until(
            LONG,
            "the user's tracers get add(22, 1) and add(23, 1)",
            || {
                ["[22, 1]", "[23, 1]"]
                    .iter()
                    .all(|args| {
                        user_saw_call(&node, "dbg", "KV.Calc", "add", args)
                            && user_saw_call(&node, "global", "KV.Calc", "add", args)
                    })
                    .then_some(())
            },
        );

        // Detach: Orrery's sessions go; the user's tracing is as it was and still delivers.
        assert!(c.shutdown().success());
        assert_eq!(orrery_sessions(&node), Vec::<String>::new());
        assert_eq!(
            eval_text(&node, ":erlang.trace_info({KV.Calc, :add, 2}, :match_spec)"),
            "{:match_spec, [{:_, [], [{:return_trace}]}]}",
            "the user's pattern in the global session"
        );
        let on_add = eval_text(&node, ":trace.session_info({KV.Calc, :add, 2})");
        assert!(on_add.contains("dbg: "), "dbg's pattern: {on_add}");
        add(&node, 31, 1);
        add_via_worker(&node, 32, 1);
        wait_until(
            LONG,
            "the user's tracers get add(31, 1) and add(32, 1) after detach",
            || {
                ["[31, 1]", "[32, 1]"]
                    .iter()
                    .all(|args| {
                        user_saw_call(&node, "dbg", "KV.Calc", "add", args)
                            && user_saw_call(&node, "global", "KV.Calc", "add", args)
                    })
                    .then_some(())
            },
        );
    } else {
        // The fallback: call times off by default, and the status says why; the hover says
        // that Orrery holds the processes it traces.
        let h = wait_traced(&mut c, &node, &uri, &src, 1);
        assert!(!h.contains(" · mean "), "{h}");
        assert!(h.contains("has no trace sessions"), "{h}");
        let why = st["callTimes"].as_str().unwrap();
        assert!(
            why.starts_with("off: the node has no trace sessions"),
            "{st}"
        );
        assert_eq!(orrery_sessions(&node), Vec::<String>::new());

        // The user starts dbg after Orrery: the worker, which Orrery traces, stays
        // Orrery's; processes created after dbg started are dbg's. Orrery's counts go on.
        start_user_tracing(&node, "KV.Calc", false);
        assert!(
            worker_traced_by_orrery(&node),
            "the worker is Orrery's to trace"
        );
        let h1 = wait_traced(&mut c, &node, &uri, &src, 21);
        add(&node, 22, 1);
        wait_until(LONG, "dbg gets add(22, 1) from a new process", || {
            c.call("orrery/status", Value::Null);
            user_saw_call(&node, "dbg", "KV.Calc", "add", "[22, 1]").then_some(())
        });
        let h2 = wait_traced(&mut c, &node, &uri, &src, 23);
        assert!(count_in(&h2) > count_in(&h1), "{h1}\n{h2}");

        // Detach: Orrery takes back only what it set. dbg's pattern (set over Orrery's)
        // and its tracing of new processes stay; once Orrery is gone the user's
        // dbg:p(all, c) traces every process, the worker too.
        assert!(c.shutdown().success());
        assert_eq!(
            eval_text(&node, ":erlang.trace_info({KV.Calc, :add, 2}, :match_spec)"),
            "{:match_spec, [{:_, [], [{:exception_trace}]}]}",
            "dbg's pattern"
        );
        add(&node, 31, 1);
        wait_until(LONG, "dbg gets add(31, 1) after detach", || {
            user_saw_call(&node, "dbg", "KV.Calc", "add", "[31, 1]").then_some(())
        });
        user_traces_all_again(&node);
        add_via_worker(&node, 32, 1);
        wait_until(LONG, "dbg gets the worker's add(32, 1)", || {
            user_saw_call(&node, "dbg", "KV.Calc", "add", "[32, 1]").then_some(())
        });
    }
    // The user stops their tracing: the node is as it was found.
    stop_user_tracing(&node);
    wait_pristine(&node, KV, LONG);
    assert_healthy(&node, &before);
}

/// `orrery lsp` SIGKILLed while it counts, times and traces calls next to the user's
/// tracing: the guard leaves no session of Orrery's (OTP 27+) and none of its flags or
/// patterns, and the user's tracing keeps working.
#[test]
fn lsp_killed_while_tracing_leaves_the_users_tracing_and_no_session() {
    let node = TestNode::start("kv");
    support::kv_add(&node);
    let before = health(&node);
    let sessions = has_sessions(&node);
    let ws = workspace(&node);
    let (mut c, uri, src) = counting_and_tracing(&node, ws.path(), &[("ORRERY_GRACE_MS", "300")]);
    wait_traced(&mut c, &node, &uri, &src, 1);
    start_user_tracing(&node, "KV.Calc", sessions);
    if sessions {
        wait_until(LONG, "Orrery's three sessions", || {
            c.call("orrery/status", Value::Null);
            let s = orrery_sessions(&node);
            ALL_SESSIONS
                .iter()
                .all(|n| s.iter().any(|x| x == n))
                .then_some(())
        });
    }
    wait_traced(&mut c, &node, &uri, &src, 21);
    if sessions {
        // A tracer that dies does not end its session (see the next test): the guard
        // holds it and destroys it all the same.
        assert_eq!(
            eval_text(
                &node,
                "Process.exit(Process.whereis(:orrery_calltime_v1), :kill)"
            ),
            "true"
        );
    }
    unsafe {
        libc::kill(c.pid() as i32, libc::SIGKILL);
    }
    // The guard's grace period passes and it undoes everything of Orrery's.
    wait_until(LONG, "the guard removed Orrery's agent", || {
        eval_text(
            &node,
            "Enum.any?(:code.all_loaded(), fn {m, _} -> String.starts_with?(Atom.to_string(m), \"orrery\") end)",
        )
        .eq("false")
        .then_some(())
    });
    assert_eq!(orrery_sessions(&node), Vec::<String>::new());
    if sessions {
        add(&node, 41, 1);
        add_via_worker(&node, 42, 1);
        wait_until(
            LONG,
            "the user's tracers get add(41, 1) and add(42, 1)",
            || {
                ["[41, 1]", "[42, 1]"]
                    .iter()
                    .all(|args| {
                        user_saw_call(&node, "dbg", "KV.Calc", "add", args)
                            && user_saw_call(&node, "global", "KV.Calc", "add", args)
                    })
                    .then_some(())
            },
        );
    } else {
        assert_eq!(
            eval_text(&node, ":erlang.trace_info({KV.Calc, :add, 2}, :match_spec)"),
            "{:match_spec, [{:_, [], [{:exception_trace}]}]}",
            "dbg's pattern"
        );
        add(&node, 41, 1);
        wait_until(LONG, "dbg gets add(41, 1)", || {
            user_saw_call(&node, "dbg", "KV.Calc", "add", "[41, 1]").then_some(())
        });
        user_traces_all_again(&node);
        add_via_worker(&node, 42, 1);
        wait_until(LONG, "dbg gets the worker's add(42, 1)", || {
            user_saw_call(&node, "dbg", "KV.Calc", "add", "[42, 1]").then_some(())
        });
    }
    stop_user_tracing(&node);
    wait_pristine(&node, KV, LONG);
    assert_healthy(&node, &before);
}

/// What the guard relies on, checked on the node's OTP: a session whose tracer dies is not
/// destroyed (its call counts go on), one whose handle nobody holds is. Without sessions
/// the node has no `trace` module to call.
#[test]
fn a_session_outlives_its_tracer_but_not_its_handle() {
    let node = TestNode::start("kv");
    support::kv_add(&node);
    if !has_sessions(&node) {
        assert_eq!(
            eval_text(&node, "function_exported?(:trace, :session_create, 3)"),
            "false"
        );
        return;
    }
    let code = r#"
      names = fn -> for {n, _} <- :trace.session_info(:all), do: n end
      tracer = spawn(fn -> receive do :stop -> :ok end end)
      s = :trace.session_create(:test_tracer_dies, tracer, [])
      :trace.function(s, {KV.Calc, :add, 2}, true, [:call_count])
      ref = Process.monitor(tracer)
      Process.exit(tracer, :kill)
      receive do {:DOWN, ^ref, _, _, _} -> :ok end
      KV.Calc.add(1, 2)
      after_tracer = {:test_tracer_dies in names.(), :trace.info(s, {KV.Calc, :add, 2}, :call_count)}
      :trace.session_destroy(s)
      me = self()
      holder = spawn(fn ->
        t = spawn(fn -> receive do :stop -> :ok end end)
        s = :trace.session_create(:test_handle_dropped, t, [])
        send(me, :created)
        receive do :stop -> s end
      end)
      receive do :created -> :ok end
      held = :test_handle_dropped in names.()
      ref2 = Process.monitor(holder)
      Process.exit(holder, :kill)
      receive do {:DOWN, ^ref2, _, _, _} -> :ok end
      :erlang.garbage_collect()
      {after_tracer, held, :test_handle_dropped in names.()}
    "#;
    let t = eval_text(&node, code);
    assert!(t.starts_with("{{true, {:call_count, 1}}, "), "{t}");
    // The handle is dropped with the process that held it; the runtime destroys the
    // session when its last reference goes, which may take a moment.
    assert!(t.contains(", true, "), "{t}");
    wait_until(LONG, "a session without a handle destroyed", || {
        (eval_text(&node, "for {n, _} <- :trace.session_info(:all), do: n") == "[:legacy]")
            .then_some(())
    });
}
