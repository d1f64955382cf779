//! The user's node is never harmed: saves and breakpoints on code shaped like real apps
//! (config read at compile time, Agents, behaviour-only GenServers, busy servers,
//! short-lived processes), and Orrery killed (SIGKILL) in each state. After each, the
//! node is exactly as found: no module of ours, nothing suspended, no trace flag or
//! pattern, the code of the build on disk, and no process crashed or restarted.

mod support;

use orrery::beam::term;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;
use support::check::{assert_healthy, health, not_pristine, wait_pristine};
use support::dap::DapClient;
use support::lsp::LspClient;
use support::{edit_file as edit, orchard, rpc, wait_until, TestNode};

const LONG: Duration = Duration::from_secs(90);
const APPS: &[&str] = &["Elixir.Store", "Elixir.Web", "store_"];
/// The guard's grace period in these tests (Orrery's default is 10 s).
const GRACE_MS: &str = "300";

fn int(node: &TestNode, m: &str, f: &str, args: Vec<eetf::Term>) -> i64 {
    term::as_int(&rpc(node, m, f, args).unwrap()).unwrap()
}

fn md5_on_disk(dir: &Path, app: &str, module: &str) -> Vec<u8> {
    let beam = dir.join(format!("_build/dev/lib/{app}/ebin/{module}.beam"));
    let out = std::process::Command::new("erl")
        .args(["-noshell", "-eval"])
        .arg(format!(
            "{{ok, {{_, M}}}} = beam_lib:md5(\"{}\"), io:format(\"~w\", [binary_to_list(M)]), halt().",
            beam.display()
        ))
        .output()
        .unwrap();
    serde_json::from_slice::<Vec<u8>>(&out.stdout).unwrap()
}

fn md5_loaded(node: &TestNode, module: &str) -> Vec<u8> {
    let r = rpc(
        node,
        "erlang",
        "get_module_info",
        vec![term::atom(module), term::atom("md5")],
    )
    .unwrap();
    match r {
        eetf::Term::Binary(b) => b.bytes,
        other => panic!("{other:?}"),
    }
}

