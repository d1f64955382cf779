//! The live model: what is true *now* on the attached nodes for the modules, registered
//! processes and ETS tables of the open documents. One batched agent query per node per
//! refresh; the snapshot says whether anything changed so clients refresh only then.

pub mod calltime;
pub mod docs;
pub mod named;
pub mod phoenix;
pub mod render;
pub mod sources;
pub mod targets;
pub mod trace;
pub mod views;
pub mod writes;

use crate::agent;
use crate::attach::Session;
use crate::beam::pretty;
use crate::beam::term::{self, atom, list, map};
use crate::workspace::index::NameDef;
use eetf::Term;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// How often processes per module are counted on refresh.
const PROC_COUNT_EVERY: Duration = Duration::from_secs(5);

fn limits_with_count(count_procs: bool) -> Term {
    let mut l = agent::limits(6, 30, 200, 3000);
    if let Term::Map(m) = &mut l {
        m.map.insert(
            atom("count_procs"),
            atom(if count_procs { "true" } else { "false" }),
        );
    }
    l
}

/// One module on one node.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ModuleOnNode {
    pub node: String,
    pub loaded: bool,
    pub md5: Option<String>,
    pub stale: Option<bool>,
    pub procs: i64,
}

/// A registered process on one node.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcOnNode {
    pub node: String,
    /// The name it was found under when that is not the module (`{:global, :kv}`).
    pub label: Option<String>,
    pub pid: String,
    /// Pretty state in Elixir syntax, or why it is not available.
    pub state: Result<String, String>,
    /// One-line state for inlay hints.
    pub state_compact: String,
    pub queue: i64,
    pub memory: i64,
    pub reductions: i64,
    /// Registered under the module's name but running another module (a `Registry`
    /// named `ConCache`): that module; such a process is not the module's own.
    pub runs: Option<String>,
}

impl ProcOnNode {
    /// Whether this is the module's own process (not just one that holds its name).
    pub fn is_own(&self) -> bool {
        self.runs.is_none()
    }
}

impl Default for ProcOnNode {
    fn default() -> Self {
        Self {
            node: String::new(),
            label: None,
            pid: String::new(),
            state: Err(String::new()),
            state_compact: String::new(),
            queue: 0,
            memory: 0,
            reductions: 0,
            runs: None,
        }
    }
}

/// Processes of a Registry (names with a computed key) that run a module, on one node.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RegistryProcs {
    pub node: String,
    /// `{:via, Registry, {KV.Names, _}}`.
    pub name: String,
    /// How many run the module.
    pub count: i64,
    /// The first few, by key: (key in Elixir syntax, process).
    pub items: Vec<(String, ProcOnNode)>,
    /// Every key of the registry (the registry's own module), whatever runs them.
    pub all: bool,
    /// Found at run time (names the code does not tell): `name` is not a name pattern.
    pub runtime: bool,
}

/// An ETS table on one node.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TableOnNode {
    pub node: String,
    pub kind: String,
    pub size: i64,
    pub memory: i64,
    pub owner: String,
    pub rows: String,
}

/// Timed calls of one function on one node: (node, calls, total µs).
pub type CallTime = (String, i64, i64);

/// Everything known right now, keyed by Elixir-style names (`KV.Bucket`, `:kv_table`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Snapshot {
    pub modules: BTreeMap<String, Vec<ModuleOnNode>>,
    pub procs: BTreeMap<String, Vec<ProcOnNode>>,
    pub tables: BTreeMap<String, Vec<TableOnNode>>,
    /// module -> "fun/arity" -> (node, calls)
    pub calls: BTreeMap<String, BTreeMap<String, Vec<(String, i64)>>>,
    /// module -> (node, since when its counts run, ms since the epoch) for counts that
    /// started again after a load Orrery did not make; absent: since counting began.
    pub calls_since: BTreeMap<String, Vec<(String, i64)>>,
    /// module -> Registry processes found through names with a computed key.
    pub registries: BTreeMap<String, Vec<RegistryProcs>>,
    /// module -> "fun/arity" -> (node, calls, total µs); only with `liveCallTime`.
    pub times: BTreeMap<String, BTreeMap<String, Vec<CallTime>>>,
    /// LiveViews, routers and endpoints among the modules (`phoenix.rs`).
    pub phoenix: phoenix::PhoenixSnapshot,
}

