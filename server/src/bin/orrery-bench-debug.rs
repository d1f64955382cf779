//! `make bench` (debugger table): what a breakpoint costs code that does not hit it. Two
//! CPU-bound workloads of the example app, timed on the node itself (`:timer.tc` through
//! RPC): `Orbit.Math.fib(27)`, the worst case for per-line probes (a whole function body is
//! one addition), and `Orbit.Math.top_words/1` on a 4 KB text, a typical data-shaping
//! pipeline. Each with:
//!   (a) no debugger;
//!   (b) Orbit.Math instrumented by the real `orrery dap` (attach + setBreakpoints) with a
//!       breakpoint in the same module on a line the workload never runs (sum_squares);
//!   (c) an uninstrumented module in the same node while (b) is armed: `Orbit.BenchFib`, the
//!       same fib compiled into another module of the temporary copy;
//!   (d) Orbit.Math interpreted by `:int` with a breakpoint on the same line (what ElixirLS
//!       does) as the anchor;
//!   (e) (b) with `record: true` (every probe of Orbit.Math appends to the ring buffer), and
//!       the ring's memory per 100,000 events;
//!   (f) no debugger again, after `disconnect` restored the pristine code.
//! Works on a temporary copy of examples/orbit; prints one table; asserts nothing.
//!
//! Needs `target/release/orrery` (or `ORRERY=/path/to/orrery`): `cargo build --release` first.

use anyhow::{anyhow, bail, Context, Result};
use orrery::beam::{term, Connection};
use serde_json::{json, Value};
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

const FIB_N: i64 = 27;
/// Target time of one measured round, and rounds per case (the best is reported: the
/// machine may be busy with other work, and noise only ever adds time).
const ROUND: Duration = Duration::from_millis(150);
const ROUNDS: usize = 9;
/// The breakpoint: the first line of `Orbit.Math.sum_squares/1`, never run by fib.
const BP_LINE: u32 = 11;
const RPC_T: Duration = Duration::from_secs(600);

/// The same fib as Orbit.Math, in a module no breakpoint touches.
const BENCH_FIB: &str = "defmodule Orbit.BenchFib do
  @moduledoc false
  def fib(0), do: 0
  def fib(1), do: 1
  def fib(n) when is_integer(n) and n > 1, do: fib(n - 1) + fib(n - 2)
end
";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
        .to_path_buf()
}

fn orrery_binary() -> Result<PathBuf> {
    let bin = match std::env::var_os("ORRERY") {
        Some(p) => PathBuf::from(p),
        None => std::env::current_exe()?.with_file_name("orrery"),
    };
    if !bin.exists() {
        bail!(
            "{} is missing: run `cargo build --release` first (or set ORRERY)",
            bin.display()
        );
    }
    Ok(bin)
}

fn token() -> String {
    format!("{:08x}", rand::random::<u32>())
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let name = e.file_name();
        if name == "_build" || name == "deps" || name == ".orrery" {
            continue;
        }
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &to.join(&name))?;
        } else {
            std::fs::copy(e.path(), to.join(&name))?;
        }
    }
    Ok(())
}

/// A compiled temporary copy of examples/orbit running as a node (Orrery's own managed
/// node: compiled first, stopped with the bench); the copy is removed on drop.
struct OrbitNode {
    dir: PathBuf,
    node: String,
    cookie: String,
    managed: Option<orrery::managed::ManagedNode>,
}

impl OrbitNode {
    async fn start() -> Result<OrbitNode> {
        let dir = std::env::temp_dir().join(format!("orrery-bench-debug-{}", token()));
        copy_dir(&repo().join("examples/orbit"), &dir)?;
        std::fs::write(dir.join("lib/orbit/bench_fib.ex"), BENCH_FIB)?;
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let managed = orrery::managed::ManagedNode::start(&dir, None, tx)
            .await
            .map_err(anyhow::Error::msg)
            .context("could not start the copy of examples/orbit")?;
        Ok(OrbitNode {
            dir,
            node: managed.node.clone(),
            cookie: managed.cookie.clone(),
            managed: Some(managed),
        })
    }
}

