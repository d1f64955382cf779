//! `make bench`: RPC and agent timings against a real node with 10,000 processes, side by
//! side with the same calls made by a plain Elixir node (`:rpc.call`) in the same run.
//! Prints a table with ratios; asserts nothing.

use orrery::agent;
use orrery::beam::{term, Connection};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RPC_CALLS: usize = 1000;
const SUMMARY_CALLS: usize = 200;

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

struct Stats {
    p50: f64,
    p99: f64,
}

fn stats(mut us: Vec<f64>) -> Stats {
    us.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    Stats {
        p50: pct(&us, 0.5),
        p99: pct(&us, 0.99),
    }
}

/// Run the same measurements from a plain Elixir node; returns (rpc, summary) stats in µs.
fn baseline(target: &str, cookie: &str, host: &str) -> anyhow::Result<(Stats, Stats)> {
    let script = format!(
        r#"
t = :"{target}"
true = Node.connect(t)
m = fn n, f ->
  for _ <- 1..n do
    {{us, _}} = :timer.tc(f)
    us
  end
end
_ = m.(50, fn -> :rpc.call(t, :erlang, :node, []) end)
a = m.({RPC_CALLS}, fn -> :rpc.call(t, :erlang, :node, []) end)
b = m.({SUMMARY_CALLS}, fn -> :rpc.call(t, :orrery_agent_v1, :summary, []) end)
IO.puts("RPC " <> Enum.join(a, " "))
IO.puts("SUM " <> Enum.join(b, " "))
"#
    );
    let name = format!("bench_base_{}", rand::random::<u32>());
    let out = Command::new("elixir")
        .args([
            "--sname", &name, "--cookie", cookie, "--hidden", "-e", &script,
        ])
        .stderr(Stdio::inherit())
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let parse = |tag: &str| -> Vec<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(tag))
            .map(|l| {
                l.split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    let _ = host;
    Ok((stats(parse("RPC ")), stats(parse("SUM "))))
}

fn row(name: &str, ours: &Stats, base: &Stats) {
    println!(
        "| {name:<34} | {:>9.1} | {:>9.1} | {:>9.1} | {:>9.1} | {:>6.2}x |",
        ours.p50,
        ours.p99,
        base.p50,
        base.p99,
        ours.p50 / base.p50
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let host = orrery::config::local_hostname().unwrap_or_else(|| "localhost".into());
    let sname = format!("bench_target_{}", rand::random::<u32>());
    let cookie = format!("c{}", rand::random::<u64>());
    let node = format!("{sname}@{host}");
    let orrery = live::orrery_binary()?;
    eprintln!("starting {node} with 10,000 extra processes…");
    // The live table's workspace: its modules run on the target (one holds 1 MB of state).
    let ws = live::Workspace::create()?;
    let script = format!(
        "{} for _ <- 1..10_000, do: spawn(fn -> Process.sleep(:infinity) end); Process.sleep(:infinity)",
        ws.boot_script()
    );
    let mut target = Command::new("elixir")
        .args(["--sname", &sname, "--cookie", &cookie, "-e", &script])
        .stdin(Stdio::null())
        .spawn()?;
    let mut result = run(&node, &cookie, &host).await;
    if result.is_ok() {
        result = live::run(&node, &cookie, &ws, &orrery).await;
    }
    let _ = target.kill();
    let _ = target.wait();
    result
}

async fn run(node: &str, cookie: &str, host: &str) -> anyhow::Result<()> {
    let t = Duration::from_secs(10);
    let deadline = Instant::now() + Duration::from_secs(60);
    let conn = loop {
        match Connection::connect(node, cookie, t).await {
            Ok(c) => {
                let n = c
                    .rpc(
                        "erlang",
                        "system_info",
                        vec![term::atom("process_count")],
                        t,
                    )
                    .await?;
                if term::as_int(&n).unwrap_or(0) >= 10_000 {
                    break c;
                }
                c.close();
            }
            Err(e) if Instant::now() > deadline => anyhow::bail!("{e}"),
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let handle = agent::load(&conn, &orrery::agent::Owner::new()).await?;

    for _ in 0..50 {
        conn.rpc("erlang", "node", vec![], t).await?;
    }
    let mut rpc = Vec::with_capacity(RPC_CALLS);
    for _ in 0..RPC_CALLS {
        let s = Instant::now();
        conn.rpc("erlang", "node", vec![], t).await?;
        rpc.push(s.elapsed().as_secs_f64() * 1e6);
    }
    let mut summary = Vec::with_capacity(SUMMARY_CALLS);
    for _ in 0..SUMMARY_CALLS {
        let s = Instant::now();
        agent::call(&conn, "summary", vec![], t).await?;
        summary.push(s.elapsed().as_secs_f64() * 1e6);
    }
    let (base_rpc, base_summary) = baseline(node, cookie, host)?;
    agent::unload(&conn, &handle).await?;
    conn.close();

    println!();
    println!("Target: {node}, 10,000+ processes. Times in µs; ratio = Orrery p50 / Erlang p50 (goal ≤ 1.5x).");
    println!();
    println!(
        "| {:<34} | {:>9} | {:>9} | {:>9} | {:>9} | {:>7} |",
        "measure", "orrery p50", "p99", "erlang p50", "p99", "ratio"
    );
    println!(
        "|{}|{}|{}|{}|{}|{}|",
        "-".repeat(36),
        "-".repeat(11),
        "-".repeat(11),
        "-".repeat(11),
        "-".repeat(11),
        "-".repeat(9)
    );
    row(
        &format!("rpc erlang:node/0 ×{RPC_CALLS}"),
        &stats(rpc),
        &base_rpc,
    );
    row(
        &format!("agent summary ×{SUMMARY_CALLS}"),
        &stats(summary),
        &base_summary,
    );
    Ok(())
}

/// The second table: on the same target (10,000 processes, plus a GenServer holding about
/// 1 MB of state), hover through the real `orrery lsp` over stdio vs one raw RPC, and the
/// target's CPU with 20 open documents at the default refresh vs no Orrery attached.
mod live {
    use super::{stats, Stats};
    use orrery::beam::{term, Connection};
    use serde_json::{json, Value};
    use std::io::{BufReader, Write};
    use std::path::{Path, PathBuf};
    use std::process::{Child, ChildStdin, Command, Stdio};
    use std::sync::mpsc::{channel, Receiver};
    use std::time::{Duration, Instant};

    const DOCS: usize = 20;
    const HOVERS: usize = 500;
    const RPCS: usize = 1000;
    const CPU_WINDOW: Duration = Duration::from_secs(10);

    const BIG: &str = "defmodule Bench.Big do
  use GenServer

  def start_link(_), do: GenServer.start_link(__MODULE__, nil, name: __MODULE__)

  @impl true
  def init(_), do: {:ok, Map.new(1..12_000, fn i -> {i, String.duplicate(\"x\", 48)} end)}

  def keys(list), do: Enum.map(list, fn x -> x end)
end
";

    /// A temporary workspace whose modules the target loads at boot.
    pub struct Workspace {
        root: PathBuf,
    }

    fn small(n: usize) -> String {
        format!(
            "defmodule Bench.M{n} do
  use GenServer

  def start_link(_), do: GenServer.start_link(__MODULE__, %{{n: {n}, hits: 0}}, name: __MODULE__)

  @impl true
  def init(s), do: {{:ok, s}}

  @impl true
  def handle_call(:hit, _from, s), do: {{:reply, :ok, %{{s | hits: s.hits + 1}}}}

  def hit, do: GenServer.call(__MODULE__, :hit)
end
"
        )
    }

    impl Workspace {
        pub fn create() -> std::io::Result<Workspace> {
            let root = std::env::temp_dir().join(format!("orrery-bench-{}", rand::random::<u32>()));
            let lib = root.join("lib/bench");
            std::fs::create_dir_all(&lib)?;
            std::fs::write(lib.join("big.ex"), BIG)?;
            for n in 1..DOCS {
                std::fs::write(lib.join(format!("m{n}.ex")), small(n))?;
            }
            Ok(Workspace { root })
        }

        /// Elixir code that loads the modules and starts their processes.
        pub fn boot_script(&self) -> String {
            let mods: Vec<String> = std::iter::once("Bench.Big".to_string())
                .chain((1..DOCS).map(|n| format!("Bench.M{n}")))
                .collect();
            format!(
                "for f <- Path.wildcard(\"{}/lib/**/*.ex\"), do: Code.require_file(f); \
                 for m <- [{}], do: {{:ok, _}} = m.start_link(nil);",
                self.root.display(),
                mods.join(", ")
            )
        }

        fn files(&self) -> Vec<PathBuf> {
            let lib = self.root.join("lib/bench");
            std::iter::once(lib.join("big.ex"))
                .chain((1..DOCS).map(|n| lib.join(format!("m{n}.ex"))))
                .collect()
        }
    }

    impl Drop for Workspace {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }

    /// A minimal LSP client over the stdio of a real `orrery lsp`.
    struct Lsp {
        child: Child,
        stdin: ChildStdin,
        rx: Receiver<Value>,
        next: i64,
    }

    use orrery::framing::read_message;

    impl Lsp {
        fn start(bin: &Path) -> anyhow::Result<Lsp> {
            let mut child = Command::new(bin)
                .arg("lsp")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()?;
            let stdin = child.stdin.take().expect("stdin");
            let stdout = child.stdout.take().expect("stdout");
            let (tx, rx) = channel();
            std::thread::spawn(move || {
                let mut r = BufReader::new(stdout);
                while let Some(v) = read_message(&mut r) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
            });
            Ok(Lsp {
                child,
                stdin,
                rx,
                next: 1,
            })
        }

        fn send(&mut self, v: &Value) -> anyhow::Result<()> {
            let body = v.to_string();
            write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len())?;
            self.stdin.flush()?;
            Ok(())
        }

        fn notify(&mut self, method: &str, params: Value) -> anyhow::Result<()> {
            self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}))
        }

        /// Send a request, answer the server's own requests meanwhile, return the result.
        fn request(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
            let id = self.next;
            self.next += 1;
            self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))?;
            loop {
                let v = self.rx.recv_timeout(Duration::from_secs(30))?;
                if let Some(m) = v.get("method").and_then(|m| m.as_str()) {
                    if let Some(rid) = v.get("id").cloned() {
                        let result = if m == "workspace/configuration" {
                            json!([null])
                        } else {
                            Value::Null
                        };
                        self.send(&json!({"jsonrpc": "2.0", "id": rid, "result": result}))?;
                    }
                    continue;
                }
                if v["id"] == json!(id) {
                    if let Some(e) = v.get("error") {
                        anyhow::bail!("{method} failed: {e}");
                    }
                    return Ok(v["result"].clone());
                }
            }
        }

        fn shutdown(mut self) {
            let _ = self.request("shutdown", Value::Null);
            let _ = self.notify("exit", Value::Null);
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// utime + stime of a process, in clock ticks.
    fn cpu_ticks(pid: u32) -> Option<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
    }

    /// CPU of each pid over `window`, in % of one core.
    async fn cpu_percent(pids: &[u32], window: Duration) -> Vec<f64> {
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let before: Vec<_> = pids.iter().map(|p| cpu_ticks(*p)).collect();
        let start = Instant::now();
        tokio::time::sleep(window).await;
        let secs = start.elapsed().as_secs_f64();
        pids.iter()
            .zip(before)
            .map(|(p, b)| match (b, cpu_ticks(*p)) {
                (Some(b), Some(a)) => (a.saturating_sub(b)) as f64 / hz / secs * 100.0,
                _ => f64::NAN,
            })
            .collect()
    }

    /// The `orrery` binary next to this one, brought up to date first (`cargo run --bin
    /// orrery-bench` builds only the bench); a failed build falls back to the one there.
    pub fn orrery_binary() -> anyhow::Result<PathBuf> {
        let bin = std::env::current_exe()?.with_file_name("orrery");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let built = Command::new(cargo)
            .args(["build", "--release", "--quiet", "--bin", "orrery"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .is_ok_and(|s| s.success());
        if !built {
            anyhow::ensure!(bin.exists(), "cargo build --bin orrery failed");
            eprintln!("warning: could not rebuild orrery; using {}", bin.display());
        }
        Ok(bin)
    }

    fn uri(p: &Path) -> String {
        format!("file://{}", p.display())
    }

    fn hover_at(lsp: &mut Lsp, file: &Path, line: u32, col: u32) -> anyhow::Result<String> {
        let r = lsp.request(
            "textDocument/hover",
            json!({"textDocument": {"uri": uri(file)}, "position": {"line": line, "character": col}}),
        )?;
        Ok(r["contents"]["value"].as_str().unwrap_or("").to_string())
    }

    fn time_hovers(lsp: &mut Lsp, file: &Path, line: u32, col: u32) -> anyhow::Result<Stats> {
        let mut us = Vec::with_capacity(HOVERS);
        for _ in 0..HOVERS {
            let s = Instant::now();
            let text = hover_at(lsp, file, line, col)?;
            us.push(s.elapsed().as_secs_f64() * 1e6);
            anyhow::ensure!(!text.is_empty(), "empty hover");
        }
        Ok(stats(us))
    }

    pub async fn run(node: &str, cookie: &str, ws: &Workspace, bin: &Path) -> anyhow::Result<()> {
        let t = Duration::from_secs(10);
        let conn = Connection::connect(node, cookie, t).await?;
        let os_pid: u32 = term::as_string(&conn.rpc("os", "getpid", vec![], t).await?)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("no OS pid for {node}"))?;
        const SIZE: &str =
            ":erts_debug.flat_size(:sys.get_state(Bench.Big)) * :erlang.system_info(:wordsize)";
        let size = conn
            .rpc("Elixir.Code", "eval_string", vec![term::binary(SIZE)], t)
            .await?;
        let big_mb = term::as_tuple(&size)
            .and_then(|s| term::as_int(s.first()?))
            .unwrap_or(0) as f64
            / 1e6;
        for _ in 0..50 {
            conn.rpc("erlang", "node", vec![], t).await?;
        }
        let mut rpc = Vec::with_capacity(RPCS);
        for _ in 0..RPCS {
            let s = Instant::now();
            conn.rpc("erlang", "node", vec![], t).await?;
            rpc.push(s.elapsed().as_secs_f64() * 1e6);
        }
        let rpc = stats(rpc);
        conn.close();

        eprintln!("measuring {node}'s CPU with no Orrery attached…");
        tokio::time::sleep(Duration::from_secs(1)).await;
        let idle = cpu_percent(&[os_pid], CPU_WINDOW).await[0];

        let mut lsp = Lsp::start(bin)?;
        let root = uri(&ws.root);
        lsp.request(
            "initialize",
            json!({"processId": std::process::id(), "rootUri": root,
                   "workspaceFolders": [{"uri": root, "name": "bench"}],
                   "initializationOptions": {"node": node, "cookie": cookie},
                   "capabilities": {}}),
        )?;
        lsp.notify("initialized", json!({}))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while lsp.request("orrery/status", Value::Null)?["attached"] != json!(true) {
            anyhow::ensure!(Instant::now() < deadline, "orrery lsp did not attach");
            std::thread::sleep(Duration::from_millis(100));
        }
        let files = ws.files();
        for f in &files {
            let text = std::fs::read_to_string(f)?;
            lsp.notify(
                "textDocument/didOpen",
                json!({"textDocument": {"uri": uri(f), "languageId": "elixir", "version": 1, "text": text}}),
            )?;
        }
        let big_file = &files[0];
        let deadline = Instant::now() + Duration::from_secs(30);
        while !hover_at(&mut lsp, big_file, 0, 17)?.contains("=>") {
            anyhow::ensure!(Instant::now() < deadline, "no live state in the hover");
            std::thread::sleep(Duration::from_millis(50));
        }
        let state_hover = time_hovers(&mut lsp, big_file, 0, 17)?;
        let (line, col) = BIG
            .lines()
            .enumerate()
            .find_map(|(i, l)| l.find("Enum.map").map(|c| (i as u32, c as u32 + 6)))
            .unwrap_or((0, 0));
        let s = Instant::now();
        let first = hover_at(&mut lsp, big_file, line, col)?;
        let cold = s.elapsed().as_secs_f64() * 1e6;
        anyhow::ensure!(first.contains("Enum.map"), "no docs in the hover: {first}");
        let docs_hover = time_hovers(&mut lsp, big_file, line, col)?;

        eprintln!("measuring {node}'s CPU with Orrery attached and {DOCS} documents open…");
        tokio::time::sleep(Duration::from_secs(2)).await;
        let cpu = cpu_percent(&[os_pid, lsp.child.id()], CPU_WINDOW).await;
        lsp.shutdown();

        println!();
        println!(
            "Live features on the same target: Bench.Big's state is {big_mb:.2} MB (flat size), \
             {DOCS} documents open, default refresh (1000 ms). Hover goes through `orrery lsp` \
             over stdio. Times in µs; goal: hover p50 < 5000 µs and ≤ 20x one raw RPC."
        );
        println!();
        println!(
            "| {:<38} | {:>9} | {:>9} | {:>13} |",
            "measure", "p50", "p99", "× raw RPC p50"
        );
        println!(
            "|{}|{}|{}|{}|",
            "-".repeat(40),
            "-".repeat(11),
            "-".repeat(11),
            "-".repeat(15)
        );
        let row = |name: &str, s: &Stats| {
            println!(
                "| {name:<38} | {:>9.1} | {:>9.1} | {:>12.1}x |",
                s.p50,
                s.p99,
                s.p50 / rpc.p50
            );
        };
        row(&format!("raw RPC erlang:node/0 ×{RPCS}"), &rpc);
        row(
            &format!("hover GenServer state (1 MB) ×{HOVERS}"),
            &state_hover,
        );
        row(
            &format!("hover Enum.map docs (cached) ×{HOVERS}"),
            &docs_hover,
        );
        println!(
            "| {:<38} | {:>9.1} | {:>9} | {:>12.1}x |",
            "hover Enum.map docs, first (cold)",
            cold,
            "-",
            cold / rpc.p50
        );
        println!();
        println!(
            "Target CPU, % of one core over {} s (goal: added < 1%):",
            CPU_WINDOW.as_secs()
        );
        println!();
        println!(
            "| {:>12} | {:>30} | {:>8} | {:>17} |",
            "no Orrery", "Orrery attached, 20 docs open", "added", "orrery lsp itself"
        );
        println!(
            "|{}|{}|{}|{}|",
            "-".repeat(14),
            "-".repeat(32),
            "-".repeat(10),
            "-".repeat(19)
        );
        println!(
            "| {:>11.2}% | {:>29.2}% | {:>7.2}% | {:>16.2}% |",
            idle,
            cpu[0],
            cpu[0] - idle,
            cpu[1]
        );
        Ok(())
    }
}
