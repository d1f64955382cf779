//! One distribution connection to one node: handshake as a hidden node, then a reader task
//! that routes RPC replies by reference and pushed messages by destination pid, and a
//! writer task that also sends ticks.

use super::epmd;
use super::error::BeamError;
use super::term::{self, atom, tuple};
use eetf::{Pid, Reference, Term};
use erl_dist::handshake::{ClientSideHandshake, HandshakeError};
use erl_dist::message::Message;
use erl_dist::node::{Creation, LocalNode, NodeName};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::compat::TokioAsyncReadCompatExt;

/// How often we send a tick; the peer drops a silent connection after `net_ticktime` (60 s).
const TICK_EVERY: Duration = Duration::from_secs(15);
/// Pass-through message tag in a distribution frame.
const PASS_THROUGH: u8 = 112;
/// Largest frame we accept from a node (a misbehaving peer cannot make us allocate more).
const MAX_FRAME: usize = 256 * 1024 * 1024;

/// Split `name@host`.
pub fn split_node_name(node: &str) -> Result<(&str, &str), BeamError> {
    match node.split_once('@') {
        Some((n, h)) if !n.is_empty() && !h.is_empty() && !h.contains('@') => Ok((n, h)),
        _ => Err(BeamError::BadNodeName(node.to_string())),
    }
}

/// A live connection. Cheap to clone; all clones share the socket.
#[derive(Clone)]
pub struct Connection {
    inner: Arc<Inner>,
}

struct Inner {
    peer: String,
    local: String,
    creation: u32,
    out: mpsc::UnboundedSender<Message>,
    rpc_pid: Pid,
    pending: Mutex<HashMap<u64, oneshot::Sender<Term>>>,
    mailboxes: Mutex<HashMap<u32, mpsc::UnboundedSender<Term>>>,
    next_ref: AtomicU64,
    next_pid: AtomicU32,
    down: watch::Sender<Option<BeamError>>,
}

/// A mailbox: a pid of ours that the node can send messages to.
pub struct Mailbox {
    pub pid: Pid,
    pub rx: mpsc::UnboundedReceiver<Term>,
    conn: Connection,
}

impl Drop for Mailbox {
    fn drop(&mut self) {
        if let Ok(mut m) = self.conn.inner.mailboxes.lock() {
            m.remove(&self.pid.id);
        }
    }
}

impl Connection {
    /// Look the node up in EPMD, connect, and handshake as a hidden node.
    pub async fn connect(node: &str, cookie: &str, timeout: Duration) -> Result<Self, BeamError> {
        let (name, host) = split_node_name(node)?;
        let port = epmd::port_of(name, host).await?;
        let stream = tokio::time::timeout(timeout, epmd::tcp_connect(host, port))
            .await
            .map_err(|_| BeamError::Timeout {
                node: node.to_string(),
                what: "connect".into(),
                ms: timeout.as_millis() as u64,
            })?
            .map_err(|e| BeamError::Connect {
                node: node.to_string(),
                detail: e.to_string(),
            })?;
        // Without TCP_NODELAY every small request waits for Nagle: ~44 ms per RPC.
        let _ = stream.set_nodelay(true);

        let local_name = format!(
            "orrery_{}_{}",
            std::process::id(),
            rand::random::<u32>() % 100_000
        );
        let local_node_name = NodeName::new(&local_name, host).map_err(|e| BeamError::Connect {
            node: node.to_string(),
            detail: e.to_string(),
        })?;
        let creation = Creation::random();
        let local = LocalNode::new(local_node_name, creation);
        let local_full = local.name.to_string();
        let handshake = async {
            let mut hs = ClientSideHandshake::new(stream.compat(), local.clone(), cookie);
            hs.execute_send_name(erl_dist::LOWEST_DISTRIBUTION_PROTOCOL_VERSION)
                .await?;
            hs.execute_rest(true).await
        };
        let (stream, _peer) = tokio::time::timeout(timeout, handshake)
            .await
            .map_err(|_| BeamError::Timeout {
                node: node.to_string(),
                what: "handshake".into(),
                ms: timeout.as_millis() as u64,
            })?
            .map_err(|e| handshake_error(node, e))?;
        let stream: TcpStream = stream.into_inner();
        Ok(Self::start(
            node.to_string(),
            local_full,
            creation.get(),
            stream,
        ))
    }

    fn start(peer: String, local: String, creation: u32, stream: TcpStream) -> Self {
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let (down_tx, _) = watch::channel(None);
        let rpc_pid = Pid::new(local.as_str(), 1, 0, creation);
        let inner = Arc::new(Inner {
            peer,
            local,
            creation,
            out: out_tx,
            rpc_pid,
            pending: Mutex::new(HashMap::new()),
            mailboxes: Mutex::new(HashMap::new()),
            next_ref: AtomicU64::new(1),
            next_pid: AtomicU32::new(2),
            down: down_tx,
        });
        let (rd, wr) = stream.into_split();
        tokio::spawn(writer(wr, out_rx, Arc::downgrade(&inner)));
        tokio::spawn(reader(rd, inner.clone()));
        Connection { inner }
    }

