//! Phoenix on the node (issue 19): the connected views of a LiveView module (each a
//! `Phoenix.LiveView.Channel` process whose state holds the socket), a router's routes
//! (`__routes__/0`), an endpoint's URL, adapter and port. The node side is
//! `agent/orrery_phoenix_v1.erl`; detection is by behaviour (`__live__/0`,
//! `__routes__/0`, `@behaviour Phoenix.Endpoint`), never by the app's names.
//!
//! Finding views walks every process: that happens on the same cadence as process counts
//! (every 5 s); in between only the channels found last time are read again.

use crate::agent;
use crate::attach::{AttachedNode, Session};
use crate::beam::pretty::{self, Limits};
use crate::beam::term::{self, atom, list};
use eetf::Term;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(5);
/// Connected views listed per module in a hover.
pub const VIEWS_SHOWN: usize = 5;

/// One connected LiveView.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ViewOnNode {
    pub node: String,
    pub pid: String,
    /// The URL the channel keeps, else the socket's `host_uri`.
    pub url: Option<String>,
    /// The connect params, in Elixir syntax.
    pub params: Option<String>,
    /// The channel topic (`"lv:phx-F..."`).
    pub topic: Option<String>,
    /// `socket.assigns` without Phoenix's `__changed__`, in Elixir syntax (hover size).
    pub assigns: String,
    /// The same on one line, for hints.
    pub assigns_compact: String,
    pub queue: i64,
    pub memory: i64,
}

/// One route of a router.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Route {
    /// `GET`.
    pub verb: String,
    pub path: String,
    /// `BeaconWeb.PageController`, or `Phoenix.LiveView.Plug` for live routes.
    pub plug: String,
    /// The plug options (`:home`), in Elixir syntax.
    pub action: String,
    /// A live route: the view module and its live action.
    pub live: Option<(String, String)>,
}

/// A router's routes on one node.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RoutesOnNode {
    pub node: String,
    pub count: i64,
    pub routes: Vec<Route>,
}

/// An endpoint on one node.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EndpointOnNode {
    pub node: String,
    pub url: Option<String>,
    /// `config(:adapter)` (`Bandit.PhoenixAdapter`; unset: Phoenix's default).
    pub adapter: Option<String>,
    /// The port of `config(:http)` (else `:https`), in Elixir syntax.
    pub port: Option<String>,
    /// `config(:server)`.
    pub server: Option<String>,
    /// The process under the endpoint's name (its supervisor) and what it runs.
    pub pid: Option<String>,
    pub runs: Option<String>,
}

/// Everything Phoenix-shaped about the watched modules, keyed by module name.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PhoenixSnapshot {
    /// View module -> connected views (every node).
    pub views: BTreeMap<String, Vec<ViewOnNode>>,
    pub routers: BTreeMap<String, Vec<RoutesOnNode>>,
    pub endpoints: BTreeMap<String, Vec<EndpointOnNode>>,
    /// Node -> the channel processes the last walk found (read again between walks).
    pub channels: BTreeMap<String, Vec<Term>>,
}

impl PhoenixSnapshot {
    /// How many views of `module` are connected (every node), if it is a LiveView.
    pub fn view_count(&self, module: &str) -> Option<usize> {
        self.views.get(module).map(Vec::len)
    }

    /// Whether `module` is an endpoint.
    pub fn is_endpoint(&self, module: &str) -> bool {
        self.endpoints.contains_key(module)
    }
}

fn show(t: &Term) -> Option<String> {
    (!term::is_atom(t, "nil")).then(|| pretty::to_elixir_compact(t, 200))
}

fn text(t: Option<&Term>) -> Option<String> {
    let t = t?;
    term::as_string(t)
        .filter(|_| matches!(t, Term::Binary(_)))
        .or_else(|| show(t))
}

fn module_text(t: Option<&Term>) -> String {
    t.and_then(term::as_atom)
        .map(pretty::module_name)
        .unwrap_or_default()
}

/// Query node `n` for the Phoenix side of `modules`; `walk`: look at every process for
/// LiveView channels, else only at `known` (the channels of the last walk).
pub async fn fetch_node(
    n: &AttachedNode,
    modules: &[Term],
    walk: bool,
    known: Option<&Vec<Term>>,
    into: &mut PhoenixSnapshot,
) {
    if modules.is_empty() {
        return;
    }
    let node = n.info.name.clone();
    let pids = match (walk, known) {
        (false, Some(k)) => list(k.clone()),
        _ => atom("all"),
    };
    let limits = agent::limits(6, 30, 200, 3000);
    let args = vec![list(modules.to_vec()), pids, limits];
    let reply = match agent::call_phoenix(&n.conn, "query", args, TIMEOUT).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!("phoenix query on {node} failed: {e}");
            return;
        }
    };
    tracing::debug!("phoenix reply {reply:?}");
    merge(&node, &reply, into);
}

