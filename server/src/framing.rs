//! Blocking `Content-Length` framing for JSON messages (LSP and DAP), for clients of the
//! `orrery` binary: the benchmarks and the end-to-end tests. The servers themselves use
//! async framing in `lsp/guard.rs` and `dap/wire.rs`.

use serde_json::Value;
use std::io::{BufRead, Write};

/// Read one framed message; `None` at end of input or on a malformed frame.
pub fn read_message(r: &mut impl BufRead) -> Option<Value> {
    let mut len = None;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(v) = line.strip_prefix("Content-Length: ") {
            len = v.parse::<usize>().ok();
        }
    }
    let mut buf = vec![0; len?];
    r.read_exact(&mut buf).ok()?;
    serde_json::from_slice(&buf).ok()
}

/// Write one framed message.
pub fn write_message(w: &mut impl Write, body: &str) -> std::io::Result<()> {
    write!(w, "Content-Length: {}\r\n\r\n{}", body.len(), body)?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut out = vec![];
        write_message(&mut out, "{\"a\":1}").unwrap();
        write_message(&mut out, "[]").unwrap();
        let mut r = std::io::BufReader::new(&out[..]);
        assert_eq!(read_message(&mut r), Some(serde_json::json!({"a": 1})));
        assert_eq!(read_message(&mut r), Some(serde_json::json!([])));
        assert_eq!(read_message(&mut r), None);
    }
}
