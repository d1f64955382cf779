//! DAP framing: `Content-Length` headers, JSON bodies; one writer task owns stdout.

use serde_json::{json, Value};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// Largest message we accept.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// Sends responses and events; cheap to clone.
#[derive(Clone)]
pub struct Out {
    tx: mpsc::UnboundedSender<Value>,
    seq: Arc<AtomicI64>,
}

impl Out {
    fn send(&self, mut v: Value) {
        v["seq"] = json!(self.seq.fetch_add(1, Ordering::Relaxed));
        let _ = self.tx.send(v);
    }

    /// Pass on a message from elsewhere, numbered in this stream.
    pub fn relay(&self, v: Value) {
        self.send(v);
    }

    /// Send a message exactly as it is (its `seq` kept).
    pub fn send_as_is(&self, v: Value) {
        let _ = self.tx.send(v);
    }

    pub fn event(&self, event: &str, body: Value) {
        self.send(json!({"type": "event", "event": event, "body": body}));
    }

    pub fn respond(
        &self,
        request_seq: i64,
        command: &str,
        success: bool,
        body: Value,
        message: Option<String>,
    ) {
        let mut v = json!({"type": "response", "request_seq": request_seq, "command": command, "success": success});
        if !body.is_null() {
            v["body"] = body;
        }
        if let Some(m) = message {
            v["message"] = json!(m);
            v["body"] = json!({"error": {"id": 1, "format": m, "showUser": true}});
        }
        self.send(v);
    }
}

/// The writer task: frames every message onto `w`. Ends when every `Out` is dropped.
pub fn writer<W: AsyncWrite + Unpin + Send + 'static>(
    mut w: W,
) -> (Out, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Value>();
    let handle = tokio::spawn(async move {
        while let Some(v) = rx.recv().await {
            let body = v.to_string();
            let frame = format!("Content-Length: {}\r\n\r\n{body}", body.len());
            if w.write_all(frame.as_bytes()).await.is_err() || w.flush().await.is_err() {
                return;
            }
        }
    });
    (
        Out {
            tx,
            seq: Arc::new(AtomicI64::new(1)),
        },
        handle,
    )
}

/// Reads framed messages.
pub struct Reader<R> {
    r: BufReader<R>,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    pub fn new(r: R) -> Self {
        Self {
            r: BufReader::new(r),
        }
    }

    /// The next message; `Ok(None)` at end of input; `Err` for a malformed one (the
    /// stream stays usable).
    pub async fn next(&mut self) -> Result<Option<Value>, String> {
        let mut len = None;
        let mut saw = false;
        loop {
            let mut line = String::new();
            match self.r.read_line(&mut line).await {
                Ok(0) => return Ok(None),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
            let l = line.trim_end();
            if l.is_empty() {
                if saw {
                    break;
                }
                continue;
            }
            saw = true;
            if let Some((k, v)) = l.split_once(':') {
                if k.trim().eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse::<usize>().ok();
                }
            }
        }
        let len = len.ok_or("missing Content-Length")?;
        if len > MAX_BODY {
            return Err(format!("message of {len} bytes is too large"));
        }
        let mut buf = vec![0; len];
        self.r
            .read_exact(&mut buf)
            .await
            .map_err(|e| e.to_string())?;
        serde_json::from_slice(&buf)
            .map(Some)
            .map_err(|e| format!("invalid JSON: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn survives_garbage_between_messages() {
        let input = b"Content-Length: 5\r\n\r\n{bad}Content-Length: 2\r\n\r\n{}".to_vec();
        let mut r = Reader::new(&input[..]);
        assert!(r.next().await.is_err());
        assert_eq!(r.next().await.unwrap(), Some(json!({})));
        assert_eq!(r.next().await.unwrap(), None);
    }
}