#[test]
fn saves_compile_as_mix_does_and_never_harm_agents_or_busy_servers() {
    let (dir, node) = orchard();
    let before = health(&node);
    let mut c = support::lsp::start_attached(&node, dir.path(), json!({}));
    let ticker = dir.path().join("apps/store/lib/store/ticker.ex");
    // Open in the editor: the watcher leaves open files to the editor's saves.
    for f in [
        "store/lib/store/ticker.ex",
        "store/lib/store/bucket.ex",
        "store/lib/store/cache.ex",
        "web/lib/web/job.ex",
        "web/lib/web/busy.ex",
    ] {
        c.open(&dir.path().join("apps").join(f));
    }

    // Config read at compile time: an unchanged save compiles to mix's very module, so
    // there is nothing to swap.
    let msg = support::lsp::save_for(&mut c, &ticker, "Store.Ticker");
    assert!(msg.contains("already runs this code"), "{msg}");
    assert_eq!(
        md5_loaded(&node, "Elixir.Store.Ticker"),
        md5_on_disk(dir.path(), "store", "Elixir.Store.Ticker"),
        "an unchanged file compiles to the module mix built"
    );
    let label = rpc(&node, "Elixir.Store.Ticker", "label", vec![]).unwrap();
    assert_eq!(term::as_string(&label).as_deref(), Some("dev"));
    // It keeps ticking on its configured period (nil would have crashed it).
    let n = int(&node, "Elixir.Store.Ticker", "count", vec![]);
    wait_until(LONG, "ticks", || {
        (int(&node, "Elixir.Store.Ticker", "count", vec![]) > n + 2).then_some(())
    });

    // An Agent (Agent.Server is its callback module): swapped, its state kept.
    let bucket = dir.path().join("apps/store/lib/store/bucket.ex");
    edit(
        &bucket,
        "def limit, do: @limit",
        "def limit, do: @limit + 1",
    );
    let msg = support::lsp::save_for(&mut c, &bucket, "Store.Bucket");
    assert!(
        msg.contains("Store.Bucket") && msg.contains(" swapped on "),
        "{msg}"
    );
    assert_eq!(int(&node, "Elixir.Store.Bucket", "limit", vec![]), 1001);
    let ticks = rpc(
        &node,
        "Elixir.Store.Bucket",
        "get",
        vec![term::atom("Elixir.Store.Bucket"), term::atom("ticks")],
    )
    .unwrap();
    assert!(term::as_int(&ticks).unwrap_or(0) > 0, "{ticks:?}");

    // A GenServer written against @behaviour GenServer (no code_change/3).
    let cache = dir.path().join("apps/store/lib/store/cache.ex");
    edit(&cache, "[] -> nil end", "[] -> :none end");
    let msg = support::lsp::save_for(&mut c, &cache, "Store.Cache");
    assert!(
        msg.contains("Store.Cache") && msg.contains(" swapped on "),
        "{msg}"
    );

    // A module run by short-lived processes, many times a second.
    let job = dir.path().join("apps/web/lib/web/job.ex");
    edit(&job, "    n\n  end", "    {:ok, n}\n  end");
    let msg = support::lsp::save_for(&mut c, &job, "Web.Job");
    assert!(
        msg.contains("Web.Job") && msg.contains(" swapped on "),
        "{msg}"
    );

    // A busy GenServer: the swap says so, changes nothing, and the server runs on.
    let busy = dir.path().join("apps/web/lib/web/busy.ex");
    edit(&busy, "calls: s.calls + 1", "calls: s.calls + 2");
    let call = support::rpc_in_background(
        &node,
        "Elixir.Web.Busy",
        "work",
        vec![term::int(7000)],
        Duration::from_secs(30),
    );
    wait_until(LONG, "the busy call under way", || {
        let st = rpc(
            &node,
            "erlang",
            "whereis",
            vec![term::atom("Elixir.Web.Busy")],
        )
        .ok()?;
        let info = rpc(
            &node,
            "erlang",
            "process_info",
            vec![st, term::atom("current_function")],
        )
        .ok()?;
        format!("{info:?}").contains("sleep").then_some(())
    });
    let msg = support::lsp::save_for(&mut c, &busy, "Web.Busy");
    assert!(
        msg.contains("busy") && msg.contains("Nothing changed"),
        "{msg}"
    );
    assert_eq!(term::as_atom(&call.join().unwrap().unwrap()), Some("done"));
    let again = support::rpc_in_background(
        &node,
        "Elixir.Web.Busy",
        "work",
        vec![term::int(1)],
        Duration::from_secs(10),
    );
    assert_eq!(
        term::as_atom(&again.join().unwrap().unwrap()),
        Some("done"),
        "the busy server is not left suspended"
    );

    // Back to the sources on disk: the node runs mix's build again.
    edit(
        &bucket,
        "def limit, do: @limit + 1",
        "def limit, do: @limit",
    );
    support::lsp::save_for(&mut c, &bucket, "Store.Bucket");
    edit(&cache, "[] -> :none end", "[] -> nil end");
    support::lsp::save_for(&mut c, &cache, "Store.Cache");
    edit(&job, "    {:ok, n}\n  end", "    n\n  end");
    support::lsp::save_for(&mut c, &job, "Web.Job");
    edit(&busy, "calls: s.calls + 2", "calls: s.calls + 1");
    support::lsp::save_for(&mut c, &busy, "Web.Busy");
    c.shutdown();
    wait_pristine(&node, APPS, LONG);
    assert_healthy(&node, &before);
}

