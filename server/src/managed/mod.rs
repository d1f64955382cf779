//! The embedded default: with no `node` configured, Orrery runs the workspace's own app as
//! a managed node (`elixir --sname <app>_orrery_<id> -S mix run --no-halt`, or `mix
//! phx.server`, or the `command` setting: see [`command`]; a random cookie passed
//! privately and loopback only: see [`crate::private`]), forwards its output, and stops it
//! on shutdown. Before that, [`running`] looks for a node of the project someone else
//! started, to be offered instead of a second copy. The node halts by itself when Orrery dies
//! (it watches its stdin), so no orphan BEAM is left behind; an EPMD we started is stopped
//! too when no other node uses it.
//!
//! The debugger launches other mix tasks the same way (`mix test`, `mix run script.exs`),
//! held at a gate before the task starts so breakpoints are armed before any code runs.

pub mod command;
pub mod running;

use crate::beam::epmd;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{ChildStdin, Command};
use tokio::sync::{mpsc, watch};

/// Halts the node when Orrery's end of its stdin closes (Orrery exited or was killed).
const WATCHDOG: &str = "spawn(fn -> IO.read(:stdio, :line); System.halt(0) end)";
const TAIL_LINES: usize = 60;
/// The registered name of the process that holds a gated launch until it is released.
pub const GATE: &str = "orrery_launch_gate";
/// The message that opens the gate.
pub const GATE_OPEN: &str = "orrery_go";

/// What a managed node runs.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    /// A mix task and its arguments; `None` serves the app (`mix phx.server` in a Phoenix
    /// project, else `mix run --no-halt`: [`command::default_serve`]).
    pub task: Option<String>,
    pub task_args: Vec<String>,
    /// Extra environment (e.g. `MIX_ENV`); `MIX_ENV` defaults to `test` for `mix test`.
    pub env: Vec<(String, String)>,
    /// Hold the node before the task starts until [`GATE`] receives [`GATE_OPEN`].
    pub gated: bool,
    /// The task serves the app (the `command` setting): not done until the node halts.
    pub serves: bool,
}

impl Launch {
    fn mix_args(&self) -> Vec<String> {
        match &self.task {
            None => vec!["run".into(), "--no-halt".into()],
            Some(t) => std::iter::once(t.clone())
                .chain(self.task_args.iter().cloned())
                .collect(),
        }
    }

    fn mix_env(&self) -> Option<String> {
        self.env
            .iter()
            .find(|(k, _)| k == "MIX_ENV")
            .map(|(_, v)| v.clone())
            .or_else(|| (self.task.as_deref() == Some("test")).then(|| "test".to_string()))
    }

    /// How the task is named in messages (`mix test --only slow`).
    pub fn describe(&self) -> String {
        format!("mix {}", self.mix_args().join(" "))
    }
}

/// A running managed node.
pub struct ManagedNode {
    pub node: String,
    pub cookie: String,
    pub root: PathBuf,
    /// What it runs (`mix phx.server`).
    pub runs: String,
    /// OS pid (and process group) of the node; `None` once stopped.
    pid: Option<u32>,
    stdin: Option<ChildStdin>,
    exit: watch::Receiver<Option<i32>>,
    started_epmd: bool,
    tail: Arc<Mutex<VecDeque<String>>>,
}

impl std::fmt::Debug for ManagedNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagedNode")
            .field("node", &self.node)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// The mix project root at or above `start` (the outermost one, so umbrellas win).
pub fn find_mix_root(start: &Path) -> Option<PathBuf> {
    let mut found = None;
    let mut dir = Some(start);
    while let Some(d) = dir {
        if d.join("mix.exs").is_file() {
            found = Some(d.to_path_buf());
            // An umbrella root has `apps_path`; keep looking upward only from an app.
            if !d.parent().is_some_and(|p| {
                p.join("mix.exs").is_file() || p.file_name().is_some_and(|n| n == "apps")
            }) {
                break;
            }
        }
        dir = d.parent();
    }
    found
}

/// The OTP app name from `mix.exs` (`app: :name`), or the directory name for umbrellas.
pub fn app_name(root: &Path) -> String {
    let src = std::fs::read_to_string(root.join("mix.exs")).unwrap_or_default();
    let from_src = src.find("app:").and_then(|i| {
        let rest = src[i + 4..].trim_start().strip_prefix(':')?;
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        (!name.is_empty()).then_some(name)
    });
    from_src.unwrap_or_else(|| {
        root.file_name()
            .map(|n| {
                n.to_string_lossy()
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect()
            })
            .unwrap_or_else(|| "app".into())
    })
}

