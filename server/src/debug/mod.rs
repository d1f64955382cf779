//! The debugger core, protocol-free: breakpoints through instrumented recompilation (probes
//! compiled in on the compile node and hot-swapped in), one paused process at a time per
//! hit, stepping, inspection, and a clean detach that loads the pristine binaries back.

mod breakpoints;
pub use breakpoints::{BreakpointReq, BreakpointResult, ERLANG_REFUSED};
mod events;
pub mod history;
mod lines;
mod reloads;
pub mod replay;
mod session;
mod threads;
mod travel;
pub use threads::ANY_THREAD;
mod eval;
pub mod vars;

use crate::agent::DBG_MODULE;
use crate::attach::Session;
use crate::beam::pretty;
use crate::beam::term::{self, atom};
use crate::beam::Connection;
use crate::managed::ManagedNode;
use crate::reload::Reloader;
use crate::workspace::index::WorkspaceIndex;
use eetf::Term;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use vars::VarStore;

pub(crate) const T: Duration = Duration::from_secs(15);

/// One stack frame.
#[derive(Debug, Clone)]
pub struct Frame {
    pub id: i64,
    pub name: String,
    pub path: Option<PathBuf>,
    pub line: u32,
}

/// A paused process: a stopped thread.
#[derive(Debug, Clone)]
pub struct Paused {
    pub thread_id: i64,
    pub node: String,
    pub pid: Term,
    pub name: String,
    /// The registered name (atom), if the process has one.
    pub registered: Option<String>,
    pub module: String,
    pub line: u32,
    pub function: String,
    pub bindings: Vec<(String, Term)>,
    pub stack: Vec<Frame>,
    /// Recorded events of this process (oldest first), loaded on the first step back.
    pub history: Vec<Recorded>,
    /// Where in `history` the user is looking; `None` is the live point.
    pub cursor: Option<usize>,
    /// Recorded returns of this process (oldest first), loaded with `history`.
    pub returns: Vec<Recorded>,
}

impl Paused {
    /// Calls that returned between the previous recorded line and the one at the cursor
    /// (what the line before produced): (function, result).
    pub fn returned_here(&self) -> Vec<(String, Term)> {
        let Some(c) = self.cursor else {
            return vec![];
        };
        let Some(here) = self.history.get(c) else {
            return vec![];
        };
        let after = if c > 0 { self.history[c - 1].seq } else { 0 };
        self.returns
            .iter()
            .filter(|r| r.seq > after && r.seq < here.seq)
            .filter_map(|r| {
                Some((
                    format!("{}.{}", pretty::module_name(&r.module), r.function),
                    r.result.clone()?,
                ))
            })
            .collect()
    }
}

/// One recorded probe event.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub seq: i64,
    pub time_us: i64,
    pub module: String,
    pub line: u32,
    pub function: String,
    pub depth: i64,
    pub bindings: Vec<(String, Term)>,
    /// For a return event: the value the function returned (line events: `None`).
    pub result: Option<Term>,
}

impl Recorded {
    /// A line event (a position one can step to), not a return.
    pub fn is_line(&self) -> bool {
        self.result.is_none()
    }
}

/// The instrumenter binds a GenServer callback's state to this name too (see
/// `orrery_instrument.ex`): read by the state history, never shown as a variable.
pub(crate) const STATE_BINDING: &str = "orrery_state__";

/// A name the instrumenter binds (`orrery_state__`, `orrery_arg1__`..): Orrery's, not the
/// user's.
pub(crate) fn is_orrery_binding(name: &str) -> bool {
    name.starts_with("orrery_") && name.ends_with("__")
}

/// Bindings as the user wrote them (Orrery's own left out).
pub(crate) fn bindings_of(t: Option<&Term>) -> Vec<(String, Term)> {
    t.map(term::list_ref)
        .unwrap_or(&[])
        .iter()
        .filter_map(|b| match term::as_tuple(b) {
            Some([k, v]) => Some((term::as_atom(k)?.to_string(), v.clone())),
            _ => None,
        })
        .filter(|(k, _)| !is_orrery_binding(k))
        .collect()
}

fn function_of(t: Option<&Term>) -> String {
    match t.and_then(term::as_tuple) {
        Some([f, a]) => format!(
            "{}/{}",
            term::as_atom(f).unwrap_or("?"),
            term::as_int(a).unwrap_or(0)
        ),
        _ => "?".into(),
    }
}

