//! The bridge between `orrery dap` and a language server of the same workspace. A language
//! server listens on a Unix socket named after its mix root; `orrery dap`, on `launch` or
//! `attach`, asks it whether it can take the session (attached, same node, no task to run).
//! If so, the debug session runs inside the language server on its connection to the node
//! (one connection, one agent, and `launch` debugs the app the editor already shows);
//! `orrery dap` only relays messages. Otherwise `orrery dap` runs standalone.
//!
//! Protocol on the socket (DAP framing): the client sends `{"type": "orrery-bridge",
//! "command", "arguments"}`; the server answers `{"type": "orrery-bridge", "accept": bool,
//! "reason"}`; after an accept, the client sends the DAP messages it gets (the launch or
//! attach request first) and relays what comes back.

use super::wire::{self, Out};
use crate::core::Core;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::net::{UnixListener, UnixStream};

/// The socket of the language server for the mix project at `root` (a short path: socket
/// paths are limited to about 100 bytes).
pub fn socket_path(root: &Path) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let root = crate::managed::find_mix_root(root).unwrap_or_else(|| root.to_path_buf());
    let root = crate::core::normalize(&root);
    let mut h = std::collections::hash_map::DefaultHasher::new();
    root.hash(&mut h);
    runtime_dir().join(format!("{:016x}.sock", h.finish()))
}

fn runtime_dir() -> PathBuf {
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    base.join(format!("orrery-{uid}"))
}

/// Whether `dir` belongs to this user and nobody else can enter it: whoever can reach the
/// socket can drive the debugger (and evaluate code on the node).
fn is_private(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    std::fs::symlink_metadata(dir)
        .is_ok_and(|m| m.is_dir() && m.uid() == uid && m.mode() & 0o077 == 0)
}

/// Removes the socket file when the language server ends.
pub struct Listening(PathBuf);

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Listen for `orrery dap` processes of this workspace. `None` (logged) when the socket
/// cannot be made; debugging then runs standalone.
pub fn listen(core: Arc<Core>, root: &Path) -> Option<Listening> {
    use std::os::unix::fs::DirBuilderExt;
    let path = socket_path(root);
    let dir = path.parent()?;
    if let Err(e) = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        tracing::warn!("debug bridge: cannot create {}: {e}", dir.display());
        return None;
    }
    if !is_private(dir) {
        tracing::warn!(
            "debug bridge: {} is not a directory only this user can use; not listening",
            dir.display()
        );
        return None;
    }
    // A live server already listens for this workspace: leave it be.
    if std::os::unix::net::UnixStream::connect(&path).is_ok() {
        tracing::info!("debug bridge: another language server serves this workspace");
        return None;
    }
    let _ = std::fs::remove_file(&path);
    let listener = match UnixListener::bind(&path) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("debug bridge: cannot listen on {}: {e}", path.display());
            return None;
        }
    };
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let core = core.clone();
            tokio::spawn(async move { serve_one(core, stream).await });
        }
    });
    Some(Listening(path))
}

/// Whether this language server can take a session started with `command`/`args`.
fn accepts(core: &Core, command: &str, args: &Value) -> Result<(), String> {
    let session = core
        .session()
        .filter(|s| s.status() == crate::attach::Status::Attached)
        .ok_or("the language server is not attached")?;
    if args["task"].is_string() || args["script"].is_string() {
        return Err("a task runs on its own node".into());
    }
    match args["node"].as_str() {
        Some(n) if n != session.node() => Err(format!("it is attached to {}", session.node())),
        Some(_) => {
            // The session's connection is not a way around the cookie: the one the debug
            // configuration gives must be the one the language server attached with.
            let settings = crate::config::Settings {
                cookie: args["cookie"].as_str().map(str::to_string),
                cookie_file: args["cookieFile"].as_str().map(std::path::PathBuf::from),
                ..Default::default()
            };
            match settings.resolve_cookie() {
                Ok(c) if session.cookie_is(&c) => Ok(()),
                _ => Err("the debug configuration's cookie is not the language server's".into()),
            }
        }
        None if command == "attach" => Err("attach names no node".into()),
        None => Ok(()),
    }
}