/// Elixir run before the mix task: wait, registered as [`GATE`], until the debugger has armed
/// its breakpoints and sends [`GATE_OPEN`].
fn gate_code() -> String {
    format!("Process.register(self(), :{GATE}); receive do :{GATE_OPEN} -> Process.unregister(:{GATE}) end")
}

pub fn random_token(len: usize) -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect()
}

fn push_tail(tail: &Mutex<VecDeque<String>>, line: &str) {
    if let Ok(mut t) = tail.lock() {
        if t.len() >= TAIL_LINES {
            t.pop_front();
        }
        t.push_back(line.to_string());
    }
}

impl ManagedNode {
    /// Compile the project, then start it as a node serving the app (as `command` says,
    /// else [`command::default_serve`]) and wait until EPMD knows it.
    /// Output lines (compiler and node) go to `output`.
    pub async fn start(
        root: &Path,
        command: Option<&str>,
        output: mpsc::UnboundedSender<String>,
    ) -> Result<ManagedNode, String> {
        let launch = match command {
            Some(c) => command::from_setting(c)?,
            None => Launch::default(),
        };
        Self::launch(root, &launch, output).await
    }

    /// Like [`ManagedNode::start`], running `launch` instead of the app.
    pub async fn launch(
        root: &Path,
        launch: &Launch,
        output: mpsc::UnboundedSender<String>,
    ) -> Result<ManagedNode, String> {
        let root = root.to_path_buf();
        let app = app_name(&root);
        let host = crate::config::local_hostname().unwrap_or_else(|| "localhost".into());

        // Compile first, so a broken project gives the compiler's output, not a dead node.
        let mut compile = Command::new("mix");
        compile.arg("compile").envs(launch.env.iter().cloned());
        if let Some(env) = launch.mix_env() {
            compile.env("MIX_ENV", env);
        }
        let compiled = compile
            .current_dir(&root)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| {
                format!(
                    "could not run `mix compile` in {}: {e} (is Elixir installed?)",
                    root.display()
                )
            })?;
        let mut text = String::from_utf8_lossy(&compiled.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&compiled.stderr));
        for line in text.lines() {
            let _ = output.send(line.to_string());
        }
        if !compiled.status.success() {
            return Err(format!(
                "the project in {} does not compile; fix it and Orrery will retry:\n{}",
                root.display(),
                text.trim_end()
            ));
        }

        // Which task serves the app is known once it is compiled (Phoenix's task is built).
        let (task, task_args) = match &launch.task {
            Some(t) => (t.clone(), launch.task_args.clone()),
            None => command::default_serve(&root, launch.mix_env().as_deref().unwrap_or("dev")),
        };
        let runs = format!(
            "mix {}",
            shlex::try_join(
                std::iter::once(task.as_str()).chain(task_args.iter().map(String::as_str))
            )
            .unwrap_or_else(|_| task.clone())
        );

        let short = format!("{}_orrery_{}", app, random_token(6).to_lowercase());
        let node = format!("{short}@{host}");
        let cookie = random_token(20);
        let started_epmd = crate::private::ensure_epmd(&host).await;
        let mut cmd = crate::private::elixir_node(&short, &cookie, false);
        // The node is in EPMD as soon as it boots: before the first `-e` has set its cookie
        // (a handshake then is refused, and the node logs it), and before mix has compiled
        // and started the app. The node says when it is ready, on stderr, in a line only
        // this launch knows: the app once it runs (`mix run -e` evaluates after the app
        // started; so does `mix phx.server`, which passes its options on to `mix run`), a task
        // or a gated launch once the cookie is set.
        let ready_line = format!("orrery-node-ready-{}", random_token(16));
        let say_ready = format!("IO.puts(:stderr, \"{ready_line}\")");
        let serves = launch.task.is_none() || launch.serves;
        let ready_after_start = serves && command::run_like(&task) && !launch.gated;
        if !ready_after_start {
            cmd.args(["-e", &say_ready]);
        }
        cmd.args(["-e", WATCHDOG]);
        if launch.gated {
            cmd.args(["-e", &gate_code()]);
        }
        cmd.arg("-S").arg("mix").arg(&task).args(&task_args);
        if ready_after_start {
            cmd.args(["-e", &say_ready]);
        }
        cmd.envs(launch.env.iter().cloned());
        if let Some(env) = launch.mix_env() {
            cmd.env("MIX_ENV", env);
        }
        cmd.current_dir(&root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        #[cfg(unix)]
        cmd.process_group(0);
        let mut child = cmd.spawn().map_err(|e| {
            format!(
                "could not start `elixir` in {}: {e} (is Elixir installed?)",
                root.display()
            )
        })?;
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let (ready_tx, ready) = watch::channel(false);
        let ready_tx = Arc::new(ready_tx);
        let mut readers = Vec::new();
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let out = output.clone();
            let tail = tail.clone();
            let (ready_tx, ready_line) = (ready_tx.clone(), ready_line.clone());
            readers.push(tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if line == ready_line {
                        ready_tx.send_replace(true);
                        continue;
                    }
                    push_tail(&tail, &line);
                    let _ = out.send(line);
                }
            }));
        }
        let pid = child.id();
        let stdin = child.stdin.take();
        let (exit_tx, exit) = watch::channel(None);
        tokio::spawn(async move {
            let code = match child.wait().await {
                Ok(s) => s.code().unwrap_or(-1),
                Err(_) => -1,
            };
            // Every line the node wrote is sent before its exit status is (a task's summary
            // is its last line). Bounded: something the node left behind may hold a pipe.
            for r in readers {
                let _ = tokio::time::timeout(Duration::from_secs(2), r).await;
            }
            let _ = exit_tx.send(Some(code));
        });
        let mut managed = ManagedNode {
            node,
            cookie,
            root,
            runs,
            pid,
            stdin,
            exit,
            started_epmd,
            tail,
        };
        // Wait until the node said it is ready and EPMD knows it, or it exits.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(code) = *managed.exit.borrow() {
                let tail = managed.output_tail();
                managed.pid = None;
                return Err(format!(
                    "the node exited during start (status {code}):\n{tail}"
                ));
            }
            if *ready.borrow() && epmd::port_of(&short, &host).await.is_ok() {
                return Ok(managed);
            }
            if tokio::time::Instant::now() > deadline {
                let tail = managed.output_tail();
                managed.stop().await;
                return Err(format!("the app node did not start within 120 s:\n{tail}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The last lines the node printed.
    pub fn output_tail(&self) -> String {
        self.tail
            .lock()
            .map(|t| t.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }

    /// OS pid of the node's process (the `elixir` launcher's group leader).
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// The node's exit status, once it has exited (`Some(code)`; -1 when killed).
    pub fn exit_status(&self) -> watch::Receiver<Option<i32>> {
        self.exit.clone()
    }

    async fn wait_exit(&mut self, within: Duration) -> bool {
        let mut exit = self.exit.clone();
        let done = tokio::time::timeout(within, exit.wait_for(|c| c.is_some()))
            .await
            .is_ok();
        done
    }

    /// Stop the node: close its stdin (it halts), then TERM and KILL its process group
    /// if it lingers; stop the EPMD we started when nothing else uses it.
    pub async fn stop(&mut self) {
        if let Some(pid) = self.pid.take() {
            drop(self.stdin.take());
            if !self.wait_exit(Duration::from_secs(5)).await {
                // SAFETY: signalling our own child's process group.
                unsafe {
                    libc::killpg(pid as i32, libc::SIGTERM);
                }
                self.wait_exit(Duration::from_secs(3)).await;
            }
            // SAFETY: as above; makes sure nothing of the group survives.
            unsafe {
                libc::killpg(pid as i32, libc::SIGKILL);
            }
            self.wait_exit(Duration::from_secs(3)).await;
        }
        if self.started_epmd {
            let host = crate::config::local_hostname().unwrap_or_else(|| "localhost".into());
            // Give EPMD a moment to notice the node's socket closed.
            for _ in 0..20 {
                match epmd::names(&host).await {
                    Ok(names) if names.is_empty() => {
                        let _ = Command::new("epmd").arg("-kill").output().await;
                        break;
                    }
                    Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    Err(_) => break,
                }
            }
            self.started_epmd = false;
        }
    }
}

impl Drop for ManagedNode {
    fn drop(&mut self) {
        if let (Some(pid), None) = (self.pid, *self.exit.borrow()) {
            // SAFETY: signalling our own child's process group on drop.
            unsafe {
                libc::killpg(pid as i32, libc::SIGKILL);
            }
        }
    }
}
