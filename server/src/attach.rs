//! An attachment to a node (and its cluster peers): connect, load the agent, watch the
//! connection, re-attach by itself with backoff when the node comes back, and detach
//! cleanly (agent removed, node as found).

use crate::agent::{self, AgentHandle, Owner};
use crate::beam::term;
use crate::beam::{BeamError, Connection};
use eetf::Term;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, watch};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const RPC_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// What the attach found on one node.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    pub name: String,
    pub otp: String,
    pub elixir: Option<String>,
    pub agent: bool,
    /// The node has trace sessions (OTP 27+): Orrery traces in sessions of its own.
    pub trace_sessions: bool,
    pub apps: Vec<(String, String)>,
    pub process_count: i64,
    pub nodes: Vec<String>,
    /// Which incarnation of the node (changes when it restarts).
    pub creation: i64,
}

impl NodeInfo {
    fn from_summary(t: &Term) -> NodeInfo {
        let atoms = |k: &str| -> Vec<String> {
            term::get(t, k)
                .map(term::list_ref)
                .unwrap_or(&[])
                .iter()
                .filter_map(|a| term::as_atom(a).map(str::to_string))
                .collect()
        };
        NodeInfo {
            creation: term::get_int(t, "creation").unwrap_or(0),
            name: term::get(t, "node")
                .and_then(term::as_atom)
                .unwrap_or_default()
                .to_string(),
            otp: term::get_str(t, "otp").unwrap_or_default(),
            elixir: term::get(t, "elixir")
                .filter(|e| !term::is_atom(e, "nil"))
                .and_then(term::as_string),
            agent: term::get_int(t, "agent").is_some(),
            trace_sessions: term::get(t, "trace_sessions")
                .is_some_and(|b| term::is_atom(b, "true")),
            apps: term::get(t, "apps")
                .map(term::list_ref)
                .unwrap_or(&[])
                .iter()
                .filter_map(|a| match term::as_tuple(a) {
                    Some([n, v]) => Some((term::as_atom(n)?.to_string(), term::as_string(v)?)),
                    _ => None,
                })
                .collect(),
            process_count: term::get_int(t, "process_count").unwrap_or(0),
            nodes: atoms("nodes"),
        }
    }
}

/// One attached node.
#[derive(Clone)]
pub struct AttachedNode {
    pub conn: Connection,
    pub agent: AgentHandle,
    pub info: NodeInfo,
}

/// Where the session stands.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum Status {
    Attaching,
    Attached,
    Detached { reason: String },
}

/// Something that happened to the session.
#[derive(Debug, Clone)]
pub enum Event {
    Attached(Vec<NodeInfo>),
    Detached(String),
}

struct Shared {
    node: String,
    cookie: String,
    attach_peers: bool,
    nodes: Mutex<Vec<AttachedNode>>,
    status: watch::Sender<Status>,
    events: broadcast::Sender<Event>,
    stop: watch::Sender<bool>,
    owner: Owner,
}

/// A session attached (or trying to attach) to one node and its peers.
#[derive(Clone)]
pub struct Session {
    shared: Arc<Shared>,
}

