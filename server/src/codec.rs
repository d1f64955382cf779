//! The one `Content-Length` framing of LSP and DAP, as a `tokio_util` codec.
//!
//! A client can send anything; the decoder never gives up on the stream. Each bad frame
//! (no or a broken header, non-UTF-8 header bytes, a body over the size limit or not JSON,
//! a length shorter or longer than the body) becomes one [`BadFrame`] item, and decoding
//! goes on at the next valid header. A length that is too long is caught when the next
//! message's header shows up inside the body: a raw `Content-Length: N\r\n` cannot be part
//! of a JSON text (JSON strings hold no raw line breaks), so that is where the next frame
//! starts.
//!
//! [`parse_header`] and [`parse_body`] are shared with the blocking client framing in
//! [`crate::framing`].

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde_json::Value;
use tokio_util::codec::{Decoder, Encoder};

/// Largest body the servers accept.
pub const MAX_BODY: usize = 64 * 1024 * 1024;
/// Largest header block.
const MAX_HEADER: usize = 8 * 1024;
const NAME: &[u8] = b"content-length";

/// Why a frame was dropped (the stream goes on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadFrame(pub String);

impl std::fmt::Display for BadFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

type Item = Result<Bytes, BadFrame>;

/// The length a header block (without its final blank line) declares.
pub fn parse_header(block: &[u8]) -> Result<usize, String> {
    let text = std::str::from_utf8(block)
        .map_err(|_| "a message header holds bytes that are not UTF-8".to_string())?;
    let mut len = None;
    for line in text.split("\r\n") {
        let (name, value) = line
            .split_once(':')
            .filter(|(n, _)| {
                !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
            .ok_or_else(|| format!("malformed header line {:?}", clip(line)))?;
        if name.eq_ignore_ascii_case("content-length") {
            let v = value.trim();
            len = Some(
                v.parse::<usize>()
                    .map_err(|_| format!("invalid Content-Length {:?}", clip(v)))?,
            );
        }
    }
    len.ok_or_else(|| "missing Content-Length header".to_string())
}

/// A body as a JSON-RPC / DAP message: a JSON object (or, for LSP batches, an array).
pub fn parse_body(body: &[u8]) -> Result<Value, String> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) if v.is_object() || v.is_array() => Ok(v),
        Ok(_) => Err("a message must be a JSON object".into()),
        Err(e) => Err(format!("invalid JSON: {e}")),
    }
}

/// Frame `body`.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    out.extend_from_slice(body);
    out
}

fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Positions of `content-length` (any case) in `hay`.
fn names(hay: &[u8]) -> impl Iterator<Item = usize> + '_ {
    hay.windows(NAME.len())
        .enumerate()
        .filter(|(_, w)| w.eq_ignore_ascii_case(NAME))
        .map(|(i, _)| i)
}

/// How far `s` matches a `Content-Length: <digits>\r\n` line: `Some(true)` for a whole
/// line, `Some(false)` for the beginning of one cut off by the end of `s`, `None` for none.
fn header_line(s: &[u8]) -> Option<bool> {
    let n = s.len().min(NAME.len());
    if !s[..n].eq_ignore_ascii_case(&NAME[..n]) {
        return None;
    }
    let Some(rest) = s.get(NAME.len()..).filter(|r| !r.is_empty()) else {
        return Some(false);
    };
    let rest = rest.strip_prefix(b":")?;
    let spaces = rest.iter().take_while(|b| **b == b' ').count();
    if spaces > 16 {
        return None;
    }
    let rest = &rest[spaces..];
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    match &rest[digits..] {
        [] => Some(false),
        [b'\r'] => (digits > 0).then_some(false),
        [b'\r', b'\n', ..] => (digits > 0).then_some(true),
        _ => None,
    }
}

/// Where a whole `Content-Length: <digits>\r\n` line starts in `hay`.
fn embedded_header(hay: &[u8]) -> Option<usize> {
    names(hay).find(|&i| header_line(&hay[i..]) == Some(true))
}

/// Where a header line (whole, or cut off by the end) starts in `hay`.
fn header_start(hay: &[u8]) -> Option<usize> {
    (0..hay.len()).find(|&i| matches!(hay[i], b'c' | b'C') && header_line(&hay[i..]).is_some())
}