impl Snapshot {
    /// The parts that hints and lenses show. Reductions and memory of a process move on
    /// every query (reading state costs reductions), so they do not count as a change.
    pub fn visible(&self) -> Snapshot {
        let mut v = self.clone();
        for procs in v.procs.values_mut() {
            for p in procs {
                p.reductions = 0;
                p.memory = 0;
            }
        }
        for regs in v.registries.values_mut() {
            for (_, p) in regs.iter_mut().flat_map(|r| r.items.iter_mut()) {
                p.reductions = 0;
                p.memory = 0;
            }
        }
        v
    }
}

/// What to watch: modules and tables of the open documents.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Interest {
    pub modules: BTreeSet<String>,
    pub tables: BTreeSet<String>,
    /// Process names written in the modules' code, per module.
    pub names: BTreeMap<String, Vec<NameDef>>,
}

/// The live model for one session.
pub struct LiveModel {
    snapshot: Mutex<Snapshot>,
    /// When processes per module were last counted (that walks every process).
    last_count: Mutex<Option<std::time::Instant>>,
    /// `liveCallTime` (unset: on where the node has trace sessions), and the nodes where
    /// call times are set now.
    call_time: Mutex<Option<bool>>,
    call_time_on: Mutex<BTreeSet<String>>,
}

impl Default for LiveModel {
    fn default() -> Self {
        Self::new()
    }
}

fn md5_hex(t: &Term) -> Option<String> {
    match t {
        Term::Binary(b) => Some(b.bytes.iter().map(|x| format!("{x:02x}")).collect()),
        _ => None,
    }
}

fn pid_text(t: &Term) -> String {
    pretty::to_elixir_compact(t, 60)
}

impl LiveModel {
    pub fn new() -> Self {
        Self {
            snapshot: Mutex::new(Snapshot::default()),
            last_count: Mutex::new(None),
            call_time: Mutex::new(None),
            call_time_on: Mutex::new(BTreeSet::new()),
        }
    }

    /// Mean call times (`liveCallTime`) on, off, or as the node has it (unset) from the
    /// next refresh.
    pub fn set_call_time(&self, setting: Option<bool>) {
        *self.call_time.lock().unwrap_or_else(|e| e.into_inner()) = setting;
    }

