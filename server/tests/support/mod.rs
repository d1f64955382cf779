//! Test support: real BEAM nodes started per test (random sname and cookie, loopback,
//! stopped by pid), and an LSP client speaking to the real `orrery` binary over stdio.
#![allow(dead_code)]

pub mod check;
pub mod dap;
pub mod lsp;
pub mod procs;
pub mod tracing;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A fixture project, compiled once per test binary.
pub fn fixture(name: &str) -> PathBuf {
    static COMPILED: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let dir = repo().join("tests/fixtures").join(name);
    let mut done = COMPILED.lock().unwrap_or_else(|e| e.into_inner());
    if !done.iter().any(|d| d == name) {
        let st = Command::new("mix")
            .arg("compile")
            .current_dir(&dir)
            .stdout(Stdio::null())
            .status()
            .expect("mix not found: run `make deps` (installs Erlang and Elixir)");
        assert!(st.success(), "fixture {name} does not compile");
        done.push(name.to_string());
    }
    dir
}

/// ExUnit's closing counts `(passed, failed)`, in each format it has had: `3 tests,
/// 1 failure, 1 skipped` up to Elixir 1.19; `Result: 1/2 passed, 1 skipped` and, when some
/// failed, `Failed: 1 test` from 1.20 on.
pub fn exunit_counts(text: &str) -> Option<(u32, u32)> {
    let num = |s: &str| s.trim().parse::<u32>().ok();
    // "N word" -> (N, word) for each comma-separated part.
    let parts = |line: &str| -> Vec<(u32, String)> {
        line.split(',')
            .filter_map(|p| {
                let (n, w) = p.trim().split_once(' ')?;
                Some((num(n.split('/').next()?)?, w.trim().to_string()))
            })
            .collect()
    };
    let mut found = None;
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("Result: ") {
            let passed = parts(rest).into_iter().find(|(_, w)| w == "passed")?.0;
            found = Some((passed, 0));
        } else if let Some(rest) = line.strip_prefix("Failed: ") {
            let failed = parts(rest).first()?.0;
            found = found.map(|(p, _)| (p, failed));
        } else if line.contains(" test") && line.contains(" failure") {
            let ps = parts(line);
            let count = |word: &str| {
                ps.iter()
                    .find(|(_, w)| w.trim_end_matches('s') == word)
                    .map_or(0, |(n, _)| *n)
            };
            let (tests, failed) = (count("test"), count("failure"));
            let not_run = count("skipped") + count("invalid");
            found = Some((tests.saturating_sub(failed + not_run), failed));
        }
    }
    found
}

pub fn hostname() -> String {
    orrery::config::local_hostname().unwrap()
}

pub fn random_token(prefix: &str) -> String {
    format!("{prefix}{}", rand::random::<u32>())
}

/// A real node running a fixture app.
pub struct TestNode {
    pub sname: String,
    pub node: String,
    pub cookie: String,
    pub dir: PathBuf,
    child: Option<Child>,
}

impl TestNode {
    /// Start the fixture app `name` as a node with a random sname and cookie.
    pub fn start(name: &str) -> TestNode {
        let dir = fixture(name);
        let sname = random_token(&format!("{name}_t"));
        let cookie = random_token("cookie");
        Self::start_named(&dir, &sname, &cookie)
    }

    /// Start (or restart) a node with a given name and cookie.
    pub fn start_named(dir: &Path, sname: &str, cookie: &str) -> TestNode {
        use std::os::unix::process::CommandExt;
        let child = Command::new("elixir")
            .args([
                "--sname",
                sname,
                "--cookie",
                cookie,
                "-S",
                "mix",
                "run",
                "--no-halt",
            ])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("elixir not found: run `make deps`");
        let node = TestNode {
            sname: sname.to_string(),
            node: format!("{sname}@{}", hostname()),
            cookie: cookie.to_string(),
            dir: dir.to_path_buf(),
            child: Some(child),
        };
        node.wait_registered(Duration::from_secs(60));
        node
    }

    fn wait_registered(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let (node, cookie) = (self.node.clone(), self.cookie.clone());
        // Own thread and runtime: callers may be inside a tokio runtime already.
        std::thread::spawn(move || Self::wait_registered_on(&node, &cookie, deadline))
            .join()
            .unwrap();
    }

