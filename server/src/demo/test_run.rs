//! The demo's last stop: `mix test` under the debugger. The test node is held at its gate
//! until the breakpoint is armed, stops in the code under test, and runs to its summary.

use super::{heading, pretty_name, show_locals, wait_paused};
use crate::debug::{BreakpointReq, Debugger};
use crate::managed::{Launch, ManagedNode};
use anyhow::{bail, Context};
use std::path::Path;
use std::time::Duration;

/// The first line of `path` containing `needle` (1-based).
fn line_of(path: &Path, needle: &str) -> anyhow::Result<u32> {
    let text = std::fs::read_to_string(path)?;
    text.lines()
        .position(|l| l.contains(needle))
        .map(|i| i as u32 + 1)
        .with_context(|| format!("no `{needle}` in {}", path.display()))
}

/// ExUnit's closing summary: the lines after its last `Finished in …` line, whatever their
/// format (`2 tests, 0 failures` up to Elixir 1.19; `Result: 2 passed`, and `Failed: 1 test`
/// when some failed, from 1.20 on), without the seed line.
fn exunit_summary(lines: &[String]) -> String {
    let start = lines
        .iter()
        .rposition(|l| l.starts_with("Finished in "))
        .map_or(lines.len(), |i| i + 1);
    let summary: Vec<&str> = lines[start..]
        .iter()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty() && !l.starts_with("Randomized with seed"))
        .collect();
    summary.join("; ")
}

pub(super) async fn debug_a_test(root: &Path) -> anyhow::Result<()> {
    heading("Debugging a test: `mix test test/math_test.exs` stops in the code under test");
    let (out_tx, mut out_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let launch = Launch {
        task: Some("test".into()),
        task_args: vec!["test/math_test.exs".into(), "--seed".into(), "0".into()],
        gated: true,
        ..Default::default()
    };
    let node = ManagedNode::launch(root, &launch, out_tx)
        .await
        .map_err(anyhow::Error::msg)
        .context("could not start `mix test`")?;
    let mut exit = node.exit_status();
    let (name, cookie) = (node.node.clone(), node.cookie.clone());
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let dbg = Debugger::attach(root, &name, &cookie, Some(node), tx)
        .await
        .map_err(anyhow::Error::msg)?;
    let result = async {
        let math = root.join("lib/orbit/math.ex");
        let line = line_of(&math, "counts = Enum.frequencies(words)")?;
        let bp = dbg
            .set_breakpoints(
                &math,
                &[BreakpointReq {
                    line,
                    ..Default::default()
                }],
            )
            .await;
        if !bp[0].verified {
            bail!("breakpoint not set: {:?}", bp[0].message);
        }
        println!("breakpoint at math.ex:{line}, then the tests start (they waited at a gate)");
        dbg.release_gate().await.map_err(anyhow::Error::msg)?;
        let (thread, p) =
            wait_paused(&dbg, &mut events, "the breakpoint was not hit by the test").await?;
        println!(
            "hit in the test process: {}:{} — {}",
            pretty_name(&p.module),
            p.line,
            show_locals(&p.bindings)
        );
        dbg.resume(thread, "continue")
            .await
            .map_err(anyhow::Error::msg)?;
        let code = tokio::time::timeout(Duration::from_secs(60), exit.wait_for(|c| c.is_some()))
            .await
            .context("mix test did not finish")?
            .map_err(|_| anyhow::anyhow!("mix test's status was lost"))?
            .unwrap_or(-1);
        let mut lines = Vec::new();
        while let Ok(line) = out_rx.try_recv() {
            lines.push(line);
        }
        println!("continued: {} (exit status {code})", exunit_summary(&lines));
        anyhow::Ok(())
    }
    .await;
    dbg.disconnect().await;
    result
}

#[cfg(test)]
mod tests {
    use super::exunit_summary;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(String::from).collect()
    }

    #[test]
    fn summary_in_every_exunit_format() {
        let old = "..\nFinished in 0.01 seconds (0.01s async, 0.00s sync)\n2 tests, 0 failures\n\nRandomized with seed 0";
        assert_eq!(exunit_summary(&lines(old)), "2 tests, 0 failures");
        let new = "Running ExUnit with seed: 0, max_cases: 4\n\n..\nFinished in 0.02 seconds (0.02s async, 0.00s sync)\n\nResult: 1/2 passed, 1 skipped\nFailed: 1 test";
        assert_eq!(
            exunit_summary(&lines(new)),
            "Result: 1/2 passed, 1 skipped; Failed: 1 test"
        );
        assert_eq!(exunit_summary(&lines("no summary")), "");
    }
}