fn merge(node: &str, reply: &Term, into: &mut PhoenixSnapshot) {
    if let Some(Term::Map(views)) = term::get(reply, "views") {
        for (k, v) in &views.map {
            let Some(m) = term::as_atom(k) else { continue };
            let entry = into.views.entry(pretty::module_name(m)).or_default();
            entry.extend(term::list_ref(v).iter().map(|i| view_on_node(node, i)));
        }
    }
    let channels = term::get(reply, "channels")
        .map(term::list_ref)
        .unwrap_or(&[]);
    into.channels.insert(node.to_string(), channels.to_vec());
    if let Some(Term::Map(routers)) = term::get(reply, "routers") {
        for (k, v) in &routers.map {
            let Some(m) = term::as_atom(k) else { continue };
            if term::get(v, "items").is_none() {
                continue;
            }
            into.routers
                .entry(pretty::module_name(m))
                .or_default()
                .push(RoutesOnNode {
                    node: node.to_string(),
                    count: term::get_int(v, "count").unwrap_or(0),
                    routes: term::get(v, "items")
                        .map(term::list_ref)
                        .unwrap_or(&[])
                        .iter()
                        .map(route)
                        .collect(),
                });
        }
    }
    if let Some(Term::Map(eps)) = term::get(reply, "endpoints") {
        for (k, v) in &eps.map {
            let Some(m) = term::as_atom(k) else { continue };
            if term::get(v, "pid").is_none() {
                continue;
            }
            let pid = term::get(v, "pid").and_then(show);
            into.endpoints
                .entry(pretty::module_name(m))
                .or_default()
                .push(EndpointOnNode {
                    node: node.to_string(),
                    url: text(term::get(v, "url")),
                    adapter: term::get(v, "adapter").and_then(show),
                    port: term::get(v, "port").and_then(show),
                    server: term::get(v, "server").and_then(show),
                    runs: pid
                        .as_ref()
                        .and(term::get(v, "runs"))
                        .and_then(term::as_atom)
                        .map(pretty::module_name),
                    pid,
                });
        }
    }
}

fn view_on_node(node: &str, i: &Term) -> ViewOnNode {
    let assigns = term::get(i, "assigns");
    ViewOnNode {
        node: node.to_string(),
        pid: term::get(i, "pid").and_then(show).unwrap_or_default(),
        url: text(term::get(i, "url")),
        params: term::get(i, "params").and_then(show),
        topic: text(term::get(i, "topic")),
        assigns: assigns
            .map(|a| pretty::to_elixir(a, &Limits::hover()))
            .unwrap_or_default(),
        assigns_compact: assigns
            .map(|a| pretty::to_elixir_compact(a, 30))
            .unwrap_or_default(),
        queue: term::get_int(i, "queue").unwrap_or(0),
        memory: term::get_int(i, "memory").unwrap_or(0),
    }
}

fn route(r: &Term) -> Route {
    let live = term::get(r, "live")
        .and_then(term::as_atom)
        .filter(|a| *a != "nil")
        .map(|v| {
            let action = term::get(r, "live_action")
                .and_then(show)
                .unwrap_or_default();
            (pretty::module_name(v), action)
        });
    Route {
        verb: term::get(r, "verb")
            .and_then(term::as_atom)
            .unwrap_or("*")
            .to_uppercase(),
        path: text(term::get(r, "path")).unwrap_or_default(),
        plug: module_text(term::get(r, "plug")),
        action: term::get(r, "action").and_then(show).unwrap_or_default(),
        live,
    }
}

/// `orrery/state` for a LiveView module: each connected view with its assigns as the
/// state. None when `module` is no LiveView on any node.
pub async fn view_states(session: &Session, module: &str) -> Option<Result<Value, String>> {
    let m = term::module(module);
    let mut out = vec![];
    let mut is_view = false;
    for n in session.nodes() {
        let kind = agent::call_phoenix(&n.conn, "kind", vec![m.clone()], TIMEOUT).await;
        if !kind.is_ok_and(|k| term::is_atom(&k, "view")) {
            continue;
        }
        is_view = true;
        let limits = agent::limits(12, 200, 4096, 50_000);
        let args = vec![list(vec![m.clone()]), atom("all"), limits];
        let Ok(r) = agent::call_phoenix(&n.conn, "views", args, TIMEOUT).await else {
            continue;
        };
        let Some([by_view, _]) = term::as_tuple(&r) else {
            continue;
        };
        let Some(views) = term::get(by_view, &term::module_atom(module)) else {
            continue;
        };
        for v in term::list_ref(views) {
            let big = Limits {
                max_depth: 12,
                max_items: 200,
                max_len: 200_000,
                max_binary: 4096,
            };
            out.push(json!({
                "node": n.info.name,
                "pid": term::get(v, "pid").and_then(show),
                "name": text(term::get(v, "topic")),
                "url": text(term::get(v, "url")),
                "params": term::get(v, "params").and_then(show),
                "state": term::get(v, "assigns").map(|a| pretty::to_elixir(a, &big)),
                "stateAvailable": true,
                "stateIs": "socket.assigns",
                "messageQueueLen": term::get_int(v, "queue"),
                "memory": term::get_int(v, "memory"),
            }));
        }
    }
    if !is_view {
        return None;
    }
    if out.is_empty() {
        return Some(Err(format!(
            "no connected view of the LiveView {module} on any attached node"
        )));
    }
    Some(Ok(
        json!({"target": module, "count": out.len(), "liveView": true, "processes": out}),
    ))
}