    fn call_time_nodes(&self) -> BTreeSet<String> {
        self.call_time_on
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    fn set_call_time_nodes(&self, nodes: BTreeSet<String>) {
        *self.call_time_on.lock().unwrap_or_else(|e| e.into_inner()) = nodes;
    }

    /// Count call times for the modules of `interest` on each node that wants them; undo
    /// where not.
    async fn sync_call_time(&self, session: &Session, interest: &Interest, snap: &mut Snapshot) {
        let setting = *self.call_time.lock().unwrap_or_else(|e| e.into_inner());
        let nodes = session.nodes();
        let mut on = self.call_time_nodes();
        on.retain(|name| nodes.iter().any(|n| &n.info.name == name));
        for n in &nodes {
            if calltime::wanted(setting, &n.info) && !interest.modules.is_empty() {
                calltime::sync(n, &interest.modules, snap).await;
                on.insert(n.info.name.clone());
            } else if on.remove(&n.info.name) {
                calltime::stop(n).await;
            }
        }
        self.set_call_time_nodes(on);
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Query every attached node for `interest`; returns true when the snapshot changed.
    /// With `call_counts`, this Orrery counts the calls of exactly the modules of
    /// `interest` (else of none) on every node: the node keeps the counts across the
    /// loads Orrery makes (`orrery_counts_v1`).
    pub async fn refresh(&self, session: &Session, interest: &Interest, call_counts: bool) -> bool {
        // Count processes per module at most every few seconds, or when what we watch
        // changed; in between keep the last counts.
        let count = {
            let mut last = self.last_count.lock().unwrap_or_else(|e| e.into_inner());
            let prev = self.snapshot();
            let new_modules = interest
                .modules
                .iter()
                .any(|m| !prev.modules.contains_key(m));
            let due = last.is_none_or(|t| t.elapsed() >= PROC_COUNT_EVERY) || new_modules;
            if due {
                *last = Some(std::time::Instant::now());
            }
            due
        };
        let owner = session.owner().id.clone();
        let counts = Counts::Own(owner, call_counts);
        let prev_channels = self.snapshot().phoenix.channels;
        let mut snap = Self::fetch_with(session, interest, counts, count, &prev_channels).await;
        if !count {
            let prev = self.snapshot();
            // Run-time name lookups walk every process too: keep the last ones.
            for (m, regs) in &prev.registries {
                let kept = regs.iter().filter(|r| r.runtime).cloned();
                snap.registries.entry(m.clone()).or_default().extend(kept);
            }
            for (m, infos) in snap.modules.iter_mut() {
                for i in infos.iter_mut() {
                    i.procs = prev
                        .modules
                        .get(m)
                        .and_then(|v| v.iter().find(|p| p.node == i.node))
                        .map(|p| p.procs)
                        .unwrap_or(0);
                }
            }
        }
        self.sync_call_time(session, interest, &mut snap).await;
        let mut cur = match self.snapshot.lock() {
            Ok(c) => c,
            Err(e) => e.into_inner(),
        };
        let changed = cur.visible() != snap.visible();
        *cur = snap;
        changed
    }

    /// One batched query per node for `interest`, without touching the cached snapshot
    /// (with `call_counts`, the counts of the modules someone counts; nothing switched).
    pub async fn fetch(session: &Session, interest: &Interest, call_counts: bool) -> Snapshot {
        let counts = if call_counts {
            Counts::Read
        } else {
            Counts::None
        };
        Self::fetch_with(session, interest, counts, true, &BTreeMap::new()).await
    }

    async fn fetch_with(
        session: &Session,
        interest: &Interest,
        counts: Counts,
        count_procs: bool,
        channels: &BTreeMap<String, Vec<Term>>,
    ) -> Snapshot {
        let mods: Vec<Term> = interest.modules.iter().map(|m| term::module(m)).collect();
        let tabs: Vec<Term> = interest
            .tables
            .iter()
            .map(|t| atom(t.trim_start_matches(':')))
            .collect();
        let calls = match counts {
            Counts::None => ("calls", list(vec![])),
            Counts::Read => ("calls", list(mods.clone())),
            Counts::Own(owner, on) => (
                "counts",
                term::tuple(vec![
                    term::binary(&owner),
                    list(if on { mods.clone() } else { vec![] }),
                ]),
            ),
        };
        let req = map(vec![
            ("modules", list(mods.clone())),
            ("names", list(mods.clone())),
            ("ets", list(tabs)),
            calls,
            ("named", named::query(&interest.names, count_procs)),
            ("limits", limits_with_count(count_procs)),
        ]);
        let mut snap = Snapshot::default();
        for n in session.nodes() {
            let node = n.info.name.clone();
            let reply = match agent::call(&n.conn, "query", vec![req.clone()], QUERY_TIMEOUT).await
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!("live query on {node} failed: {e}");
                    continue;
                }
            };
            merge_node(&mut snap, &node, &reply);
            named::merge(
                &mut snap,
                &node,
                &interest.names,
                count_procs,
                term::get(&reply, "named"),
            );
            let known = channels.get(&node);
            phoenix::fetch_node(&n, &mods, count_procs, known, &mut snap.phoenix).await;
        }
        snap
    }

    /// Switch off every call counter this Orrery counts with (before detach).
    pub async fn stop_tracing(&self, session: &Session) {
        let owner = term::binary(&session.owner().id);
        for n in session.nodes() {
            let r = n
                .conn
                .rpc(
                    agent::COUNTS_MODULE,
                    "release",
                    vec![owner.clone()],
                    QUERY_TIMEOUT,
                )
                .await;
            if let Err(e) = r {
                tracing::debug!("call counting off on {}: {e}", n.info.name);
            }
        }
        let on = self.call_time_nodes();
        for n in session.nodes().iter().filter(|n| on.contains(&n.info.name)) {
            calltime::stop(n).await;
        }
        self.set_call_time_nodes(BTreeSet::new());
    }

    /// Forget everything (after a detach).
    pub fn clear(&self) {
        if let Ok(mut s) = self.snapshot.lock() {
            *s = Snapshot::default();
        }
        self.set_call_time_nodes(BTreeSet::new());
    }
}

/// What a query asks about call counts.
enum Counts {
    /// Nothing.
    None,
    /// The counts of the modules asked about that someone counts.
    Read,
    /// Owner (a guard owner id) counts exactly the modules asked about (`true`) or none.
    Own(String, bool),
}