/// A DAP session with a process paused at a breakpoint in code run by short-lived
/// processes; `orrery dap` is then SIGKILLed. The guard resumes, disarms, restores.
#[test]
fn dap_killed_while_paused_leaves_the_node_as_found() {
    let (dir, node) = orchard();
    let before = health(&node);
    let mut c = DapClient::start_with(&[("ORRERY_GRACE_MS", GRACE_MS)]);
    c.ok(
        "initialize",
        json!({"adapterID": "orrery", "linesStartAt1": true}),
    );
    c.ok(
        "attach",
        json!({"node": node.node, "cookie": node.cookie, "cwd": dir.path(), "record": true}),
    );
    c.wait_event("initialized", LONG);
    let job = dir.path().join("apps/web/lib/web/job.ex");
    let bps = c.ok(
        "setBreakpoints",
        json!({"source": {"path": job}, "breakpoints": [{"line": 5}]}),
    );
    assert_eq!(bps["breakpoints"][0]["verified"], json!(true), "{bps}");
    c.wait_event("stopped", LONG);
    assert!(!not_pristine(&node, APPS).is_empty(), "probes are in");
    unsafe {
        libc::kill(c.pid() as i32, libc::SIGKILL);
    }
    wait_pristine(&node, APPS, LONG);
    assert_healthy(&node, &before);
    // The app goes on: jobs run again.
    let n = int(
        &node,
        "Elixir.Store.Shelf",
        "stock",
        vec![term::binary("apples")],
    );
    wait_until(LONG, "jobs running", || {
        (int(
            &node,
            "Elixir.Store.Shelf",
            "stock",
            vec![term::binary("apples")],
        ) > n)
            .then_some(())
    });
}

/// `orrery lsp` with call tracing and call times on, SIGKILLed: the guard removes the
/// trace patterns and flags and the agent.
#[test]
fn lsp_killed_while_tracing_leaves_the_node_as_found() {
    let (dir, node) = orchard();
    let before = health(&node);
    let mut c = LspClient::start(&[("ORRERY_GRACE_MS", GRACE_MS)]);
    c.initialize(
        dir.path(),
        json!({"node": node.node, "cookie": node.cookie, "refreshMs": 200, "liveCallTime": true}),
    );
    c.wait_status(LONG, "attach", |s| s["attached"] == json!(true));
    let job = dir.path().join("apps/web/lib/web/job.ex");
    c.open(&job);
    let r = c.call(
        "workspace/executeCommand",
        json!({"command": "orrery.traceCalls", "arguments": ["Web.Job.run/1"]}),
    );
    assert!(r.get("error").is_none(), "{r}");
    wait_until(LONG, "tracing on", || {
        (!not_pristine(&node, APPS).is_empty()).then_some(())
    });
    unsafe {
        libc::kill(c.pid() as i32, libc::SIGKILL);
    }
    wait_pristine(&node, APPS, LONG);
    assert_healthy(&node, &before);
}

/// SIGKILL in the middle of saves: whatever point the swap had reached, the node ends
/// with its own code, nothing held suspended.
#[test]
fn lsp_killed_mid_swap_leaves_the_node_as_found() {
    let (dir, node) = orchard();
    let before = health(&node);
    let mut c = LspClient::start(&[("ORRERY_GRACE_MS", GRACE_MS)]);
    c.initialize(
        dir.path(),
        json!({"node": node.node, "cookie": node.cookie, "refreshMs": 200}),
    );
    c.wait_status(LONG, "attach", |s| s["attached"] == json!(true));
    let files = [
        "apps/store/lib/store/shelf.ex",
        "apps/store/lib/store/ticker.ex",
    ];
    for f in files {
        c.open(&dir.path().join(f));
    }
    // Edits: whether a swap lands before the kill or not, nothing is held suspended and
    // each module runs either its old or its new code.
    edit(
        &dir.path().join(files[0]),
        "items: 0}",
        "items: 0, since: 0}",
    );
    edit(
        &dir.path().join(files[1]),
        "{:reply, n, n}",
        "{:reply, n + 0 * 1, n}",
    );
    for f in files {
        c.notify(
            "textDocument/didSave",
            json!({"textDocument": {"uri": format!("file://{}", dir.path().join(f).display())}}),
        );
    }
    // Wait for the first swap to begin (the compile node is up) and kill.
    wait_until(LONG, "a compile under way", || {
        c.seen
            .iter()
            .any(|v: &Value| v["method"] == "$/progress" || v["method"] == "window/logMessage")
            .then_some(())
    });
    unsafe {
        libc::kill(c.pid() as i32, libc::SIGKILL);
    }
    // Everything but the two edited modules (whose new code may have landed) is as found.
    let edited =
        |l: &String| l.starts_with("Store.Shelf is not") || l.starts_with("Store.Ticker is not");
    wait_until(LONG, "the node as found", || {
        let left: Vec<String> = not_pristine(&node, APPS)
            .into_iter()
            .filter(|l| !edited(l))
            .collect();
        left.is_empty().then_some(())
    });
    assert_healthy(&node, &before);
}

