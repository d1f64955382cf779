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
    eprintln!("starting {node} with 10,000 extra processes…");
    let mut target = Command::new("elixir")
        .args([
            "--sname",
            &sname,
            "--cookie",
            &cookie,
            "-e",
            "for _ <- 1..10_000, do: spawn(fn -> Process.sleep(:infinity) end); Process.sleep(:infinity)",
        ])
        .stdin(Stdio::null())
        .spawn()?;
    let result = run(&node, &cookie, &host).await;
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
    let handle = agent::load(&conn).await?;

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