impl Session {
    /// Start attaching to `node` in the background; it keeps re-attaching until `detach`.
    pub fn start(node: &str, cookie: &str, attach_peers: bool) -> Session {
        let (status, _) = watch::channel(Status::Attaching);
        let (events, _) = broadcast::channel(64);
        let (stop, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            node: node.to_string(),
            cookie: cookie.to_string(),
            attach_peers,
            nodes: Mutex::new(vec![]),
            status,
            events,
            stop,
            owner: Owner::new(),
        });
        tokio::spawn(supervise(shared.clone()));
        Session { shared }
    }

    /// The configured node name.
    /// Whom the agents' guards know this session as.
    pub fn owner(&self) -> &Owner {
        &self.shared.owner
    }

    pub fn node(&self) -> &str {
        &self.shared.node
    }

    /// Whether `cookie` is the one this session attached with.
    pub fn cookie_is(&self, cookie: &str) -> bool {
        self.shared.cookie == cookie
    }

    /// Current status.
    pub fn status(&self) -> Status {
        self.shared.status.borrow().clone()
    }

    /// Subscribe to attach/detach events.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.shared.events.subscribe()
    }

    /// The attached nodes (primary first), empty while detached.
    pub fn nodes(&self) -> Vec<AttachedNode> {
        self.shared
            .nodes
            .lock()
            .map(|n| n.clone())
            .unwrap_or_default()
    }

    /// The primary node's connection, or why there is none.
    pub fn primary(&self) -> Result<Connection, BeamError> {
        self.nodes().first().map(|n| n.conn.clone()).ok_or_else(|| {
            BeamError::Detached(match self.status() {
                Status::Detached { reason } => Some(reason),
                Status::Attaching => Some("attaching".into()),
                Status::Attached => None,
            })
        })
    }

    /// Wait until the first attach attempt settles: attached, or detached with a reason.
    pub async fn wait_settled(&self, timeout: Duration) -> Status {
        let mut rx = self.shared.status.subscribe();
        let wait = async {
            loop {
                let s = rx.borrow_and_update().clone();
                if s != Status::Attaching {
                    return s;
                }
                if rx.changed().await.is_err() {
                    return self.status();
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .unwrap_or_else(|_| self.status())
    }

    /// Wait until attached (or the timeout passes).
    pub async fn wait_attached(&self, timeout: Duration) -> Result<(), String> {
        let mut rx = self.shared.status.subscribe();
        let wait = async {
            loop {
                if *rx.borrow_and_update() == Status::Attached {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(()) if self.status() == Status::Attached => Ok(()),
            _ => Err(match self.status() {
                Status::Detached { reason } => reason,
                s => format!("{s:?}"),
            }),
        }
    }

    /// Stop re-attaching, remove the agent from every node, and close the connections.
    pub async fn detach(&self) {
        let _ = self.shared.stop.send(true);
        let nodes =
            std::mem::take(&mut *self.shared.nodes.lock().unwrap_or_else(|e| e.into_inner()));
        for n in nodes {
            if let Err(e) = agent::unload(&n.conn, &n.agent).await {
                tracing::warn!("could not remove the agent from {}: {e}", n.info.name);
            }
            n.conn.close();
        }
        set_status(
            &self.shared,
            Status::Detached {
                reason: "detached".into(),
            },
        );
    }
}

fn set_status(shared: &Shared, s: Status) {
    shared.status.send_if_modified(|cur| {
        if *cur != s {
            *cur = s;
            true
        } else {
            false
        }
    });
}

async fn attach_one(node: &str, cookie: &str, owner: &Owner) -> Result<AttachedNode, BeamError> {
    let conn = Connection::connect(node, cookie, CONNECT_TIMEOUT).await?;
    let agent = agent::load(&conn, owner).await?;
    let summary = agent::call(&conn, "summary", vec![], RPC_TIMEOUT).await?;
    Ok(AttachedNode {
        info: NodeInfo::from_summary(&summary),
        conn,
        agent,
    })
}

async fn supervise(shared: Arc<Shared>) {
    let mut stop = shared.stop.subscribe();
    let mut backoff = BACKOFF_MIN;
    loop {
        if *stop.borrow() {
            return;
        }
        // Architecture Invariant: an attach is never cut off in the middle (its loads would
        // reach the node with nobody to remove them); one that ends after `detach` leaves
        // the node itself.
        let attempt = attach_one(&shared.node, &shared.cookie, &shared.owner).await;
        match attempt {
            Ok(primary) => {
                backoff = BACKOFF_MIN;
                let conn = primary.conn.clone();
                let mut nodes = vec![primary.clone()];
                if shared.attach_peers {
                    for peer in &primary.info.nodes {
                        if *stop.borrow() {
                            break;
                        }
                        match attach_one(peer, &shared.cookie, &shared.owner).await {
                            Ok(p) => nodes.push(p),
                            Err(e) => tracing::warn!("could not attach to peer {peer}: {e}"),
                        }
                    }
                }
                if *stop.borrow() {
                    for n in nodes {
                        let _ = agent::unload(&n.conn, &n.agent).await;
                        n.conn.close();
                    }
                    return;
                }
                let infos: Vec<NodeInfo> = nodes.iter().map(|n| n.info.clone()).collect();
                if let Ok(mut n) = shared.nodes.lock() {
                    *n = nodes;
                }
                tracing::info!("attached to {}", shared.node);
                set_status(&shared, Status::Attached);
                let _ = shared.events.send(Event::Attached(infos));
                let reason = tokio::select! {
                    e = conn.closed() => e.to_string(),
                    _ = stop.changed() => return,
                };
                if *stop.borrow() {
                    return;
                }
                if let Ok(mut n) = shared.nodes.lock() {
                    for node in n.iter() {
                        node.conn.close();
                    }
                    n.clear();
                }
                tracing::warn!("{reason}; re-attaching when it is back");
                set_status(
                    &shared,
                    Status::Detached {
                        reason: reason.clone(),
                    },
                );
                let _ = shared.events.send(Event::Detached(reason));
            }
            Err(_) if *stop.borrow() => return,
            Err(e) => {
                let reason = e.to_string();
                if shared.status.borrow().clone()
                    != (Status::Detached {
                        reason: reason.clone(),
                    })
                {
                    tracing::warn!("attach to {} failed: {reason}", shared.node);
                    let _ = shared.events.send(Event::Detached(reason.clone()));
                }
                set_status(&shared, Status::Detached { reason });
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => return,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// `orrery/status`-style view of one node.
pub fn node_json(info: &NodeInfo) -> serde_json::Value {
    serde_json::json!({
        "name": info.name,
        "otp": info.otp,
        "elixir": info.elixir,
        "agent": info.agent,
        "traceSessions": info.trace_sessions,
    })
}

/// Query the agent on every attached node with one batched request each.
pub async fn query_all(
    session: &Session,
    request: Term,
    timeout: Duration,
) -> Vec<(NodeInfo, Result<Term, BeamError>)> {
    let nodes = session.nodes();
    let futs = nodes.iter().map(|n| {
        let req = request.clone();
        async move {
            (
                n.info.clone(),
                agent::call(&n.conn, "query", vec![req], timeout).await,
            )
        }
    });
    futures::future::join_all(futs).await
}