impl Drop for OrbitNode {
    fn drop(&mut self) {
        // ManagedNode kills its process group on drop.
        drop(self.managed.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Connect once the app runs (its `:orbit` application is started).
async fn connect(n: &OrbitNode) -> Result<Connection> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let t = Duration::from_secs(2);
    loop {
        if let Ok(c) = Connection::connect(&n.node, &n.cookie, t).await {
            if let Ok(apps) = c.rpc("application", "which_applications", vec![], t).await {
                let up = term::list_ref(&apps).iter().any(|a| {
                    term::as_tuple(a)
                        .and_then(|t| t.first())
                        .is_some_and(|x| term::is_atom(x, "orbit"))
                });
                if up {
                    return Ok(c);
                }
            }
            c.close();
        }
        if Instant::now() > deadline {
            bail!("{} did not start in time", n.node);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What is timed: `module.function(arg)`.
#[derive(Clone)]
struct Workload {
    label: &'static str,
    module: &'static str,
    function: &'static str,
    arg: eetf::Term,
}

fn fib(module: &'static str) -> Workload {
    Workload {
        label: "fib(27)",
        module,
        function: "fib",
        arg: term::int(FIB_N),
    }
}

fn top_words() -> Workload {
    const PARAGRAPH: &str = "Orrery shows the running program in the editor: the state of \
        a GenServer in a hover, how often a function ran, which processes run a module. \
        Every save compiles the file and swaps it into the running node, and the debugger \
        stops one process while the others keep serving. ";
    Workload {
        label: "top_words(4 KB)",
        module: "Orbit.Math",
        function: "top_words",
        arg: term::binary(&PARAGRAPH.repeat(4096 / PARAGRAPH.len() + 1)),
    }
}

/// One `:timer.tc(:lists, :foreach, [&Mod.fun/1, [arg, arg, …]])` on the node: µs per call.
async fn timed_round(c: &Connection, w: &Workload, reps: usize) -> Result<f64> {
    let fun = eetf::Term::from(eetf::ExternalFun {
        module: eetf::Atom::from(term::module_atom(w.module)),
        function: eetf::Atom::from(w.function),
        arity: 1,
    });
    let args = term::list(vec![fun, term::list(vec![w.arg.clone(); reps])]);
    let r = c
        .rpc(
            "timer",
            "tc",
            vec![term::atom("lists"), term::atom("foreach"), args],
            RPC_T,
        )
        .await?;
    let us = term::as_tuple(&r)
        .and_then(|t| t.first())
        .and_then(term::as_int)
        .ok_or_else(|| anyhow!("unexpected :timer.tc answer: {r:?}"))?;
    Ok(us as f64 / reps as f64)
}

/// Best µs per call of `w` over ROUNDS rounds of about ROUND each.
async fn measure(c: &Connection, w: &Workload) -> Result<f64> {
    let first = timed_round(c, w, 1).await?; // warm up and calibrate
    let reps = ((ROUND.as_secs_f64() * 1e6 / first.max(1.0)) as usize).clamp(1, 10_000);
    let rounds = if first > 2e6 { 2 } else { ROUNDS };
    let mut v = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        v.push(timed_round(c, w, reps).await?);
    }
    Ok(v.into_iter().fold(f64::INFINITY, f64::min))
}

async fn md5(c: &Connection, module: &str) -> Result<String> {
    let r = c
        .rpc(
            &term::module_atom(module),
            "module_info",
            vec![term::atom("md5")],
            RPC_T,
        )
        .await?;
    Ok(format!("{r:?}"))
}

/// A minimal DAP client over the stdio of a real `orrery dap`.
struct Dap {
    child: Child,
    stdin: ChildStdin,
    rx: Receiver<Value>,
    seq: i64,
    events: Vec<Value>,
}

use orrery::framing::read_message;

impl Dap {
    fn start(bin: &Path) -> Result<Dap> {
        let mut child = Command::new(bin)
            .arg("dap")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {} dap", bin.display()))?;
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
        Ok(Dap {
            child,
            stdin,
            rx,
            seq: 1,
            events: vec![],
        })
    }

    /// Send a request and wait for its response (events meanwhile are kept); the body.
    fn request(&mut self, command: &str, args: Value) -> Result<Value> {
        let seq = self.seq;
        self.seq += 1;
        let body = json!({"seq": seq, "type": "request", "command": command, "arguments": args})
            .to_string();
        write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len())?;
        self.stdin.flush()?;
        loop {
            let v = self
                .rx
                .recv_timeout(Duration::from_secs(120))
                .map_err(|_| anyhow!("no answer to {command}"))?;
            if v["type"] == "event" {
                self.events.push(v);
                continue;
            }
            if v["request_seq"] == json!(seq) {
                if v["success"] != json!(true) {
                    bail!("{command} failed: {}", v["message"]);
                }
                return Ok(v["body"].clone());
            }
        }
    }

    fn wait_event(&mut self, name: &str) -> Result<Value> {
        if let Some(i) = self.events.iter().position(|e| e["event"] == name) {
            return Ok(self.events.remove(i));
        }
        loop {
            let v = self
                .rx
                .recv_timeout(Duration::from_secs(120))
                .map_err(|_| anyhow!("no {name} event"))?;
            if v["event"] == name {
                return Ok(v);
            }
            self.events.push(v);
        }
    }

    /// initialize, attach, the breakpoint on `file`:`line`, configurationDone.
    fn attach(&mut self, n: &OrbitNode, record: bool, file: &Path, line: u32) -> Result<()> {
        self.request(
            "initialize",
            json!({"adapterID": "orrery", "linesStartAt1": true}),
        )?;
        self.request(
            "attach",
            json!({"node": n.node, "cookie": n.cookie, "cwd": n.dir, "record": record, "recordLimit": 100_000}),
        )?;
        self.wait_event("initialized")?;
        let r = self.request(
            "setBreakpoints",
            json!({"source": {"path": file}, "breakpoints": [{"line": line}]}),
        )?;
        let bp = &r["breakpoints"][0];
        if bp["verified"] != json!(true) || bp["line"] != json!(line) {
            bail!("breakpoint not set where asked: {r}");
        }
        self.request("configurationDone", json!({}))?;
        Ok(())
    }

    /// disconnect (restores the pristine code) and wait for the adapter to exit.
    fn disconnect(mut self) -> Result<()> {
        self.request("disconnect", json!({}))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        bail!("orrery dap did not exit after disconnect")
    }
}

struct Row {
    case: &'static str,
    workload: String,
    us: f64,
    base: f64,
}

fn row(case: &'static str, w: &Workload, us: f64, base: f64) -> Row {
    Row {
        case,
        workload: format!("{}.{}", w.module.trim_start_matches("Orbit."), w.label),
        us,
        base,
    }
}

/// The ring buffer's memory per 100,000 events, in MB, while recording.
async fn ring_mb_per_100k(c: &Connection) -> Result<Option<f64>> {
    let r = c.rpc("orrery_dbg_v1", "recording", vec![], RPC_T).await?;
    let size = term::get_int(&r, "size").unwrap_or(0);
    let mem = term::get_int(&r, "memory").unwrap_or(0);
    Ok((size > 0).then(|| mem as f64 / size as f64 * 100_000.0 / 1e6))
}

async fn run(n: &OrbitNode, bin: &Path) -> Result<(Vec<Row>, Option<f64>, String)> {
    let c = connect(n).await?;
    let math = n.dir.join("lib/orbit/math.ex");
    let otp = c
        .rpc(
            "erlang",
            "system_info",
            vec![term::atom("otp_release")],
            RPC_T,
        )
        .await?;
    let otp = term::as_string(&otp).unwrap_or_default();
    let pristine = md5(&c, "Orbit.Math").await?;
    let mut rows = vec![];
    let math_loads = [fib("Orbit.Math"), top_words()];
    let other = fib("Orbit.BenchFib");

    eprintln!("(a) no debugger…");
    let mut base = vec![];
    for w in &math_loads {
        let us = measure(&c, w).await?;
        rows.push(row("(a) no debugger", w, us, us));
        base.push(us);
    }
    let base_other = measure(&c, &other).await?;
    rows.push(row("(a) no debugger", &other, base_other, base_other));

    eprintln!("(b, c) orrery dap: breakpoint on math.ex:{BP_LINE}, not hit…");
    let mut dap = Dap::start(bin)?;
    dap.attach(n, false, &math, BP_LINE)?;
    if md5(&c, "Orbit.Math").await? == pristine {
        bail!("Orbit.Math was not instrumented");
    }
    for (w, b) in math_loads.iter().zip(&base) {
        let us = measure(&c, w).await?;
        rows.push(row("(b) breakpoint in module, not hit", w, us, *b));
    }
    let us = measure(&c, &other).await?;
    rows.push(row(
        "(c) other module, no breakpoints",
        &other,
        us,
        base_other,
    ));
    dap.disconnect()?;

    eprintln!("(e) orrery dap with record: true…");
    let mut dap = Dap::start(bin)?;
    dap.attach(n, true, &math, BP_LINE)?;
    for (w, b) in math_loads.iter().zip(&base) {
        let us = measure(&c, w).await?;
        rows.push(row("(e) recording on (record: true)", w, us, *b));
    }
    let per_100k = ring_mb_per_100k(&c).await?;
    dap.disconnect()?;
    if md5(&c, "Orbit.Math").await? != pristine {
        bail!("Orbit.Math was not restored after disconnect");
    }
    for (w, b) in math_loads.iter().zip(&base) {
        let us = measure(&c, w).await?;
        rows.push(row("(f) no debugger, after disconnect", w, us, *b));
    }

    eprintln!("(d) :int (ElixirLS)…");
    let r = c
        .rpc("int", "ni", vec![term::atom("Elixir.Orbit.Math")], RPC_T)
        .await?;
    if term::as_tuple(&r).is_none_or(|t| !t.first().is_some_and(|x| term::is_atom(x, "module"))) {
        bail!(":int.ni(Orbit.Math) failed: {r:?} (is Erlang's debugger application installed?)");
    }
    c.rpc(
        "int",
        "break",
        vec![term::atom("Elixir.Orbit.Math"), term::int(BP_LINE as i64)],
        RPC_T,
    )
    .await?;
    for (w, b) in math_loads.iter().zip(&base) {
        let us = measure(&c, w).await?;
        rows.push(row("(d) :int.ni + :int.break (ElixirLS)", w, us, *b));
    }
    c.close();
    Ok((rows, per_100k, otp))
}

#[tokio::main]
async fn main() -> Result<()> {
    let bin = orrery_binary()?;
    eprintln!("compiling and starting a copy of examples/orbit…");
    let node = OrbitNode::start().await?;
    let (mut rows, per_100k, otp) = run(&node, &bin).await?;
    rows.sort_by(|a, b| (a.case, &a.workload).cmp(&(b.case, &b.workload)));
    println!();
    println!(
        "Debugger overhead on a node: Orbit.Math workloads timed with :timer.tc on {} (OTP {otp}).",
        node.node
    );
    println!(
        "Best of {ROUNDS} rounds of ~{} ms, µs per call; ratio = vs (a) for the same workload. Goals: (b) ≤ 1.5x, (c) 1.0x, (e) ≤ 10x.",
        ROUND.as_millis()
    );
    println!("fib is the worst case for probes (a body of one addition, ~3 ns per call); top_words is a typical pipeline.");
    println!();
    println!(
        "| {:<38} | {:<26} | {:>12} | {:>9} |",
        "case", "workload", "µs per call", "ratio"
    );
    println!(
        "|{}|{}|{}|{}|",
        "-".repeat(40),
        "-".repeat(28),
        "-".repeat(14),
        "-".repeat(11)
    );
    for r in &rows {
        println!(
            "| {:<38} | {:<26} | {:>12.1} | {:>8.2}x |",
            r.case,
            r.workload,
            r.us,
            r.us / r.base
        );
    }
    if let Some(mb) = per_100k {
        println!();
        println!("Recording ring buffer: {mb:.1} MB per 100,000 events (bindings truncated as recorded).");
    }
    Ok(())
}