fn dap_attach(dir: &Path, node: &TestNode, extra: Value) -> DapClient {
    let mut c = DapClient::start_with(&[("ORRERY_GRACE_MS", GRACE_MS)]);
    c.attach_to(node, dir, extra);
    c
}

/// Evaluate at a breakpoint runs bounded, as the paused process, and audited; it cannot
/// stop the node, exhaust its memory or run on forever.
#[test]
fn evaluate_is_bounded_and_cannot_stop_the_node() {
    let (dir, node) = orchard();
    let before = health(&node);
    let mut c = dap_attach(dir.path(), &node, json!({}));
    let job = dir.path().join("apps/web/lib/web/job.ex");
    c.ok(
        "setBreakpoints",
        json!({"source": {"path": job}, "breakpoints": [{"line": 5}]}),
    );
    let stopped = c.wait_event("stopped", LONG);
    let thread = stopped["body"]["threadId"].as_i64().unwrap();
    let st = c.ok("stackTrace", json!({"threadId": thread}));
    let frame = st["stackFrames"][0]["id"].clone();
    let eval = |c: &mut DapClient, e: &str| {
        c.request(
            "evaluate",
            json!({"expression": e, "frameId": frame, "context": "repl"}),
        )
    };
    let r = eval(&mut c, "System.halt()");
    assert_eq!(r["success"], json!(false), "{r}");
    assert!(
        r["message"]
            .as_str()
            .unwrap_or("")
            .contains("stops the node"),
        "{r}"
    );
    let r = eval(&mut c, "Stream.cycle([1]) |> Enum.to_list()");
    assert_eq!(r["success"], json!(false), "{r}");
    assert!(
        r["message"].as_str().unwrap_or("").contains("memory"),
        "{r}"
    );
    let r = eval(&mut c, "receive do after 600_000 -> :never end");
    assert_eq!(r["success"], json!(false), "{r}");
    assert!(
        r["message"].as_str().unwrap_or("").contains("longer than"),
        "{r}"
    );
    // self() is the paused process, and its bindings are there.
    let r = eval(&mut c, "{Process.info(self(), :current_function), n >= 0}");
    assert_eq!(r["success"], json!(true), "{r}");
    let shown = r["body"]["result"].as_str().unwrap_or("");
    assert!(
        shown.contains("orrery_dbg_v1") && shown.contains("true"),
        "{r}"
    );
    let audit = std::fs::read_to_string(dir.path().join(".orrery/audit.log")).unwrap();
    assert!(
        audit.contains("\"action\":\"evaluate\"") && audit.contains("System.halt"),
        "{audit}"
    );
    c.ok("disconnect", json!({}));
    wait_pristine(&node, APPS, LONG);
    assert_healthy(&node, &before);
    // Nothing evaluate started is left running.
    let stuck = rpc(
        &node,
        "Elixir.Code",
        "eval_string",
        vec![term::binary(
            "for p <- Process.list(), match?({:current_function, {:erl_eval, _, _}}, Process.info(p, :current_function)), do: p",
        )],
    )
    .unwrap();
    assert!(
        format!("{stuck:?}").contains("Nil") || format!("{stuck:?}").contains("[]"),
        "{stuck:?}"
    );
}