/// Frames of a byte stream; see the module doc.
#[derive(Debug)]
pub struct FrameCodec {
    max_body: usize,
    /// Dropping the rest of a bad frame: junk up to the next header is not reported again.
    resyncing: bool,
    /// Body bytes of the pending frame already searched for an embedded header.
    scanned: usize,
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::new(MAX_BODY)
    }
}

impl FrameCodec {
    pub fn new(max_body: usize) -> Self {
        Self {
            max_body,
            resyncing: false,
            scanned: 0,
        }
    }

    /// A bad frame, unless it is the tail of the one just reported.
    fn bad(&mut self, why: String) -> Option<BadFrame> {
        let report = !self.resyncing;
        self.resyncing = true;
        self.scanned = 0;
        report.then_some(BadFrame(why))
    }

    /// Drop `upto` bytes of a frame whose header was fine (always reported).
    fn drop_frame(&mut self, src: &mut BytesMut, upto: usize, why: String) -> Option<Item> {
        src.advance(upto);
        self.resyncing = false;
        self.bad(why).map(Err)
    }
}

impl Decoder for FrameCodec {
    type Item = Item;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> std::io::Result<Option<Item>> {
        loop {
            let blank = src
                .iter()
                .take_while(|b| matches!(b, b'\r' | b'\n'))
                .count();
            src.advance(blank);
            if src.is_empty() {
                return Ok(None);
            }
            let window = &src[..src.len().min(MAX_HEADER + 4)];
            let Some(end) = find(window, b"\r\n\r\n") else {
                if src.len() < MAX_HEADER {
                    return Ok(None);
                }
                // No header in sight: drop up to the next candidate (keep a partial name).
                let skip = names(&src[1..])
                    .next()
                    .map(|i| i + 1)
                    .unwrap_or(src.len() - NAME.len());
                src.advance(skip);
                if let Some(e) = self.bad(format!("{skip} bytes without a message header")) {
                    return Ok(Some(Err(e)));
                }
                continue;
            };
            let len = match parse_header(&src[..end]) {
                Ok(n) => n,
                Err(why) => {
                    // Junk before a valid header: drop the junk only.
                    let block = &src[..end];
                    let start = names(block).find(|&p| p > 0 && parse_header(&block[p..]).is_ok());
                    src.advance(start.unwrap_or(end + 4));
                    let why = match start {
                        Some(_) => "bytes that are not a message before a header".to_string(),
                        None => why,
                    };
                    if let Some(e) = self.bad(why) {
                        return Ok(Some(Err(e)));
                    }
                    continue;
                }
            };
            let head = end + 4;
            if len > self.max_body {
                let why = format!(
                    "a message of {len} bytes is over the {} byte limit",
                    self.max_body
                );
                return Ok(self.drop_frame(src, head, why));
            }
            let have = (src.len() - head).min(len);
            // The next header inside this body: the length was too long.
            let from = self.scanned.saturating_sub(64);
            if let Some(q) = embedded_header(&src[head + from..head + have]) {
                let why = format!("the body is shorter than its Content-Length ({len})");
                return Ok(self.drop_frame(src, head + from + q, why));
            }
            if have < len {
                self.scanned = have;
                src.reserve((len - have).min(1 << 20));
                return Ok(None);
            }
            let body = &src[head..head + len];
            if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                // Not JSON: a next header may begin inside it and go on past its end.
                let q = header_start(body).unwrap_or(len);
                let why = format!("invalid JSON: {e}");
                return Ok(self.drop_frame(src, head + q, why));
            }
            let mut frame = src.split_to(head + len);
            frame.advance(head);
            self.resyncing = false;
            self.scanned = 0;
            return Ok(Some(Ok(frame.freeze())));
        }
    }
}

impl Encoder<&[u8]> for FrameCodec {
    type Error = std::io::Error;

    fn encode(&mut self, body: &[u8], dst: &mut BytesMut) -> std::io::Result<()> {
        dst.put_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        dst.put_slice(body);
        Ok(())
    }
}

impl Encoder<&Value> for FrameCodec {
    type Error = std::io::Error;

    fn encode(&mut self, v: &Value, dst: &mut BytesMut) -> std::io::Result<()> {
        let body = serde_json::to_vec(v).map_err(std::io::Error::other)?;
        Encoder::<&[u8]>::encode(self, &body, dst)
    }
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
