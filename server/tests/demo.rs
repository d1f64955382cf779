//! `orrery demo` (what `make demo` runs) end to end: every step of the tour succeeds and the
//! node it started is gone afterwards.

mod support;

use std::process::Command;

#[test]
fn the_demo_walks_through_every_step() {
    let out = Command::new(env!("CARGO_BIN_EXE_orrery"))
        .arg("demo")
        .output()
        .expect("orrery binary");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for step in [
        "Hover on",
        "Inlay hints",
        "Code lens",
        "swapped",
        "rolled back",
        "hit: ",
        "line 15:",
        "hit in the test process: Orbit.Math:",
        "done: the node is stopped",
    ] {
        assert!(text.contains(step), "missing {step:?} in:\n{text}");
    }
    // The test run's summary, as this Elixir's ExUnit writes it.
    let continued = text
        .lines()
        .find_map(|l| l.strip_prefix("continued: "))
        .unwrap_or_else(|| panic!("no `continued:` line in:\n{text}"));
    let summary = continued
        .strip_suffix(" (exit status 0)")
        .unwrap_or_else(|| panic!("the test run failed: {continued}"));
    assert_eq!(support::exunit_counts(summary), Some((2, 0)), "{continued}");
}