/// With `allowWrites: false` the debugger changes nothing: no probes, no recording, no
/// evaluation beyond the frame's variables; each refusal says why.
#[test]
fn read_only_debug_session_changes_nothing() {
    let (dir, node) = orchard();
    let mut c = dap_attach(dir.path(), &node, json!({"allowWrites": false}));
    let job = dir.path().join("apps/web/lib/web/job.ex");
    let bps = c.ok(
        "setBreakpoints",
        json!({"source": {"path": job}, "breakpoints": [{"line": 5}]}),
    );
    assert_eq!(bps["breakpoints"][0]["verified"], json!(false), "{bps}");
    assert!(
        bps["breakpoints"][0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("allowWrites"),
        "{bps}"
    );
    let r = c.request(
        "evaluate",
        json!({"expression": "1 + 1", "context": "repl"}),
    );
    assert_eq!(r["success"], json!(false), "{r}");
    assert!(
        r["message"].as_str().unwrap_or("").contains("allowWrites"),
        "{r}"
    );
    // Only the agent (and its tables) is there; no module was touched.
    let left = not_pristine(&node, APPS);
    assert!(
        left.iter()
            .all(|l| l.starts_with("module loaded: orrery")
                || l.starts_with("ETS table left: orrery")),
        "{left:?}"
    );
    c.ok("disconnect", json!({}));
    wait_pristine(&node, APPS, LONG);
}

/// Versions kept for rollback belong to one incarnation of the node: after a restart
/// there is nothing to roll back to (the node runs what it booted).
#[test]
fn rollback_history_ends_when_the_node_restarts() {
    let dir = support::fixture_copy("kv");
    let (sname, cookie) = (support::random_token("kvi"), support::random_token("c"));
    let mut node = TestNode::start_named(dir.path(), &sname, &cookie);
    let mut c = support::lsp::start_attached(&node, dir.path(), json!({}));
    let calc = dir.path().join("lib/kv/calc.ex");
    c.open(&calc);
    // Loaded (a module nobody loaded yet is left to the code server).
    assert_eq!(support::kv_add(&node), 3);
    edit(&calc, "a + b", "a + b + 100");
    let msg = support::lsp::save_for(&mut c, &calc, "KV.Calc");
    assert!(msg.contains(" swapped on "), "{msg}");
    node.kill();
    c.wait_status(LONG, "detached", |s| s["attached"] == json!(false));
    edit(&calc, "a + b + 100", "a + b");
    let node = TestNode::start_named(dir.path(), &sname, &cookie);
    c.wait_status(LONG, "re-attached", |s| s["attached"] == json!(true));
    let r = c.request(
        "workspace/executeCommand",
        json!({"command": "orrery.rollback", "arguments": ["KV.Calc"]}),
        LONG,
    );
    let text = r.to_string();
    assert!(text.contains("no previous version"), "{text}");
    assert_eq!(
        support::kv_add(&node),
        3,
        "the restarted node runs what it booted"
    );
    c.shutdown();
}

/// The compile node killed in the middle of a compile: the save fails with a message,
/// the node is untouched, and the next save works on a fresh compile node.
#[test]
fn compile_node_killed_mid_compile() {
    let (dir, node) = orchard();
    let before = health(&node);
    let mut c = support::lsp::start_attached(&node, dir.path(), json!({}));
    let shelf = dir.path().join("apps/store/lib/store/shelf.ex");
    c.open(&shelf);
    // A compile that takes a while (a module attribute computed slowly).
    edit(
        &shelf,
        "@registry Store.Registry",
        "@registry Store.Registry\n  @slow (Process.sleep(4000); 1)",
    );
    let n = c.count("window/showMessage");
    c.notify(
        "textDocument/didSave",
        json!({"textDocument": {"uri": format!("file://{}", shelf.display())}}),
    );
    let lsp = c.pid();
    // The compile node: a process of the language server's with `orrery_cc_` in its name.
    let ppid = |pid: u32| -> Option<u32> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("PPid:"))?
            .trim()
            .parse()
            .ok()
    };
    let cc = wait_until(LONG, "the compile node", || {
        // Answer the server's requests (progress) while waiting.
        let _ = c.call("orrery/status", Value::Null);
        std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            if !String::from_utf8_lossy(&cmd).contains("orrery_cc_") {
                return None;
            }
            let mut p = pid;
            for _ in 0..5 {
                p = ppid(p)?;
                if p == lsp {
                    return Some(pid);
                }
            }
            None
        })
    });
    unsafe {
        libc::kill(cc as i32, libc::SIGKILL);
    }
    let v = c.wait_nth(LONG, "window/showMessage", n + 1);
    let msg = v["params"]["message"].as_str().unwrap_or("").to_string();
    assert!(!msg.contains(" swapped on "), "{msg}");
    assert!(support::pid_alive(lsp), "the language server survives");
    // Back to the plain source: the save works on a new compile node.
    edit(
        &shelf,
        "@registry Store.Registry\n  @slow (Process.sleep(4000); 1)",
        "@registry Store.Registry",
    );
    let msg = support::lsp::save_for(&mut c, &shelf, "Store.Shelf");
    assert!(msg.contains("already runs this code"), "{msg}");
    c.shutdown();
    wait_pristine(&node, APPS, LONG);
    assert_healthy(&node, &before);
}