    fn wait_registered_on(node: &str, cookie: &str, deadline: Instant) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            loop {
                // Registered in EPMD and the app started (its supervisor answers).
                if let Ok(c) =
                    orrery::beam::Connection::connect(node, cookie, Duration::from_secs(2)).await
                {
                    let apps = c
                        .rpc(
                            "application",
                            "which_applications",
                            vec![],
                            Duration::from_secs(2),
                        )
                        .await;
                    let started = apps
                        .map(|a| {
                            let a = format!("{a:?}");
                            a.contains("Atom { name: \"kv\" }")
                                || a.contains("\"orbit\"")
                                || a.contains("Atom { name: \"web\" }")
                                || a.contains("Atom { name: \"shapes\" }")
                                || a.contains("Atom { name: \"cells\" }")
                                || a.contains("Atom { name: \"beacon\" }")
                                || a.contains("Atom { name: \"reloading\" }")
                        })
                        .unwrap_or(false);
                    c.close();
                    if started {
                        return;
                    }
                }
                assert!(
                    Instant::now() < deadline,
                    "node {node} did not start in time"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Kill the node by pid (its whole process group).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe {
                libc::killpg(c.id() as i32, libc::SIGKILL);
            }
            let _ = c.wait();
        }
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether a process with this pid is alive.
pub fn pid_alive(pid: u32) -> bool {
    unsafe { libc::kill(pid as i32, 0) == 0 }
}

/// Poll `f` until it returns Some, or panic after `timeout` with `what`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Poll a blocking check until it returns Some, or panic after `timeout`.
pub fn wait_until<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A private, compiled copy of a fixture project (tests that edit sources use this).
pub fn fixture_copy(name: &str) -> tempfile::TempDir {
    let src = repo().join("tests/fixtures").join(name);
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&src, dir.path());
    let st = Command::new("mix")
        .arg("compile")
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .status()
        .expect("mix not found: run `make deps`");
    assert!(st.success(), "fixture copy does not compile");
    dir
}

/// A compiled copy of fixture `name` in `dir/name`, next to copies of the fixtures it
/// takes as path dependencies (`../dep`).
pub fn fixture_copy_with(name: &str, deps: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in deps.iter().chain([&name]) {
        copy_dir(&repo().join("tests/fixtures").join(f), &dir.path().join(f));
    }
    let st = Command::new("mix")
        .arg("compile")
        .current_dir(dir.path().join(name))
        .stdout(Stdio::null())
        .status()
        .expect("mix not found: run `make deps`");
    assert!(st.success(), "fixture copy does not compile");
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let name = e.file_name();
        if name == "_build" || name == "deps" {
            continue;
        }
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(&name));
        } else {
            std::fs::copy(&p, to.join(&name)).unwrap();
        }
    }
}

/// Call `Mod.fun(args)` on a node once, for checks from tests.
pub fn rpc(
    node: &TestNode,
    module: &str,
    fun: &str,
    args: Vec<eetf::Term>,
) -> Result<eetf::Term, String> {
    rpc_in_background(node, module, fun, args, Duration::from_secs(10))
        .join()
        .unwrap()
}

/// Call `Mod.fun(args)` on a node from a thread of its own (the call may block, e.g. at a
/// breakpoint), with its own connection.
pub fn rpc_in_background(
    node: &TestNode,
    module: &str,
    fun: &str,
    args: Vec<eetf::Term>,
    timeout: Duration,
) -> std::thread::JoinHandle<Result<eetf::Term, String>> {
    let (n, c) = (node.node.clone(), node.cookie.clone());
    let (m, f) = (module.to_string(), fun.to_string());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let conn = orrery::beam::Connection::connect(&n, &c, Duration::from_secs(10))
                .await
                .map_err(|e| e.to_string())?;
            let r = conn
                .rpc(&m, &f, args, timeout)
                .await
                .map_err(|e| e.to_string());
            conn.close();
            r
        })
    })
}

/// Call `KV.Steps.run(n)` of the kv fixture in the background (it blocks while paused).
pub fn steps_in_background(
    node: &TestNode,
    n: i64,
) -> std::thread::JoinHandle<Result<eetf::Term, String>> {
    rpc_in_background(
        node,
        "Elixir.KV.Steps",
        "run",
        vec![orrery::beam::term::int(n)],
        Duration::from_secs(120),
    )
}

/// `KV.Calc.add(1, 2)` on the kv fixture node.
pub fn kv_add(node: &TestNode) -> i64 {
    let r = rpc(
        node,
        "Elixir.KV.Calc",
        "add",
        vec![
            eetf::Term::from(eetf::FixInteger::from(1)),
            eetf::Term::from(eetf::FixInteger::from(2)),
        ],
    )
    .unwrap();
    orrery::beam::term::as_int(&r).unwrap()
}

/// `KV.Bucket.state()` on the kv fixture node, in Elixir syntax.
pub fn kv_bucket_state(node: &TestNode) -> String {
    let r = rpc(node, "Elixir.KV.Bucket", "state", vec![]).unwrap();
    orrery::beam::pretty::to_elixir_compact(&r, 500)
}

/// The md5 of a loaded module, for "is this the same code" checks.
pub fn module_md5(node: &TestNode, module: &str) -> String {
    use orrery::beam::term::atom;
    let r = rpc(
        node,
        "erlang",
        "get_module_info",
        vec![atom(module), atom("md5")],
    )
    .unwrap();
    format!("{r:?}")
}

/// Replace the first `from` with `to` in a file (it must be there).
pub fn edit_file(path: &Path, from: &str, to: &str) {
    let s = std::fs::read_to_string(path).unwrap();
    assert!(s.contains(from), "{from} not in {}", path.display());
    std::fs::write(path, s.replacen(from, to, 1)).unwrap();
}

/// A workspace holding a copy of the fixture node's `lib/kv` sources (so files the server
/// writes, like `.orrery/audit.log`, land in a temp dir).
pub fn lib_copy(node: &TestNode) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib/kv");
    std::fs::create_dir_all(&lib).unwrap();
    for e in std::fs::read_dir(node.dir.join("lib/kv"))
        .unwrap()
        .flatten()
    {
        std::fs::copy(e.path(), lib.join(e.file_name())).unwrap();
    }
    dir
}

/// A private copy of the orchard fixture (an umbrella shaped like real apps) running as a
/// node, its app up (the shelves answer).
pub fn orchard() -> (tempfile::TempDir, TestNode) {
    let dir = fixture_copy("orchard");
    let node = TestNode::start_named(dir.path(), &random_token("orch"), &random_token("c"));
    wait_until(Duration::from_secs(90), "the app up", || {
        rpc(
            &node,
            "Elixir.Store.Shelf",
            "stock",
            vec![orrery::beam::term::binary("plums")],
        )
        .ok()
        .filter(|r| orrery::beam::term::as_int(r).is_some())
    });
    (dir, node)
}
