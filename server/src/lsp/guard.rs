//! A guard in front of the LSP transport. `tokio_util`'s framed reader ends the stream on
//! the first undecodable message, which would take the server down on one bad byte. This
//! task re-frames stdin itself and turns each malformed message into a request for
//! `orrery/malformed`, which answers with a parse error: the client hears about it and the
//! server keeps running.

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

/// Largest message we accept (bigger ones are skipped and reported).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// Copy framed messages from `input` to `output`, replacing malformed ones.
pub async fn run<R, W>(input: R, mut output: W)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut input = BufReader::new(input);
    let mut bad = 0u64;
    loop {
        let mut content_len: Option<usize> = None;
        let mut saw_header = false;
        loop {
            let mut line = String::new();
            match input.read_line(&mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let l = line.trim_end_matches(['\r', '\n']);
            if l.is_empty() {
                if saw_header {
                    break;
                }
                continue;
            }
            saw_header = true;
            if let Some((k, v)) = l.split_once(':') {
                if k.trim().eq_ignore_ascii_case("content-length") {
                    content_len = v.trim().parse().ok();
                }
            }
        }
        let replacement = |reason: String, bad: &mut u64| {
            *bad += 1;
            tracing::warn!("malformed LSP message: {reason}");
            serde_json::json!({
                "jsonrpc": "2.0",
                "id": format!("orrery-malformed-{bad}"),
                "method": "orrery/malformed",
                "params": { "reason": reason },
            })
            .to_string()
            .into_bytes()
        };
        let body = match content_len {
            None => replacement("missing or invalid Content-Length header".into(), &mut bad),
            Some(n) if n > MAX_BODY => {
                let mut sink = tokio::io::sink();
                if tokio::io::copy(&mut (&mut input).take(n as u64), &mut sink)
                    .await
                    .is_err()
                {
                    return;
                }
                replacement(
                    format!("message of {n} bytes is over the {MAX_BODY} byte limit"),
                    &mut bad,
                )
            }
            Some(n) => {
                let mut buf = vec![0u8; n];
                if input.read_exact(&mut buf).await.is_err() {
                    return;
                }
                match serde_json::from_slice::<serde_json::Value>(&buf) {
                    Ok(v) if v.is_object() || v.is_array() => buf,
                    Ok(_) => replacement("a JSON-RPC message must be an object".into(), &mut bad),
                    Err(e) => replacement(format!("invalid JSON: {e}"), &mut bad),
                }
            }
        };
        let header = format!("Content-Length: {}\r\n\r\n", body.len());
        if output.write_all(header.as_bytes()).await.is_err()
            || output.write_all(&body).await.is_err()
            || output.flush().await.is_err()
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn malformed_messages_become_requests_and_framing_survives() {
        let input = b"Content-Length: 9\r\n\r\n{not jsonContent-Length: 2\r\n\r\n{}X-Junk: 1\r\n\r\nContent-Length: 2\r\n\r\n[]".to_vec();
        let mut out = vec![];
        run(&input[..], &mut out).await;
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("orrery-malformed-1"), "{text}");
        assert!(text.contains("invalid JSON"), "{text}");
        assert!(text.contains("Content-Length: 2\r\n\r\n{}"), "{text}");
        assert!(text.contains("missing or invalid Content-Length"), "{text}");
        assert!(text.ends_with("[]"), "{text}");
    }
}
