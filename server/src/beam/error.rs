//! Errors a user can act on. Every message says what went wrong and, where it helps,
//! what to do. None of them ever carries the cookie.

/// Why talking to a BEAM node failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum BeamError {
    /// EPMD is not listening on the host.
    #[error(
        "no EPMD on {host}: no Erlang node is running there (start your app with `--sname NAME`)"
    )]
    NoEpmd { host: String },
    /// EPMD knows no node of that name.
    #[error("no node named {name} on {host} (registered: {registered})")]
    NoSuchNode {
        name: String,
        host: String,
        registered: String,
    },
    /// The peer closed the connection during the handshake: the cookie did not match.
    #[error("cookie rejected by {node}: set `cookie` or `cookieFile` to the node's cookie (default ~/.erlang.cookie)")]
    CookieRejected { node: String },
    /// The connection dropped.
    #[error("node {node} went down{}", reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default())]
    NodeDown {
        node: String,
        reason: Option<String>,
    },
    /// A request got no answer in time.
    #[error("{what} on {node} timed out after {ms} ms")]
    Timeout { node: String, what: String, ms: u64 },
    /// The node name is not `name@host`.
    #[error("bad node name {0:?}: expected name@host, e.g. kv@localhost")]
    BadNodeName(String),
    /// The handshake failed for another reason.
    #[error("could not connect to {node}: {detail}")]
    Connect { node: String, detail: String },
    /// The remote call raised or the function does not exist.
    #[error("{mfa} failed on {node}: {reason}")]
    Rpc {
        node: String,
        mfa: String,
        reason: String,
    },
    /// The node answered something we did not expect.
    #[error("unexpected answer from {node}: {detail}")]
    Protocol { node: String, detail: String },
    /// Not attached to any node.
    #[error("not attached to a node{}", .0.as_ref().map(|r| format!(" ({r})")).unwrap_or_default())]
    Detached(Option<String>),
}

impl BeamError {
    /// Whether retrying later may help (the node may come back).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            BeamError::NoEpmd { .. }
                | BeamError::NoSuchNode { .. }
                | BeamError::NodeDown { .. }
                | BeamError::Connect { .. }
                | BeamError::Timeout { .. }
        )
    }
}
