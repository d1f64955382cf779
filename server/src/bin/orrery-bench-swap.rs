//! Hot-swap benchmark (part of `make bench`): save-to-new-code-answering for a one-module
//! change in a generated 50-module project, side by side in one run with `mix compile` run
//! fresh as a new OS process after touching the file, and `Code.compile_file` inside the
//! already-running node (the near-limit: compile and load where the code runs, with no
//! isolation and no safety).
//!
//! Orrery is the real `orrery lsp` binary over stdio, attached to the project's node:
//! time runs from sending `didSave` until an RPC to the node returns the new value.
//! Prints a table with ratios and the goals; asserts nothing.

use orrery::beam::{term, Connection};
use serde_json::{json, Value};
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MODULES: usize = 50;
/// The module the benchmark changes.
const TARGET: usize = 25;
const WARMUP: usize = 3;

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ---- the generated project ----------------------------------------------------------

/// A throwaway directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> anyhow::Result<TempDir> {
        let p = std::env::temp_dir().join(format!(
            "orrery-bench-swap-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&p)?;
        Ok(TempDir(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn module_name(k: usize) -> String {
    format!("Swapbench.M{k:02}")
}

fn module_path(root: &Path, k: usize) -> PathBuf {
    root.join(format!("lib/swapbench/m{k:02}.ex"))
}

/// Module `k`: plain functions with guards, pattern matching and calls into its
/// neighbours; every tenth one is a GenServer the application starts. `value/0` returns
/// `value`.
fn module_source(k: usize, value: u64) -> String {
    let name = module_name(k);
    let next = module_name(k % MODULES + 1);
    let server = if k.is_multiple_of(10) {
        format!(
            r#"
  use GenServer

  def start_link(_), do: GenServer.start_link(__MODULE__, %{{hits: 0, id: {k}}}, name: __MODULE__)
  def hit, do: GenServer.call(__MODULE__, :hit)

  @impl true
  def init(state), do: {{:ok, state}}

  @impl true
  def handle_call(:hit, _from, state), do: {{:reply, state.hits + 1, %{{state | hits: state.hits + 1}}}}
"#
        )
    } else {
        String::new()
    };
    format!(
        r#"defmodule {name} do
  @moduledoc "Generated module {k} of {MODULES}."
{server}
  @doc "What the benchmark changes."
  def value, do: {value}

  def next(x), do: {next}.step(x)

  def step(x) when is_integer(x), do: x + {k}
  def step(_), do: :error

  def describe(%{{name: name}}), do: "M{k:02} " <> to_string(name)
  def describe(_), do: "M{k:02}"

  def sum(list) when is_list(list), do: Enum.reduce(list, 0, &(&1 + &2))

  def classify(x) do
    case x do
      n when is_integer(n) and n > 100 -> :big
      n when is_integer(n) -> :small
      s when is_binary(s) -> {{:text, String.length(s)}}
      _ -> :other
    end
  end

  def pipeline(items) do
    items
    |> Enum.map(&step/1)
    |> Enum.filter(&is_integer/1)
    |> Enum.with_index()
    |> Map.new(fn {{v, i}} -> {{i, v}} end)
  end
end
"#
    )
}

fn generate(root: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(root.join("lib/swapbench"))?;
    std::fs::write(
        root.join("mix.exs"),
        r#"defmodule Swapbench.MixProject do
  use Mix.Project

  def project, do: [app: :swapbench, version: "0.1.0", elixir: "~> 1.14", deps: []]

  def application, do: [extra_applications: [:logger], mod: {Swapbench.Application, []}]
end
"#,
    )?;
    let servers: Vec<String> = (1..=MODULES)
        .filter(|k| k.is_multiple_of(10))
        .map(module_name)
        .collect();
    std::fs::write(
        root.join("lib/swapbench/application.ex"),
        format!(
            "defmodule Swapbench.Application do\n  use Application\n\n  @impl true\n  def start(_type, _args) do\n    Supervisor.start_link([{}], strategy: :one_for_one, name: Swapbench.Supervisor)\n  end\nend\n",
            servers.join(", ")
        ),
    )?;
    for k in 1..=MODULES {
        std::fs::write(module_path(root, k), module_source(k, 0))?;
    }
    Ok(())
}

fn mix_compile(root: &Path) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let out = Command::new("mix")
        .arg("compile")
        .current_dir(root)
        .stdin(Stdio::null())
        .output()?;
    let took = t.elapsed();
    anyhow::ensure!(
        out.status.success(),
        "mix compile failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(took)
}

/// The project running as a node (`mix run --no-halt`), killed on drop.
struct Node {
    name: String,
    cookie: String,
    child: Child,
}

impl Node {
    fn start(root: &Path) -> anyhow::Result<Node> {
        use std::os::unix::process::CommandExt;
        let host = orrery::config::local_hostname().unwrap_or_else(|| "localhost".into());
        let sname = format!("swapbench_{}", rand::random::<u32>());
        let cookie = format!("c{}", rand::random::<u64>());
        let child = Command::new("elixir")
            .args([
                "--sname",
                &sname,
                "--cookie",
                &cookie,
                "-S",
                "mix",
                "run",
                "--no-halt",
            ])
            .current_dir(root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()?;
        Ok(Node {
            name: format!("{sname}@{host}"),
            cookie,
            child,
        })
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // SAFETY: signalling the process group of our own child.
        unsafe {
            libc::killpg(self.child.id() as i32, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

// ---- a minimal LSP client over stdio --------------------------------------------------

use orrery::framing::read_message;

fn write_message(w: &Mutex<ChildStdin>, v: &Value) -> anyhow::Result<()> {
    let body = v.to_string();
    let mut w = w.lock().map_err(|_| anyhow::anyhow!("stdin lock"))?;
    write!(w, "Content-Length: {}\r\n\r\n{}", body.len(), body)?;
    w.flush()?;
    Ok(())
}

/// `orrery lsp` as an editor runs it. Server requests (progress tokens, configuration)
/// are answered on the reader thread; responses and notifications come out of `rx`.
struct Lsp {
    child: Child,
    stdin: Arc<Mutex<ChildStdin>>,
    rx: Receiver<Value>,
    next_id: i64,
}

impl Lsp {
    fn start(bin: &Path) -> anyhow::Result<Lsp> {
        let mut child = Command::new(bin)
            .arg("lsp")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdin = Arc::new(Mutex::new(
            child
                .stdin
                .take()
                .ok_or_else(|| anyhow::anyhow!("no stdin"))?,
        ));
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
        let (tx, rx) = channel();
        let answer = stdin.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            while let Some(v) = read_message(&mut r) {
                if let (Some(method), Some(id)) = (v["method"].as_str(), v.get("id")) {
                    let result = if method == "workspace/configuration" {
                        json!([null])
                    } else {
                        Value::Null
                    };
                    let _ = write_message(
                        &answer,
                        &json!({"jsonrpc": "2.0", "id": id, "result": result}),
                    );
                    continue;
                }
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        Ok(Lsp {
            child,
            stdin,
            rx,
            next_id: 1,
        })
    }

    fn notify(&mut self, method: &str, params: Value) -> anyhow::Result<()> {
        write_message(
            &self.stdin,
            &json!({"jsonrpc": "2.0", "method": method, "params": params}),
        )
    }

    fn request(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        write_message(
            &self.stdin,
            &json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
        )?;
        loop {
            let v = self.rx.recv_timeout(Duration::from_secs(60))?;
            if v["id"] == json!(id) && v.get("method").is_none() {
                anyhow::ensure!(v.get("error").is_none(), "{method} failed: {}", v["error"]);
                return Ok(v["result"].clone());
            }
        }
    }

    /// The next `window/showMessage` text.
    fn next_message(&mut self) -> anyhow::Result<String> {
        loop {
            let v = self.rx.recv_timeout(Duration::from_secs(60))?;
            if v["method"] == "window/showMessage" {
                return Ok(v["params"]["message"].as_str().unwrap_or("").to_string());
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

impl Drop for Lsp {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// `orrery` next to this binary, rebuilt first when cargo is at hand.
fn orrery_binary() -> anyhow::Result<PathBuf> {
    let bin = std::env::current_exe()?.with_file_name("orrery");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = Command::new(cargo)
        .args(["build", "--release", "--quiet", "--bin", "orrery"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .is_ok_and(|s| s.success());
    if !built {
        anyhow::ensure!(
            bin.exists(),
            "{} is missing: run `cargo build --release` first",
            bin.display()
        );
        eprintln!("warning: could not rebuild orrery; using {}", bin.display());
    }
    Ok(bin)
}

// ---- measuring --------------------------------------------------------------------------

struct Stats {
    p50: f64,
    p99: f64,
    n: usize,
}

fn stats(mut ms: Vec<f64>) -> Stats {
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let pct = |p: f64| {
        if ms.is_empty() {
            f64::NAN
        } else {
            ms[((ms.len() as f64 - 1.0) * p).round() as usize]
        }
    };
    Stats {
        p50: pct(0.5),
        p99: pct(0.99),
        n: ms.len(),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Poll `Swapbench.M25.value()` until it returns `want`; the time when it did.
async fn wait_value(conn: &Connection, want: u64) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let module = format!("Elixir.{}", module_name(TARGET));
    loop {
        let v = conn
            .rpc(&module, "value", vec![], Duration::from_secs(10))
            .await?;
        if term::as_int(&v) == Some(want as i64) {
            return Ok(Instant::now());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the node never answered {want} (last {v:?})"
        );
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
}

async fn connect(node: &Node) -> anyhow::Result<Connection> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(c) = Connection::connect(&node.name, &node.cookie, Duration::from_secs(5)).await {
            let module = format!("Elixir.{}", module_name(TARGET));
            let started = c
                .rpc(
                    "erlang",
                    "whereis",
                    vec![term::atom("Elixir.Swapbench.Supervisor")],
                    Duration::from_secs(5),
                )
                .await
                .is_ok_and(|p| matches!(p, eetf::Term::Pid(_)));
            if started
                && c.rpc(&module, "value", vec![], Duration::from_secs(5))
                    .await
                    .is_ok()
            {
                return Ok(c);
            }
            c.close();
        }
        anyhow::ensure!(Instant::now() < deadline, "{} did not start", node.name);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Orrery: write the file, didChange + didSave as an editor does, until the node answers.
async fn bench_orrery(
    root: &Path,
    node: &Node,
    conn: &Connection,
    bin: &Path,
    runs: usize,
    next: &mut u64,
) -> anyhow::Result<(Vec<f64>, String)> {
    let mut lsp = Lsp::start(bin)?;
    let uri = format!("file://{}", root.display());
    lsp.request(
        "initialize",
        json!({
            "processId": std::process::id(),
            "rootUri": uri,
            "workspaceFolders": [{"uri": uri, "name": "swapbench"}],
            "initializationOptions": {"node": node.name, "cookie": node.cookie},
            "capabilities": {"window": {"workDoneProgress": true}, "workspace": {"configuration": true}}
        }),
    )?;
    lsp.notify("initialized", json!({}))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while lsp.request("orrery/status", Value::Null)?["attached"] != json!(true) {
        anyhow::ensure!(
            Instant::now() < deadline,
            "orrery did not attach to {}",
            node.name
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let path = module_path(root, TARGET);
    let file_uri = format!("file://{}", path.display());
    lsp.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": file_uri, "languageId": "elixir", "version": 1, "text": std::fs::read_to_string(&path)?}}),
    )?;
    let mut times = vec![];
    let mut last = String::new();
    for i in 0..WARMUP + runs {
        *next += 1;
        let text = module_source(TARGET, *next);
        std::fs::write(&path, &text)?;
        lsp.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": file_uri, "version": i + 2}, "contentChanges": [{"text": text}]}),
        )?;
        let t = Instant::now();
        lsp.notify(
            "textDocument/didSave",
            json!({"textDocument": {"uri": file_uri}}),
        )?;
        let answered = wait_value(conn, *next).await?;
        // The swap's summary line; the next save starts after it.
        last = lsp.next_message()?;
        anyhow::ensure!(last.contains("swapped"), "unexpected: {last}");
        if i >= WARMUP {
            times.push(ms(answered - t));
        }
    }
    lsp.shutdown();
    Ok((times, last))
}

/// The near-limit: `Code.compile_file` on the running node itself.
async fn bench_in_node(
    root: &Path,
    conn: &Connection,
    runs: usize,
    next: &mut u64,
) -> anyhow::Result<Vec<f64>> {
    let path = module_path(root, TARGET);
    let mut times = vec![];
    for i in 0..WARMUP + runs {
        *next += 1;
        std::fs::write(&path, module_source(TARGET, *next))?;
        let t = Instant::now();
        conn.rpc(
            "Elixir.Code",
            "compile_file",
            vec![term::binary(&path.to_string_lossy())],
            Duration::from_secs(60),
        )
        .await?;
        let answered = wait_value(conn, *next).await?;
        if i >= WARMUP {
            times.push(ms(answered - t));
        }
    }
    Ok(times)
}

/// `mix compile` as a fresh OS process after the file changed (compiles; loads nothing).
fn bench_mix(root: &Path, runs: usize, next: &mut u64) -> anyhow::Result<Vec<f64>> {
    let path = module_path(root, TARGET);
    let mut times = vec![];
    for _ in 0..runs {
        *next += 1;
        std::fs::write(&path, module_source(TARGET, *next))?;
        times.push(ms(mix_compile(root)?));
    }
    Ok(times)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let runs = env_count("ORRERY_BENCH_SWAPS", 40);
    let mix_runs = env_count("ORRERY_BENCH_MIX_RUNS", 5);
    let bin = orrery_binary()?;
    let dir = TempDir::new()?;
    let root = dir.0.clone();
    eprintln!(
        "generating a {MODULES}-module project in {} and compiling it…",
        root.display()
    );
    generate(&root)?;
    let first = mix_compile(&root)?;
    let node = Node::start(&root)?;
    let conn = connect(&node).await?;
    eprintln!(
        "{} runs the project ({} ms first compile); measuring…",
        node.name,
        first.as_millis()
    );

    let mut next = 0;
    eprintln!("  orrery: {runs} saves through `orrery lsp`…");
    let (orrery, summary) = bench_orrery(&root, &node, &conn, &bin, runs, &mut next).await?;
    eprintln!("  Code.compile_file in the node: {runs} compiles…");
    let in_node = bench_in_node(&root, &conn, runs, &mut next).await?;
    eprintln!("  mix compile: {mix_runs} fresh runs…");
    let mix = bench_mix(&root, mix_runs, &mut next)?;
    conn.close();

    let (o, n, m) = (stats(orrery), stats(in_node), stats(mix));
    println!();
    println!(
        "Hot swap: one-module change ({}) in a {MODULES}-module project; node {}. Times in ms.",
        module_name(TARGET),
        node.name
    );
    println!("Last Orrery summary: {summary}");
    println!();
    println!(
        "| {:<58} | {:>8} | {:>8} | {:>4} | {:>13} |",
        "path", "p50", "p99", "n", "p50 vs orrery"
    );
    println!(
        "|{}|{}|{}|{}|{}|",
        "-".repeat(60),
        "-".repeat(10),
        "-".repeat(10),
        "-".repeat(6),
        "-".repeat(15)
    );
    let row = |name: &str, s: &Stats| {
        println!(
            "| {name:<58} | {:>8.1} | {:>8.1} | {:>4} | {:>12.2}x |",
            s.p50,
            s.p99,
            s.n,
            s.p50 / o.p50
        );
    };
    row(
        "orrery: didSave → isolated compile → safe swap → answers",
        &o,
    );
    row("Code.compile_file inside the running node (near-limit)", &n);
    row("mix compile, fresh OS process (compile only, no load)", &m);
    println!();
    let limit = 2.0 * n.p50 + 20.0;
    println!(
        "goal 1: orrery p50 ≤ 2 × in-node p50 + 20 ms = {limit:.1} ms: {:.1} ms → {}",
        o.p50,
        if o.p50 <= limit { "met" } else { "MISSED" }
    );
    println!(
        "goal 2: orrery ≥ 10x faster than mix compile: {:.1}x → {}",
        m.p50 / o.p50,
        if m.p50 >= 10.0 * o.p50 {
            "met"
        } else {
            "MISSED"
        }
    );
    drop(node);
    Ok(())
}