fn merge_node(snap: &mut Snapshot, node: &str, reply: &Term) {
    if let Some(Term::Map(mods)) = term::get(reply, "modules") {
        for (k, v) in &mods.map {
            let Some(name) = term::as_atom(k) else {
                continue;
            };
            let name = pretty::module_name(name);
            let info = ModuleOnNode {
                node: node.to_string(),
                loaded: term::get(v, "loaded").is_some_and(|l| term::is_atom(l, "true")),
                md5: term::get(v, "md5").and_then(md5_hex),
                stale: term::get(v, "stale").and_then(|s| match term::as_atom(s) {
                    Some("true") => Some(true),
                    Some("false") => Some(false),
                    _ => None,
                }),
                procs: term::get_int(v, "procs").unwrap_or(0),
            };
            snap.modules.entry(name).or_default().push(info);
        }
    }
    if let Some(Term::Map(names)) = term::get(reply, "names") {
        for (k, v) in &names.map {
            let Some(name) = term::as_atom(k) else {
                continue;
            };
            if term::is_atom(v, "nil") {
                continue;
            }
            snap.procs
                .entry(pretty::module_name(name))
                .or_default()
                .push(proc_on_node(node, v));
        }
    }
    if let Some(Term::Map(tabs)) = term::get(reply, "ets") {
        for (k, v) in &tabs.map {
            let Some(name) = term::as_atom(k) else {
                continue;
            };
            if term::is_atom(v, "nil") {
                continue;
            }
            snap.tables
                .entry(format!(":{name}"))
                .or_default()
                .push(TableOnNode {
                    node: node.to_string(),
                    kind: term::get(v, "type")
                        .and_then(term::as_atom)
                        .unwrap_or("?")
                        .to_string(),
                    size: term::get_int(v, "size").unwrap_or(0),
                    memory: term::get_int(v, "memory").unwrap_or(0),
                    owner: term::get(v, "owner").map(pid_text).unwrap_or_default(),
                    rows: term::get(v, "rows")
                        .map(|r| pretty::to_elixir(r, &pretty::Limits::hover()))
                        .unwrap_or_default(),
                });
        }
    }
    let calls = term::get(reply, "calls").or_else(|| term::get(reply, "counts"));
    if let Some(Term::Map(calls)) = calls {
        for (k, v) in &calls.map {
            let Some(name) = term::as_atom(k) else {
                continue;
            };
            let Some(Term::Map(funs)) = term::get(v, "counts") else {
                continue;
            };
            let module = pretty::module_name(name);
            if let Some(since) = term::get_int(v, "since") {
                snap.calls_since
                    .entry(module.clone())
                    .or_default()
                    .push((node.to_string(), since));
            }
            let entry = snap.calls.entry(module).or_default();
            for (fa, n) in &funs.map {
                if let Some([f, a]) = term::as_tuple(fa) {
                    let fname = term::as_atom(f).unwrap_or("-");
                    // Generated functions are noise in the editor.
                    if fname.starts_with('-') || fname == "module_info" || fname == "__info__" {
                        continue;
                    }
                    let key = format!(
                        "{}/{}",
                        term::as_atom(f).unwrap_or("?"),
                        term::as_int(a).unwrap_or(0)
                    );
                    entry
                        .entry(key)
                        .or_default()
                        .push((node.to_string(), term::as_int(n).unwrap_or(0)));
                }
            }
        }
    }
}

/// A process as the agent's `pid_info` describes it.
pub(crate) fn proc_on_node(node: &str, v: &Term) -> ProcOnNode {
    let state_term = term::get(v, "state");
    let state = match state_term.and_then(agent::ok_value) {
        Some(s) => Ok(pretty::to_elixir(s, &pretty::Limits::hover())),
        None => Err("state not available (not an OTP process, or busy)".to_string()),
    };
    let state_compact = state_term
        .and_then(agent::ok_value)
        .map(|s| pretty::to_elixir_compact(s, 30))
        .unwrap_or_default();
    ProcOnNode {
        node: node.to_string(),
        label: None,
        pid: term::get(v, "pid").map(pid_text).unwrap_or_default(),
        state,
        state_compact,
        queue: term::get_int(v, "message_queue_len").unwrap_or(0),
        memory: term::get_int(v, "memory").unwrap_or(0),
        reductions: term::get_int(v, "reductions").unwrap_or(0),
        runs: term::get(v, "runs")
            .and_then(term::as_atom)
            .map(pretty::module_name),
    }
}
