//! A full session of the real `orrery lsp` at `ORRERY_LOG=trace` on the embedded default
//! (the app node and the compile node it starts), checked as another user of the machine
//! would see it: no cookie in any `/proc/PID/cmdline`, every listening socket of Orrery's
//! processes on loopback, the cookie written nowhere (log, workspace, /tmp), files private.
//! The same session checks that a burst of saves is one swap and that a state nested
//! 10,000 levels deep neither crashes `replaceState` nor is replaced.

mod support;

use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};
use support::lsp::LspClient;
use support::{edit_file, fixture_copy, pid_alive};

const LONG: Duration = Duration::from_secs(120);

/// Files under `dir` (not following links) that contain `needle`.
fn files_containing(dir: &Path, needle: &[u8], since: SystemTime) -> Vec<String> {
    let mut hits = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            if m.is_dir() {
                stack.push(e.path());
            } else if m.is_file()
                && m.len() < 20_000_000
                && m.modified().is_ok_and(|t| t >= since)
                && std::fs::read(e.path())
                    .is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
            {
                hits.push(e.path().display().to_string());
            }
        }
    }
    hits
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Saves that reached the node: swapped, or (a module nobody loaded yet) left to the code
/// server, which loads it from `_build`.
fn swapped(c: &LspClient) -> usize {
    c.seen
        .iter()
        .filter(|v| {
            v["method"] == "window/showMessage"
                && v["params"]["message"].as_str().is_some_and(|m| {
                    m.contains("swapped on") || m.contains("from _build when first used")
                })
        })
        .count()
}

#[test]
fn a_full_session_keeps_the_cookie_and_the_nodes_private() {
    let since = SystemTime::now() - Duration::from_secs(2);
    let dir = fixture_copy("kv");
    let log_path = dir.path().join("orrery-stderr.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut c = LspClient::start_logged(&[("ORRERY_LOG", "trace")], log);
    c.initialize(dir.path(), json!({"cookie": "NOT-THIS-ONE-IS-UNUSED"}));
    c.wait_status(LONG, "the managed app attached", |s| {
        s["attached"] == json!(true)
    });

    // A burst of saves: one compile node, one swap.
    let calc = dir.path().join("lib/kv/calc.ex");
    let uri = c.open(&calc);
    edit_file(&calc, "a + b", "a + b + 100");
    for _ in 0..20 {
        c.notify(
            "textDocument/didSave",
            json!({"textDocument": {"uri": uri}}),
        );
    }
    while swapped(&c) < 1 {
        c.wait_nth(
            LONG,
            "window/showMessage",
            c.count("window/showMessage") + 1,
        );
    }
    edit_file(&calc, "a + b + 100", "a + b + 200");
    c.notify(
        "textDocument/didSave",
        json!({"textDocument": {"uri": uri}}),
    );
    while swapped(&c) < 2 {
        c.wait_nth(
            LONG,
            "window/showMessage",
            c.count("window/showMessage") + 1,
        );
    }
    assert_eq!(swapped(&c), 2, "20 saves and then one more: two swaps");

    // Every process Orrery started (the app node, the compile node): no cookie in argv,
    // listening on loopback only.
    let secrets = support::procs::assert_private(c.pid());
    assert!(
        secrets.len() >= 2,
        "app and compile node cookies: {secrets:?}"
    );

    // A state nested 10,000 levels deep: refused with a reason, the server stays up.
    let status = c.call("orrery/status", Value::Null);
    let node = status["nodes"][0]["name"].as_str().unwrap().to_string();
    let deep =
        "{:ok, _} = Agent.start(fn -> Enum.reduce(1..10_000, :leaf, fn _, a -> {a} end) end, \
                name: :orrery_deep)";
    let started = secrets
        .iter()
        .any(|cookie| start_deep_agent(&node, cookie, deep));
    assert!(started, "could not reach {node} with any of its cookies");
    let r = c.request(
        "workspace/executeCommand",
        json!({"command": "orrery.replaceState", "arguments": [{"target": ":orrery_deep", "expression": "state"}]}),
        LONG,
    );
    let msg = r["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(msg.contains("nested deeper"), "{r}");
    let r = c.request("orrery/state", json!({"target": ":orrery_deep"}), LONG);
    assert!(
        r.to_string().contains('…')
            || r.get("error").is_some()
            || r["result"]["processes"][0]["stateAvailable"] == json!(false),
        "{r}"
    );
    assert!(pid_alive(c.pid()));

    // Files Orrery wrote are private.
    let dot = dir.path().join(".orrery");
    assert_eq!(mode(&dot), 0o700);
    assert_eq!(mode(&dot.join("audit.log")), 0o600);

    assert!(c.shutdown().success());
    for s in &secrets {
        let mut hits = files_containing(dir.path(), s.as_bytes(), since);
        hits.extend(files_containing(Path::new("/tmp"), s.as_bytes(), since));
        assert!(hits.is_empty(), "the cookie was written to {hits:?}");
    }
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "trace logging was on"
    );
    assert!(!log.contains("NOT-THIS-ONE-IS-UNUSED"));
}

/// Start an Agent whose state nests 10,000 levels, through a connection of our own.
fn start_deep_agent(node: &str, cookie: &str, code: &str) -> bool {
    let (node, cookie, code) = (node.to_string(), cookie.to_string(), code.to_string());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let Ok(conn) =
                orrery::beam::Connection::connect(&node, &cookie, Duration::from_secs(5)).await
            else {
                return false;
            };
            let r = conn
                .rpc(
                    "Elixir.Code",
                    "eval_string",
                    vec![orrery::beam::term::binary(&code)],
                    Duration::from_secs(10),
                )
                .await;
            conn.close();
            r.is_ok()
        })
    })
    .join()
    .unwrap()
}