/// Decode an event map from `orrery_dbg_v1:history/2` or `timeline/1`.
pub fn recorded(e: &Term) -> Recorded {
    Recorded {
        seq: term::get_int(e, "seq").unwrap_or(0),
        time_us: term::get_int(e, "time").unwrap_or(0),
        module: term::get(e, "module")
            .and_then(term::as_atom)
            .unwrap_or("?")
            .to_string(),
        line: term::get_int(e, "line").unwrap_or(0) as u32,
        function: function_of(term::get(e, "function")),
        depth: term::get_int(e, "depth").unwrap_or(0),
        bindings: bindings_of(term::get(e, "bindings")),
        result: term::get(e, "kind")
            .filter(|k| term::is_atom(k, "return"))
            .map(|_| term::get(e, "result").cloned().unwrap_or(atom("nil"))),
    }
}

/// Something the client should hear about.
#[derive(Debug, Clone)]
pub enum Event {
    Stopped {
        thread_id: i64,
        reason: &'static str,
    },
    Output(String),
    ThreadExited(i64),
    Terminated(String),
}

pub(crate) struct State {
    paused: BTreeMap<i64, Paused>,
    next_thread: i64,
    thread_of: HashMap<String, i64>,
    /// module (atom) -> probe lines
    probe_lines: HashMap<String, Vec<u32>>,
    /// file -> (content hash, modules (atoms) it defines), instrumented
    instrumented: HashMap<PathBuf, (u64, Vec<String>)>,
    /// module (atom) -> lines with a breakpoint
    bp_lines: HashMap<String, Vec<u32>>,
    /// module (atom) -> (line, spec) from setBreakpoints
    line_bps: HashMap<String, Vec<(u32, Term)>>,
    /// module (atom) -> (line, spec) from setFunctionBreakpoints
    fn_bps: HashMap<String, Vec<(u32, Term)>>,
    recording: bool,
    /// The recording's event limit, for a node that comes back.
    record_limit: i64,
    vars: VarStore,
    paths: HashMap<String, PathBuf>,
    /// Running processes listed as threads: thread id -> (node, pid).
    running: HashMap<i64, (String, Term)>,
}

/// A debug session on a node (and its peers).
pub struct Debugger {
    pub root: PathBuf,
    pub session: Session,
    /// The code store: the language server's when the session runs inside it.
    reloader: Arc<Reloader>,
    managed: tokio::sync::Mutex<Option<ManagedNode>>,
    index: Mutex<WorkspaceIndex>,
    state: Arc<Mutex<State>>,
    /// False when the session belongs to the language server (see `dap::bridge`).
    owns_session: bool,
    /// May this session change the node (probes are a hot swap; evaluate runs code)?
    allow_writes: std::sync::atomic::AtomicBool,
    /// Tasks receiving the node's debugger events, stopped at disconnect.
    listeners: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    events: mpsc::UnboundedSender<Event>,
    /// A node Orrery started that goes away ends the session (the program ended); an
    /// attached node that goes away is waited for, and re-armed when it is back.
    terminate_on_loss: bool,
}

fn lock_listeners(
    l: &Mutex<Vec<tokio::task::JoinHandle<()>>>,
) -> std::sync::MutexGuard<'_, Vec<tokio::task::JoinHandle<()>>> {
    l.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn pid_key(node: &str, pid: &Term) -> String {
    format!("{node}/{}", pretty::to_elixir_compact(pid, 80))
}

impl State {
    /// The thread id of a process (stable for the session).
    pub(crate) fn thread_id(&mut self, key: String) -> i64 {
        if let Some(t) = self.thread_of.get(&key) {
            return *t;
        }
        let t = self.next_thread;
        self.next_thread += 1;
        self.thread_of.insert(key, t);
        t
    }
}

/// Why a read-only session (`allowWrites: false`) refuses what would change the node.
pub(crate) const READ_ONLY: &str = "`allowWrites` is false for this node (the default for nodes on other hosts); set `\"allowWrites\": true` in the launch configuration or .orrery.toml to allow it";
pub(crate) const READ_ONLY_BREAKPOINTS: &str = "breakpoints load instrumented code into the node, and `allowWrites` is false for it (the default for nodes on other hosts); set `\"allowWrites\": true` in the launch configuration or .orrery.toml to allow them";
/// Evaluate runs at most this long, in at most this much heap (words), then is killed.
pub(crate) const EVAL_TIMEOUT: Duration = Duration::from_secs(10);
pub(crate) const EVAL_MAX_HEAP_WORDS: i64 = 16 * 1024 * 1024;

