//! A hostile client against the real `orrery lsp` and `orrery dap`: fuzzed framing (random
//! splits, wrong lengths, garbage, invalid UTF-8, huge lengths), each round followed by a
//! valid request that must be answered; bad params; a 20 MB document. No panic, no exit,
//! no hang, memory bounded.

mod support;

use rand::{rngs::StdRng, Rng, SeedableRng};
use serde_json::{json, Value};
use std::time::Duration;
use support::dap::DapClient;
use support::lsp::LspClient;
use support::pid_alive;

const T: Duration = Duration::from_secs(20);

/// Resident memory of a process, in MB.
fn rss_mb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    kb / 1024
}

/// One piece of junk a client could send.
fn junk(rng: &mut StdRng) -> Vec<u8> {
    match rng.gen_range(0..9) {
        0 => (0..rng.gen_range(1..400)).map(|_| rng.gen()).collect(),
        // Shorter than its body.
        1 => b"Content-Length: 7\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":1}".to_vec(),
        // Longer than its body.
        2 => format!(
            "Content-Length: {}\r\n\r\n{{\"a\":1",
            rng.gen_range(10..3000)
        )
        .into_bytes(),
        3 => b"Content-Length: 1000000000000\r\n\r\n{}".to_vec(),
        4 => b"Content-Length: 2\xff\xfe\x80\r\n\r\n{}".to_vec(),
        5 => b"Content-Type: x\r\n\r\n{}".to_vec(),
        6 => b"Content-Length: 12\r\n\r\nnot json!!!!".to_vec(),
        7 => b"Content-Length: abc\r\n\r\n".to_vec(),
        _ => b"\r\n\r\n\r\n".to_vec(),
    }
}

/// Write `bytes` in random pieces.
fn send_split(rng: &mut StdRng, bytes: &[u8], mut send: impl FnMut(&[u8])) {
    let mut at = 0;
    while at < bytes.len() {
        let n = rng.gen_range(1..=bytes.len() - at);
        send(&bytes[at..at + n]);
        at += n;
    }
}

fn lsp_in_empty_dir() -> (LspClient, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = LspClient::start(&[]);
    // No mix project: nothing is started; the server only reads and answers.
    c.initialize(dir.path(), json!({}));
    (c, dir)
}

#[test]
fn lsp_survives_fuzzed_framing() {
    let (mut c, _dir) = lsp_in_empty_dir();
    let mut rng = StdRng::seed_from_u64(14);
    for round in 0..150 {
        let bad = junk(&mut rng);
        send_split(&mut rng, &bad, |b| c.send_bytes(b));
        let r = c.request("orrery/status", Value::Null, T);
        assert!(r.get("result").is_some(), "round {round}: {r}");
    }
    let errors: Vec<&Value> = c.seen.iter().filter(|v| v.get("error").is_some()).collect();
    assert!(!errors.is_empty());
    for e in &errors {
        assert_eq!(e["id"], Value::Null, "{e}");
        assert_eq!(e["error"]["code"], json!(-32700), "{e}");
    }
    assert!(rss_mb(c.pid()) < 200, "rss {} MB", rss_mb(c.pid()));
    assert!(pid_alive(c.pid()));
    assert!(c.shutdown().success());
}

#[test]
fn dap_survives_fuzzed_framing() {
    let mut c = DapClient::start();
    c.ok("initialize", json!({"adapterID": "orrery"}));
    let mut rng = StdRng::seed_from_u64(41);
    for _ in 0..150 {
        let bad = junk(&mut rng);
        send_split(&mut rng, &bad, |b| c.send_bytes(b));
        // Answered (unsuccessfully: no session) rather than lost.
        let r = c.request("threads", json!({}));
        assert_eq!(r["type"], "response", "{r}");
    }
    assert!(rss_mb(c.pid()) < 200);
    c.ok("initialize", json!({"adapterID": "orrery"}));
    assert!(c.events.iter().any(|e| e["body"]["output"]
        .as_str()
        .is_some_and(|o| o.contains("malformed"))));
    c.close_stdin();
    assert!(c.wait_exit(T));
}