    /// The peer's node name.
    pub fn peer(&self) -> &str {
        &self.inner.peer
    }

    /// Our own (hidden) node name.
    pub fn local_name(&self) -> &str {
        &self.inner.local
    }

    /// `Some(reason)` once the connection is gone.
    pub fn down_reason(&self) -> Option<BeamError> {
        self.inner.down.borrow().clone()
    }

    /// Wait until the connection is gone, and say why.
    pub async fn closed(&self) -> BeamError {
        let mut rx = self.inner.down.subscribe();
        loop {
            if let Some(e) = rx.borrow_and_update().clone() {
                return e;
            }
            if rx.changed().await.is_err() {
                return self.node_down(None);
            }
        }
    }

    fn node_down(&self, reason: Option<String>) -> BeamError {
        BeamError::NodeDown {
            node: self.inner.peer.clone(),
            reason,
        }
    }

    fn make_ref(&self) -> (u64, Reference) {
        let n = self.inner.next_ref.fetch_add(1, Ordering::Relaxed);
        let r = Reference {
            node: eetf::Atom::from(self.inner.local.as_str()),
            id: vec![(n & 0x3ffff) as u32, (n >> 18) as u32, 0],
            creation: self.inner.creation,
        };
        (n, r)
    }

    /// A new mailbox pid; messages the node sends to it arrive on `rx`.
    pub fn mailbox(&self) -> Mailbox {
        let id = self.inner.next_pid.fetch_add(1, Ordering::Relaxed);
        let pid = Pid::new(self.inner.local.as_str(), id, 0, self.inner.creation);
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut m) = self.inner.mailboxes.lock() {
            m.insert(id, tx);
        }
        Mailbox {
            pid,
            rx,
            conn: self.clone(),
        }
    }

    /// Send `msg` to the registered process `name` on the peer.
    pub fn send_named(&self, from: &Pid, name: &str, msg: Term) -> Result<(), BeamError> {
        if let Some(e) = self.down_reason() {
            return Err(e);
        }
        self.inner
            .out
            .send(Message::reg_send(from.clone(), eetf::Atom::from(name), msg))
            .map_err(|_| self.node_down(None))
    }

    /// Send `msg` to a pid on the peer.
    pub fn send_pid(&self, to: &Pid, msg: Term) -> Result<(), BeamError> {
        if let Some(e) = self.down_reason() {
            return Err(e);
        }
        self.inner
            .out
            .send(Message::send(to.clone(), msg))
            .map_err(|_| self.node_down(None))
    }

    /// `rpc:call(Node, M, F, A)` through `rex`, with a timeout. Elixir modules are given
    /// with their `Elixir.` prefix. The group leader is the node's `user`, so output
    /// of the call goes to the node's console, not to us.
    pub async fn rpc(
        &self,
        module: &str,
        function: &str,
        args: Vec<Term>,
        timeout: Duration,
    ) -> Result<Term, BeamError> {
        let mfa = || format!("{module}:{function}/{}", args_len(&args));
        let (key, r) = self.make_ref();
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = self.inner.pending.lock() {
            p.insert(key, tx);
        }
        let what = mfa();
        let request = tuple(vec![
            atom("$gen_call"),
            tuple(vec![
                Term::Pid(self.inner.rpc_pid.clone()),
                Term::Reference(Box::new(r)),
            ]),
            tuple(vec![
                atom("call"),
                atom(module),
                atom(function),
                term::list(args),
                atom("user"),
            ]),
        ]);
        let sent = self.send_named(&self.inner.rpc_pid.clone(), "rex", request);
        if let Err(e) = sent {
            self.forget(key);
            return Err(e);
        }
        let reply = match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => {
                return Err(self.down_reason().unwrap_or_else(|| self.node_down(None)));
            }
            Err(_) => {
                self.forget(key);
                return Err(BeamError::Timeout {
                    node: self.inner.peer.clone(),
                    what,
                    ms: timeout.as_millis() as u64,
                });
            }
        };
        if let Some([tag, reason]) = term::as_tuple(&reply) {
            if term::is_atom(tag, "badrpc") {
                return Err(BeamError::Rpc {
                    node: self.inner.peer.clone(),
                    mfa: what,
                    reason: crate::beam::pretty::to_elixir_compact(reason, 600),
                });
            }
        }
        Ok(reply)
    }

    fn forget(&self, key: u64) {
        if let Ok(mut p) = self.inner.pending.lock() {
            p.remove(&key);
        }
    }

    /// Close the connection now (pending calls fail with "went down: detached").
    pub fn close(&self) {
        mark_down(&self.inner, Some("closed by Orrery".into()));
    }
}

fn args_len(args: &[Term]) -> usize {
    args.len()
}