async fn serve_one(core: Arc<Core>, stream: UnixStream) {
    let (rd, wr) = stream.into_split();
    let mut reader = wire::Reader::new(rd);
    let (out, writer) = wire::writer(wr);
    let Ok(Some(hello)) = reader.next().await else {
        return;
    };
    if hello["type"] != "orrery-bridge" {
        return;
    }
    let command = hello["command"].as_str().unwrap_or("");
    let verdict = accepts(&core, command, &hello["arguments"]);
    out.send_as_is(json!({"type": "orrery-bridge", "accept": verdict.is_ok(), "reason": verdict.as_ref().err()}));
    if verdict.is_err() {
        drop(out);
        let _ = writer.await;
        return;
    }
    core.debug_sessions.fetch_add(1, Ordering::Relaxed);
    super::serve(reader, out, Some(core.clone())).await;
    core.debug_sessions.fetch_sub(1, Ordering::Relaxed);
    let _ = writer.await;
}

/// Ask the language server of `root` to take the session; `Some` when it did, with the
/// connection to relay over.
pub async fn offer(
    root: &Path,
    command: &str,
    args: &Value,
) -> Option<(wire::Reader<tokio::net::unix::OwnedReadHalf>, Out)> {
    let path = socket_path(root);
    if !is_private(path.parent()?) {
        return None;
    }
    let stream = UnixStream::connect(path).await.ok()?;
    let (rd, wr) = stream.into_split();
    let mut reader = wire::Reader::new(rd);
    let (out, _writer) = wire::writer(wr);
    out.send_as_is(json!({"type": "orrery-bridge", "command": command, "arguments": args}));
    let answer = tokio::time::timeout(std::time::Duration::from_secs(5), reader.next())
        .await
        .ok()?
        .ok()??;
    if answer["accept"] == json!(true) {
        Some((reader, out))
    } else {
        tracing::info!(
            "debug bridge: the language server declined ({}); running standalone",
            answer["reason"].as_str().unwrap_or("?")
        );
        None
    }
}

/// Relay between the editor (`client_rx`, `client_out`) and the language server until
/// either side ends. The first message (the launch/attach request) is sent first.
pub async fn relay<R: tokio::io::AsyncRead + Unpin>(
    first: Value,
    client_rx: &mut wire::Reader<R>,
    client_out: &Out,
    mut server_rx: wire::Reader<tokio::net::unix::OwnedReadHalf>,
    server_out: Out,
) {
    server_out.send_as_is(first);
    let to_client = client_out.clone();
    // Whether the server ended the session itself (a `terminated` event) before it closed.
    let mut back = tokio::spawn(async move {
        let mut said_terminated = false;
        while let Ok(Some(v)) = server_rx.next().await {
            said_terminated |= v["event"] == "terminated";
            to_client.relay(v);
        }
        said_terminated
    });
    let mut ending = false;
    loop {
        tokio::select! {
            msg = client_rx.next() => match msg {
                Ok(Some(v)) => {
                    ending |= v["command"] == "disconnect" || v["command"] == "terminate";
                    server_out.send_as_is(v);
                }
                Ok(None) => break,
                Err(e) => client_out.event("output", json!({"category": "stderr", "output": format!("Orrery: malformed DAP message: {e}\n")})),
            },
            said = &mut back => {
                if !ending && !said.unwrap_or(false) {
                    client_out.event("output", json!({"category": "important", "output": "Orrery: the language server running this debug session went away (its connection closed), so the session ended; the node undoes what the session changed by itself (paused processes resume, breakpoints are removed) after a short grace period. Start debugging again once the language server is back.\n"}));
                    client_out.event("terminated", json!({}));
                }
                return;
            }
        }
    }
    // The editor is gone: closing our side makes the language server disconnect.
    drop(server_out);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), back).await;
}
