//! DAP messages over the shared framing ([`crate::codec`]); one writer task owns stdout.

use crate::codec::{parse_body, FrameCodec};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite};

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
pub fn writer<W: AsyncWrite + Unpin + Send + 'static>(w: W) -> (Out, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Value>();
    let handle = tokio::spawn(async move {
        let mut w = FramedWrite::new(w, FrameCodec::default());
        while let Some(v) = rx.recv().await {
            if w.send(&v).await.is_err() {
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
    r: FramedRead<R, FrameCodec>,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    pub fn new(r: R) -> Self {
        Self {
            r: FramedRead::new(r, FrameCodec::default()),
        }
    }

    /// The next message; `Ok(None)` at end of input (or when it cannot be read); `Err` for
    /// a malformed one (the stream stays usable and goes on at the next valid header).
    pub async fn next(&mut self) -> Result<Option<Value>, String> {
        match self.r.next().await {
            None | Some(Err(_)) => Ok(None),
            Some(Ok(Err(bad))) => Err(bad.0),
            Some(Ok(Ok(body))) => match parse_body(&body)? {
                v if v.is_object() => Ok(Some(v)),
                _ => Err("a DAP message must be a JSON object".into()),
            },
        }
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