/// A module a process runs a local loop in: loading it would never reach that process and
/// its old code would block every later swap. Saves and breakpoints are refused with the
/// reason, and nothing changes.
#[test]
fn modules_run_by_local_loops_are_refused_with_the_reason() {
    let (dir, node) = orchard();
    let before = health(&node);
    let mut c = support::lsp::start_attached(&node, dir.path(), json!({}));
    let metrics = dir.path().join("apps/store/lib/store/metrics.ex");
    c.open(&metrics);
    let was = md5_loaded(&node, "Elixir.Store.Metrics");
    edit(&metrics, "100 -> :ok", "200 -> :ok");
    let msg = support::lsp::save_for(&mut c, &metrics, "Store.Metrics");
    assert!(
        msg.contains("loop") && msg.contains("Nothing changed"),
        "{msg}"
    );
    // The node runs what it ran.
    assert_eq!(md5_loaded(&node, "Elixir.Store.Metrics"), was);
    // Back: the node already runs it, and `_build` comes back with the source.
    edit(&metrics, "200 -> :ok", "100 -> :ok");
    let msg = support::lsp::save_for(&mut c, &metrics, "Store.Metrics");
    assert!(msg.contains("already runs this code"), "{msg}");
    assert_eq!(
        md5_on_disk(dir.path(), "store", "Elixir.Store.Metrics"),
        was
    );
    c.shutdown();
    let mut d = dap_attach(dir.path(), &node, json!({}));
    let bps = d.ok(
        "setBreakpoints",
        json!({"source": {"path": metrics}, "breakpoints": [{"line": 14}]}),
    );
    assert_eq!(bps["breakpoints"][0]["verified"], json!(false), "{bps}");
    assert!(
        bps["breakpoints"][0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("loop"),
        "{bps}"
    );
    // A module nobody loaded yet: instrumented for the session, unloaded after it.
    d.ok("disconnect", json!({}));
    wait_pristine(&node, APPS, LONG);
    assert_healthy(&node, &before);
}

/// The node dies while a swap waits on a busy server: the save says so, the server goes
/// on, and the restarted node (re-attached by itself) runs its build with nothing
/// replayed into it.
#[test]
fn node_killed_mid_swap() {
    let (dir, mut node) = orchard();
    let (sname, cookie) = (node.sname.clone(), node.cookie.clone());
    let mut c = support::lsp::start_attached(&node, dir.path(), json!({}));
    let busy = dir.path().join("apps/web/lib/web/busy.ex");
    c.open(&busy);
    edit(&busy, "calls: s.calls + 1", "calls: s.calls + 2");
    let _call = support::rpc_in_background(
        &node,
        "Elixir.Web.Busy",
        "work",
        vec![term::int(20_000)],
        Duration::from_secs(30),
    );
    let busy_pid = || {
        rpc(
            &node,
            "erlang",
            "whereis",
            vec![term::atom("Elixir.Web.Busy")],
        )
    };
    wait_until(LONG, "the busy call under way", || {
        let info = rpc(
            &node,
            "erlang",
            "process_info",
            vec![busy_pid().ok()?, term::atom("current_function")],
        )
        .ok()?;
        format!("{info:?}").contains("sleep").then_some(())
    });
    let n = c.count("window/showMessage");
    c.notify(
        "textDocument/didSave",
        json!({"textDocument": {"uri": format!("file://{}", busy.display())}}),
    );
    // The swap is under way on the node (it waits for the busy server to leave its code).
    let suspending = r#"Enum.any?(Process.list(), fn p ->
      case Process.info(p, :current_stacktrace) do
        {:current_stacktrace, st} -> Enum.any?(st, &(elem(&1, 0) == :orrery_swap_v1))
        _ -> false
      end
    end)"#;
    wait_until(LONG, "the swap waiting on the busy server", || {
        // Answer the server's progress requests meanwhile.
        c.call("orrery/status", Value::Null);
        let r = rpc(
            &node,
            "Elixir.Code",
            "eval_string",
            vec![term::binary(suspending)],
        )
        .ok()?;
        term::as_tuple(&r)
            .is_some_and(|t| term::is_atom(&t[0], "true"))
            .then_some(())
    });
    node.kill();
    let msg = (n + 1..)
        .map(|k| {
            c.wait_nth(LONG, "window/showMessage", k)["params"]["message"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .find(|m| m.contains("Web.Busy"))
        .unwrap();
    assert!(
        msg.contains("went down") || msg.contains("connection"),
        "{msg}"
    );
    assert!(msg.contains("not swapped"), "{msg}");
    c.wait_status(LONG, "detached", |s| s["attached"] == json!(false));

    edit(&busy, "calls: s.calls + 2", "calls: s.calls + 1");
    let node = TestNode::start_named(dir.path(), &sname, &cookie);
    c.wait_status(LONG, "re-attached", |s| s["attached"] == json!(true));
    let r = rpc(&node, "Elixir.Web.Busy", "work", vec![term::int(1)]).unwrap();
    assert_eq!(term::as_atom(&r), Some("done"));
    assert!(c.shutdown().success());
    wait_pristine(&node, APPS, LONG);
}

/// `orrery lsp` SIGKILLed while a debug session it runs (relayed by `orrery dap`) has a
/// process paused: the editor is told what happened, and the guard undoes the session.
#[test]
fn lsp_killed_with_a_relayed_debug_session_paused() {
    let (dir, node) = orchard();
    let before = health(&node);
    let mut l = LspClient::start(&[("ORRERY_GRACE_MS", GRACE_MS)]);
    l.initialize(
        dir.path(),
        json!({"node": node.node, "cookie": node.cookie, "refreshMs": 200}),
    );
    l.wait_status(LONG, "attach", |s| s["attached"] == json!(true));
    let mut d = dap_attach(dir.path(), &node, json!({}));
    let job = dir.path().join("apps/web/lib/web/job.ex");
    let bps = d.ok(
        "setBreakpoints",
        json!({"source": {"path": job}, "breakpoints": [{"line": 5}]}),
    );
    assert_eq!(bps["breakpoints"][0]["verified"], json!(true), "{bps}");
    d.wait_event("stopped", LONG);
    unsafe {
        libc::kill(l.pid() as i32, libc::SIGKILL);
    }
    loop {
        let e = d.wait_event("output", LONG);
        if e["body"]["output"]
            .as_str()
            .is_some_and(|t| t.contains("went away"))
        {
            break;
        }
    }
    d.wait_event("terminated", LONG);
    wait_pristine(&node, APPS, LONG);
    assert_healthy(&node, &before);
}