fn handshake_error(node: &str, e: HandshakeError) -> BeamError {
    match e {
        HandshakeError::Io(ref io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            BeamError::CookieRejected {
                node: node.to_string(),
            }
        }
        HandshakeError::CookieMismatch => BeamError::CookieRejected {
            node: node.to_string(),
        },
        HandshakeError::NotAllowed => BeamError::Connect {
            node: node.to_string(),
            detail: "the node refused the connection (not allowed)".into(),
        },
        other => BeamError::Connect {
            node: node.to_string(),
            detail: other.to_string(),
        },
    }
}

fn mark_down(inner: &Inner, reason: Option<String>) {
    let err = BeamError::NodeDown {
        node: inner.peer.clone(),
        reason,
    };
    inner.down.send_if_modified(|cur| {
        if cur.is_none() {
            *cur = Some(err);
            true
        } else {
            false
        }
    });
    // Dropping the senders wakes every waiter with an error.
    if let Ok(mut p) = inner.pending.lock() {
        p.clear();
    }
    if let Ok(mut m) = inner.mailboxes.lock() {
        m.clear();
    }
}

async fn writer(
    mut wr: tokio::net::tcp::OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Message>,
    inner: std::sync::Weak<Inner>,
) {
    let mut tick = tokio::time::interval(TICK_EVERY);
    tick.tick().await;
    let mut down = match inner.upgrade() {
        Some(i) => i.down.subscribe(),
        None => return,
    };
    loop {
        let frame = tokio::select! {
            m = rx.recv() => match m {
                Some(m) => encode(m),
                None => break,
            },
            _ = tick.tick() => Ok(vec![0, 0, 0, 0]),
            _ = down.changed() => break,
        };
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!("could not encode a message for the node: {e}");
                continue;
            }
        };
        if let Err(e) = wr.write_all(&frame).await {
            if let Some(i) = inner.upgrade() {
                mark_down(&i, Some(e.to_string()));
            }
            break;
        }
    }
    let _ = wr.shutdown().await;
}

fn encode(m: Message) -> Result<Vec<u8>, String> {
    let mut buf = vec![0, 0, 0, 0, PASS_THROUGH];
    m.write_into(&mut buf).map_err(|e| e.to_string())?;
    let len = (buf.len() - 4) as u32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf)
}

async fn reader(rd: tokio::net::tcp::OwnedReadHalf, inner: Arc<Inner>) {
    let mut rd = BufReader::with_capacity(64 * 1024, rd);
    let mut down = inner.down.subscribe();
    let reason = loop {
        let len = tokio::select! {
            r = rd.read_u32() => r,
            _ = down.changed() => return,
        };
        let len = match len {
            Ok(l) => l as usize,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break None,
            Err(e) => break Some(e.to_string()),
        };
        if len == 0 {
            continue; // tick
        }
        if len > MAX_FRAME {
            break Some(format!(
                "frame of {len} bytes is larger than the {MAX_FRAME} byte limit"
            ));
        }
        let mut buf = vec![0u8; len];
        if let Err(e) = rd.read_exact(&mut buf).await {
            break Some(e.to_string());
        }
        if buf[0] != PASS_THROUGH {
            tracing::warn!(
                tag = buf[0],
                "ignoring a distribution frame with an unknown tag"
            );
            continue;
        }
        // Terms nested past a bound are cut here, before any recursive decode or walk.
        let body = super::depth::bound(&buf[1..], super::depth::MAX_DEPTH);
        match Message::read_from(&mut &body[..]) {
            Ok(msg) => route(&inner, msg),
            Err(e) => tracing::warn!("ignoring a message we could not decode: {e}"),
        }
    };
    mark_down(&inner, reason);
}

fn route(inner: &Inner, msg: Message) {
    let (to, body) = match msg {
        Message::Send(m) => (m.to_pid, m.message),
        Message::SendSender(m) => (m.to_pid, m.message),
        Message::SendTt(m) => (m.to_pid, m.message),
        Message::SendSenderTt(m) => (m.to_pid, m.message),
        other => {
            tracing::trace!("ignoring control message {other:?}");
            return;
        }
    };
    if to.id == inner.rpc_pid.id {
        // `{Ref, Reply}` from gen_server:reply.
        if let Term::Tuple(t) = body {
            let mut it = t.elements.into_iter();
            if let (Some(Term::Reference(r)), Some(reply)) = (it.next(), it.next()) {
                let key = (r.id.first().copied().unwrap_or(0) as u64)
                    | ((r.id.get(1).copied().unwrap_or(0) as u64) << 18);
                let waiter = inner.pending.lock().ok().and_then(|mut p| p.remove(&key));
                if let Some(w) = waiter {
                    let _ = w.send(reply);
                }
            }
        }
        return;
    }
    let tx = inner
        .mailboxes
        .lock()
        .ok()
        .and_then(|m| m.get(&to.id).cloned());
    if let Some(tx) = tx {
        let _ = tx.send(body);
    }
}
