//! The LSP transport around tower-lsp-server. Our own framing ([`crate::codec`]) reads
//! stdin: a bad frame never stops the server (tower-lsp's codec would end the stream) and
//! gets a JSON-RPC parse error with `"id": null`; the server goes on at the next valid
//! header. Custom requests (`orrery/*`) get their omitted params as `null`, so every one
//! of them takes `null`, `{}` or nothing alike. Replies from tower-lsp and our parse
//! errors are merged frame by frame onto stdout.

use crate::codec::{parse_body, FrameCodec};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite};

/// The parse error for a message that could not be read.
pub fn parse_error(reason: &str) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {"code": -32700, "message": format!("Orrery could not read a message: {reason}")},
    })
}

/// `orrery/*` requests without params get `"params": null`.
fn normalize(v: &mut Value) {
    let custom = v["method"]
        .as_str()
        .is_some_and(|m| m.starts_with("orrery/"));
    if let (true, Some(obj)) = (custom, v.as_object_mut()) {
        obj.entry("params").or_insert(Value::Null);
    }
}

/// Read framed messages from `input`; pass good ones to the server (`server_in`), answer
/// bad ones through `errors`. Ends at the end of `input`.
pub async fn pump_in<R, W>(input: R, server_in: W, errors: mpsc::UnboundedSender<Value>)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut frames = FramedRead::new(input, FrameCodec::default());
    let mut out = FramedWrite::new(server_in, FrameCodec::default());
    while let Some(item) = frames.next().await {
        let reason = match item {
            Err(e) => {
                tracing::warn!("reading stdin: {e}");
                return;
            }
            Ok(Err(bad)) => bad.0,
            Ok(Ok(body)) => match parse_body(&body) {
                Ok(mut v) => {
                    normalize(&mut v);
                    if out.send(&v).await.is_err() {
                        return;
                    }
                    continue;
                }
                Err(e) => e,
            },
        };
        tracing::warn!("malformed LSP message: {reason}");
        if errors.send(parse_error(&reason)).is_err() {
            return;
        }
    }
}

/// Copy the server's frames (`server_out`) and our parse errors onto `output`, one whole
/// frame at a time. Ends when the server's output ends.
pub async fn pump_out<R, W>(server_out: R, output: W, mut errors: mpsc::UnboundedReceiver<Value>)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // The server's own frames: well formed, and of any size.
    let mut frames = FramedRead::new(server_out, FrameCodec::new(usize::MAX));
    let mut out = FramedWrite::new(output, FrameCodec::default());
    loop {
        // Errors first: a parse error is queued before the server even sees the message
        // that follows it, so it reaches the client before that message's reply.
        tokio::select! {
            biased;
            Some(e) = errors.recv() => {
                if out.send(&e).await.is_err() {
                    return;
                }
            }
            f = frames.next() => match f {
                Some(Ok(Ok(body))) => {
                    if out.send(&body[..]).await.is_err() {
                        return;
                    }
                }
                Some(Ok(Err(_))) => {}
                Some(Err(_)) | None => return,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bad_frames_get_parse_errors_and_good_ones_pass() {
        let input = b"Content-Length: 9\r\n\r\n{not jsonContent-Length: 2\r\n\r\n{}X-Junk: 1\r\n\r\nContent-Length: 2\r\n\r\n[]Content-Length: 33\r\n\r\n{\"id\":1,\"method\":\"orrery/status\"}\xff\xfe\r\n\r\nContent-Length: 2\r\n\r\n{}".to_vec();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut passed = vec![];
        pump_in(&input[..], &mut passed, tx).await;
        let text = String::from_utf8(passed).unwrap();
        assert!(text.contains("\"params\":null"), "{text}");
        assert_eq!(text.matches("Content-Length").count(), 4, "{text}");
        let mut errors = vec![];
        while let Ok(e) = rx.try_recv() {
            assert_eq!(e["id"], Value::Null);
            errors.push(e["error"]["message"].as_str().unwrap().to_string());
        }
        assert!(
            errors.iter().any(|e| e.contains("invalid JSON")),
            "{errors:?}"
        );
        assert!(errors.len() >= 2, "{errors:?}");
    }
}