pub(crate) fn lock(s: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

impl Debugger {
    /// Attach to `node` (or, with `managed`, to the app Orrery started) and arm the debugger
    /// runtime on every node. Events go to `events`.
    pub async fn attach(
        root: &Path,
        node: &str,
        cookie: &str,
        managed: Option<ManagedNode>,
        events: mpsc::UnboundedSender<Event>,
    ) -> Result<Arc<Debugger>, String> {
        let session = Session::start(node, cookie, true);
        // The first attempt's answer (no such node, cookie rejected) is the answer: no
        // waiting out a retry loop.
        if let crate::attach::Status::Detached { reason } =
            session.wait_settled(Duration::from_secs(30)).await
        {
            session.detach().await;
            return Err(reason);
        }
        session.wait_attached(Duration::from_secs(30)).await?;
        Self::setup(root, session, None, managed, events).await
    }

    /// Debug on a session someone else owns (the language server's), with its code store
    /// (compile node and versions): one source of truth for what the node runs.
    /// Disconnecting leaves the session attached.
    pub async fn on_session(
        root: &Path,
        session: Session,
        reloader: Arc<Reloader>,
        events: mpsc::UnboundedSender<Event>,
    ) -> Result<Arc<Debugger>, String> {
        session.wait_attached(Duration::from_secs(30)).await?;
        Self::setup(root, session, Some(reloader), None, events).await
    }

    /// With `shared` (the language server's code store) the session is not this
    /// debugger's own.
    async fn setup(
        root: &Path,
        session: Session,
        shared: Option<Arc<Reloader>>,
        managed: Option<ManagedNode>,
        events: mpsc::UnboundedSender<Event>,
    ) -> Result<Arc<Debugger>, String> {
        let owns_session = shared.is_none();
        let reloader = shared.unwrap_or_default();
        let terminate_on_loss = managed.is_some();
        let mut index = WorkspaceIndex::new();
        index.index_dir(root);
        let state = Arc::new(Mutex::new(State {
            paused: BTreeMap::new(),
            next_thread: 1,
            thread_of: HashMap::new(),
            probe_lines: HashMap::new(),
            instrumented: HashMap::new(),
            bp_lines: HashMap::new(),
            line_bps: HashMap::new(),
            fn_bps: HashMap::new(),
            recording: false,
            record_limit: 10_000,
            vars: VarStore::default(),
            running: HashMap::new(),
            paths: HashMap::new(),
        }));
        let dbg = Arc::new(Debugger {
            root: root.to_path_buf(),
            session,
            reloader,
            managed: tokio::sync::Mutex::new(managed),
            index: Mutex::new(index),
            state,
            owns_session,
            allow_writes: std::sync::atomic::AtomicBool::new(true),
            listeners: Mutex::new(vec![]),
            events,
            terminate_on_loss,
        });
        lock(&dbg.state).paths = dbg.module_paths();
        for n in dbg.session.nodes() {
            dbg.arm_node(&n).await?;
        }
        dbg.watch_reattach();
        dbg.watch_reloads();
        Ok(dbg)
    }

    fn module_paths(&self) -> HashMap<String, PathBuf> {
        let idx = self.index.lock().unwrap_or_else(|e| e.into_inner());
        idx.modules()
            .map(|(p, m)| (term::module_atom(&m.name), p.to_path_buf()))
            .collect()
    }

    /// Whether this session may change the node (`allowWrites`).
    pub fn writes_allowed(&self) -> bool {
        self.allow_writes.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Set `allowWrites` for this session (a read-only session never instruments code,
    /// records, or evaluates more than the frame's variables).
    pub fn set_writes_allowed(&self, allowed: bool) {
        self.allow_writes
            .store(allowed, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn threads(&self) -> Vec<(i64, String)> {
        lock(&self.state)
            .paused
            .values()
            .map(|p| {
                (
                    p.thread_id,
                    format!(
                        "{} {} @ {}",
                        p.name,
                        pretty::to_elixir_compact(&p.pid, 40),
                        p.node
                    ),
                )
            })
            .collect()
    }

    pub fn paused(&self, thread_id: i64) -> Option<Paused> {
        lock(&self.state).paused.get(&thread_id).cloned()
    }

    fn conn_of(&self, node: &str) -> Option<Connection> {
        self.session
            .nodes()
            .into_iter()
            .find(|n| n.info.name == node)
            .map(|n| n.conn)
    }

    /// Resume a paused process with `continue`, `next`, `step_in` or `step_out`; `Ok(true)`
    /// when it really runs again, `Ok(false)` when the step moved through the recording.
    pub async fn resume(&self, thread_id: i64, cmd: &str) -> Result<bool, String> {
        if self.forward_in_past(thread_id, cmd)? {
            return Ok(false);
        }
        if cmd == "step_in" {
            self.instrument_callees(thread_id).await;
        }
        let p = lock(&self.state)
            .paused
            .remove(&thread_id)
            .ok_or_else(|| format!("thread {thread_id} is not paused"))?;
        lock(&self.state).vars.clear();
        let conn = self
            .conn_of(&p.node)
            .ok_or_else(|| format!("node {} is gone", p.node))?;
        conn.rpc(DBG_MODULE, "resume", vec![p.pid.clone(), atom(cmd)], T)
            .await
            .map_err(|e| e.to_string())?;
        Ok(true)
    }

    /// Before a step in: instrument the workspace modules called on the current line that
    /// are not instrumented yet, so the step can land in them.
    async fn instrument_callees(&self, thread_id: i64) {
        let Some(p) = self.paused(thread_id) else {
            return;
        };
        let Some(path) = lock(&self.state).paths.get(&p.module).cloned() else {
            return;
        };
        let Ok(src) = std::fs::read_to_string(&path) else {
            return;
        };
        let Some(line) = src.lines().nth(p.line.saturating_sub(1) as usize) else {
            return;
        };
        let mut modules = vec![];
        for (col, _) in line.match_indices('(') {
            // The call name ends just before `(`.
            let utf16 = line[..col].encode_utf16().count() as u32;
            let pos = crate::workspace::index::Position {
                line: p.line.saturating_sub(1),
                character: utf16.saturating_sub(1),
            };
            if let Some(crate::workspace::index::Reference::RemoteCall { module, .. }) =
                crate::workspace::index::reference_at(&src, pos)
            {
                modules.push(module);
            }
        }
        for m in modules {
            let atom_name = term::module_atom(&m);
            if lock(&self.state).probe_lines.contains_key(&atom_name) {
                continue;
            }
            let Some(file) = self.function_file(&m) else {
                continue;
            };
            match self.ensure_instrumented(&file).await {
                Ok(mods) => {
                    for md in mods {
                        let _ = self.arm(&md).await;
                    }
                }
                Err(e) => tracing::info!("not stepping into {m}: {e}"),
            }
        }
    }

    fn function_file(&self, module: &str) -> Option<PathBuf> {
        let idx = self.index.lock().unwrap_or_else(|e| e.into_inner());
        idx.find_module(module).map(|(p, _)| p)
    }

    /// Resume every paused process.
    pub async fn resume_all(&self) {
        let ids: Vec<i64> = lock(&self.state).paused.keys().copied().collect();
        for id in ids {
            let _ = self.resume(id, "continue").await;
        }
    }

    pub fn stack(&self, thread_id: i64) -> Vec<Frame> {
        let st = lock(&self.state);
        let Some(p) = st.paused.get(&thread_id) else {
            return vec![];
        };
        match p.cursor {
            None => p.stack.clone(),
            Some(i) => {
                let e = &p.history[i];
                vec![Frame {
                    id: thread_id * 1000,
                    name: format!(
                        "{}.{} (recorded #{}, read-only)",
                        pretty::module_name(&e.module),
                        e.function,
                        e.seq
                    ),
                    path: st.paths.get(&e.module).cloned(),
                    line: e.line,
                }]
            }
        }
    }

    /// The bindings at the point the thread is looking at.
    fn current_bindings(p: &Paused) -> Vec<(String, Term)> {
        match p.cursor {
            None => p.bindings.clone(),
            Some(i) => p.history[i].bindings.clone(),
        }
    }

    /// Scopes of a frame: (name, variablesReference, expensive).
    pub fn scopes(&self, frame_id: i64) -> Vec<(String, i64)> {
        let thread = frame_id / 1000;
        let mut st = lock(&self.state);
        let Some(p) = st.paused.get(&thread).cloned() else {
            return vec![];
        };
        let mut out = vec![];
        if frame_id % 1000 == 0 {
            let r = st.vars.add_named(Self::current_bindings(&p));
            out.push(("Locals".to_string(), r));
            let returned = p.returned_here();
            if !returned.is_empty() {
                let r = st.vars.add_named(returned);
                out.push(("Returned".to_string(), r));
            }
        }
        let info = vec![
            ("pid".to_string(), p.pid.clone()),
            ("node".to_string(), atom(&p.node)),
            (
                "registered_name".to_string(),
                atom(p.registered.as_deref().unwrap_or("nil")),
            ),
            ("module".to_string(), atom(&p.module)),
        ];
        let r = st.vars.add_named(info);
        out.push(("Process".to_string(), r));
        out
    }

    /// Children of a variables reference, paged.
    pub fn variables(&self, reference: i64, start: usize, count: Option<usize>) -> Vec<vars::Var> {
        lock(&self.state).vars.children(reference, start, count)
    }

    /// Let a gated launch run its task (see [`crate::managed::Launch::gated`]): breakpoints
    /// set so far are armed.
    pub async fn release_gate(&self) -> Result<(), String> {
        let Some(n) = self.session.nodes().into_iter().next() else {
            return Err("the launched node is gone".into());
        };
        n.conn
            .rpc(
                "erlang",
                "send",
                vec![atom(crate::managed::GATE), atom(crate::managed::GATE_OPEN)],
                T,
            )
            .await
            .map(|_| ())
            .map_err(|e| format!("could not start the launched task: {e}"))
    }
}