#[test]
fn lsp_scripted_bad_frames_each_get_an_error_and_the_server_goes_on() {
    let (mut c, _dir) = lsp_in_empty_dir();
    let cases: [&[u8]; 5] = [
        b"Content-Length: 5\r\n\r\n{\"jsonrpc\":\"2.0\"}",
        b"Content-Length: 900\r\n\r\n{\"jsonrpc\":",
        b"Content-Length: 1000000000000\r\n\r\n",
        b"Content-Length: 2\r\nX-\xc3\x28: 1\r\n\r\n{}",
        b"Content-Length: 4\r\n\r\n[1,2",
    ];
    for (i, bad) in cases.iter().enumerate() {
        let before = c.seen.len();
        c.send_bytes(bad);
        let r = c.request("orrery/status", json!({}), T);
        assert!(r.get("result").is_some(), "case {i}: {r}");
        let errs = c.seen[before..]
            .iter()
            .filter(|v| v["error"]["code"] == json!(-32700) && v["id"].is_null())
            .count();
        assert_eq!(errs, 1, "case {i}: {:?}", &c.seen[before..]);
    }
    assert!(c.shutdown().success());
}

#[test]
fn custom_requests_take_null_empty_or_no_params() {
    let (mut c, _dir) = lsp_in_empty_dir();
    for method in [
        "orrery/status",
        "orrery/processes",
        "orrery/supervisionTree",
        "orrery/ets",
        "orrery/state",
    ] {
        for params in [None, Some(Value::Null), Some(json!({}))] {
            let id = 9000;
            let mut msg = json!({"jsonrpc": "2.0", "id": id, "method": method});
            if let Some(p) = &params {
                msg["params"] = p.clone();
            }
            c.send_raw(&msg.to_string());
            let r = c.wait_seen(T, method, |v| v["id"] == json!(id));
            // Not attached: a plain error at most, never "invalid params".
            assert_ne!(
                r["error"]["code"],
                json!(-32602),
                "{method} {params:?}: {r}"
            );
            c.seen.retain(|v| v["id"] != json!(id));
        }
    }
    assert!(c.shutdown().success());
}

#[test]
fn a_20_mb_document_is_tracked_not_indexed_and_released() {
    let (mut c, dir) = lsp_in_empty_dir();
    let path = dir.path().join("big.ex");
    let line = "defmodule Big do def f(x), do: x + 1 end\n";
    let text = line.repeat(20 * 1024 * 1024 / line.len());
    let uri = format!("file://{}", path.display());
    c.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": uri, "languageId": "elixir", "version": 1, "text": text}}),
    );
    drop(text);
    let m = c.wait_seen(T, "big document warning", |v| {
        v["method"] == "window/showMessage"
            && v["params"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("indexing limit"))
    });
    assert!(m["params"]["message"].as_str().unwrap().contains("big.ex"));
    let open_rss = rss_mb(c.pid());
    assert!(open_rss < 400, "rss with the document open: {open_rss} MB");
    for v in 2..12 {
        c.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": v},
                   "contentChanges": [{"range": {"start": {"line": 3, "character": 0}, "end": {"line": 3, "character": 0}}, "text": "x"}]}),
        );
    }
    let syms = c.call(
        "textDocument/documentSymbol",
        json!({"textDocument": {"uri": uri}}),
    );
    assert!(syms.as_array().is_none_or(|s| s.is_empty()), "{syms}");
    c.notify(
        "textDocument/didClose",
        json!({"textDocument": {"uri": uri}}),
    );
    c.call("orrery/status", Value::Null);
    let closed_rss = rss_mb(c.pid());
    assert!(
        closed_rss < 150,
        "rss after close: {closed_rss} MB (open: {open_rss} MB)"
    );
    assert!(c.shutdown().success());
}

#[test]
fn a_burst_of_edits_is_indexed_once_and_every_edit_counts() {
    let (mut c, dir) = lsp_in_empty_dir();
    let path = dir.path().join("grow.ex");
    let uri = format!("file://{}", path.display());
    // About 1.5 MB: under the indexing limit, slow to index on every keystroke.
    let body = "  def f(x), do: x + 1\n".repeat(1_500_000 / 22);
    let text = format!("defmodule Grow do\n{body}end\n");
    let lines = text.lines().count() as u32;
    c.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": uri, "languageId": "elixir", "version": 1, "text": text}}),
    );
    // Type a new function, one character per change, before the module's `end`.
    let typed = "  def typed_here(y), do: y\n";
    for (i, ch) in typed.chars().enumerate() {
        let (line, col) = (lines - 1, i as u32);
        c.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": 2 + i},
                   "contentChanges": [{"range": {"start": {"line": line, "character": col}, "end": {"line": line, "character": col}}, "text": ch.to_string()}]}),
        );
    }
    let syms = c.call(
        "textDocument/documentSymbol",
        json!({"textDocument": {"uri": uri}}),
    );
    let all = syms.to_string();
    assert!(all.contains("typed_here"), "the last edit is not indexed");
    assert!(c.shutdown().success());
}
