//! `orrery demo` (what `make demo` runs) end to end: every step of the tour succeeds and the
//! node it started is gone afterwards.

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
        "2 tests, 0 failures (exit status 0)",
        "done: the node is stopped",
    ] {
        assert!(text.contains(step), "missing {step:?} in:\n{text}");
    }
}
