//! Blocking `Content-Length` framing for JSON messages (LSP and DAP), for clients of the
//! `orrery` binary: the benchmarks and the end-to-end tests. It parses headers and bodies
//! with the servers' codec ([`crate::codec`]); only the servers resynchronise after junk.

use crate::codec::{parse_body, parse_header};
use serde_json::Value;
use std::io::{BufRead, Write};

/// Read one framed message; `None` at end of input or on a malformed frame.
pub fn read_message(r: &mut impl BufRead) -> Option<Value> {
    let mut header = vec![];
    loop {
        let mut line = vec![];
        if r.read_until(b'\n', &mut line).ok()? == 0 {
            return None;
        }
        if line == b"\r\n" || line == b"\n" {
            if header.is_empty() {
                continue;
            }
            break;
        }
        header.extend_from_slice(&line);
    }
    if header.ends_with(b"\r\n") {
        header.truncate(header.len() - 2);
    }
    let len = parse_header(&header).ok()?;
    let mut buf = vec![0; len];
    r.read_exact(&mut buf).ok()?;
    parse_body(&buf).ok()
}

/// Write one framed message.
pub fn write_message(w: &mut impl Write, body: &str) -> std::io::Result<()> {
    w.write_all(&crate::codec::frame(body.as_bytes()))?;
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