const NETNS_TEST: &str = "in_a_fresh_network_namespace_everything_listens_on_loopback";

/// In a network namespace of its own (`unshare -rn`, loopback up) nothing else runs: no
/// EPMD but the one Orrery's app node starts, no listener but Orrery's. Every listening
/// socket there, EPMD's included, must be on loopback. The test runs itself again inside
/// the namespace; without `unshare` or `ip` (a minimal root) it says so and checks nothing.
#[test]
fn in_a_fresh_network_namespace_everything_listens_on_loopback() {
    if std::env::var_os("ORRERY_TEST_IN_NETNS").is_some() {
        return listeners_in_this_namespace();
    }
    let have = |cmd: &str| {
        std::process::Command::new("sh")
            .args(["-c", &format!("command -v {cmd}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let probe = std::process::Command::new("unshare")
        .args(["-rn", "true"])
        .status();
    if !have("ip") || !probe.is_ok_and(|s| s.success()) {
        eprintln!("skipped: needs `unshare -rn` and `ip` (iproute2) on this machine");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let status = std::process::Command::new("unshare")
        .args(["-rn", "sh", "-c", "ip link set lo up && exec \"$0\" \"$@\""])
        .arg(&exe)
        .args([NETNS_TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env("ORRERY_TEST_IN_NETNS", "1")
        .status()
        .unwrap();
    assert!(status.success(), "the check inside the namespace failed");
}

/// Listening sockets of this network namespace: (local address hex, port hex, inode).
fn namespace_listeners() -> Vec<(String, String, String)> {
    let mut out = vec![];
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 9 && f[3] == "0A" {
                let (addr, port) = f[1].split_once(':').unwrap_or((f[1], ""));
                out.push((addr.to_string(), port.to_string(), f[9].to_string()));
            }
        }
    }
    out
}

/// Pids of this namespace's processes holding socket `inode`.
fn holders(inode: &str) -> Vec<u32> {
    let me = std::fs::read_link("/proc/self/ns/net").ok();
    let want = format!("socket:[{inode}]");
    let mut pids = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if std::fs::read_link(format!("/proc/{pid}/ns/net")).ok() != me {
            continue;
        }
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd"));
        if fds
            .into_iter()
            .flatten()
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy() == want))
        {
            pids.push(pid);
        }
    }
    pids
}

fn listeners_in_this_namespace() {
    assert!(
        namespace_listeners().is_empty(),
        "a fresh namespace listens on nothing"
    );
    let dir = fixture_copy("kv");
    let mut c = LspClient::start(&[]);
    c.initialize(dir.path(), json!({}));
    c.wait_status(LONG, "the managed app attached", |s| {
        s["attached"] == json!(true)
    });
    let listeners = namespace_listeners();
    // EPMD's port 4369 is 0x1111.
    let epmd: Vec<_> = listeners.iter().filter(|l| l.1 == "1111").collect();
    assert!(
        !epmd.is_empty(),
        "EPMD started for the app node: {listeners:?}"
    );
    assert!(
        listeners.len() >= 3,
        "EPMD, app node, compile node: {listeners:?}"
    );
    for (addr, port, _) in &listeners {
        assert!(
            support::procs::is_loopback(addr),
            "listening on {addr}:{port} (not loopback) in {listeners:?}"
        );
    }
    assert!(c.shutdown().success());
    // EPMD outlives the nodes (it is a daemon): stop the one of this namespace.
    for (_, _, inode) in epmd {
        for pid in holders(inode) {
            let _ = std::process::Command::new("kill")
                .arg(pid.to_string())
                .status();
        }
    }
}
