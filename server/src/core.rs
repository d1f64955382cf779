//! One workspace's pieces, owned together and free of protocol types: settings, the
//! session (attached nodes), the managed node of the embedded default, documents, the
//! index and the live model. The LSP layer maps requests onto this.

use crate::attach::{self, Session, Status};
use crate::config::Settings;
use crate::live::{Interest, LiveModel};
use crate::managed::{self, ManagedNode};
use crate::reload::compile_node::{Compiled, Diagnostic, Severity};
use crate::reload::{Reloader, SaveOutcome};
use crate::workspace::documents::{Document, Pos};
use crate::workspace::index::{self, WorkspaceIndex};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::mpsc;

/// How the session was set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Mode {
    /// Attached to a node the user named.
    Attach,
    /// Orrery started the workspace's app itself.
    Managed,
    /// Nothing to attach to (no node configured and no mix project).
    None,
}

/// The workspace core.
pub struct Core {
    pub root: RwLock<Option<PathBuf>>,
    pub settings: RwLock<Settings>,
    pub docs: RwLock<HashMap<PathBuf, Document>>,
    pub index: RwLock<WorkspaceIndex>,
    pub live: LiveModel,
    pub reloader: Reloader,
    session: RwLock<Option<Session>>,
    managed: tokio::sync::Mutex<Option<ManagedNode>>,
    mode: Mutex<Mode>,
    last_error: Mutex<Option<String>>,
    /// Wakes the refresh loop (a document opened).
    pub refresh_now: tokio::sync::Notify,
    /// Functions whose calls are traced ("Module.fun/arity") and their last calls.
    pub traced: Mutex<std::collections::BTreeSet<String>>,
    pub last_calls: Mutex<crate::live::trace::LastCalls>,
    /// Debug sessions running on this session (relayed by `orrery dap`).
    pub debug_sessions: std::sync::atomic::AtomicUsize,
    /// Keeps the debug bridge's socket while the server runs (removed when dropped).
    pub bridge: Mutex<Option<Box<dyn std::any::Any + Send>>>,
}

impl Default for Core {
    fn default() -> Self {
        Self::new()
    }
}

impl Core {
    pub fn new() -> Self {
        Self {
            root: RwLock::new(None),
            settings: RwLock::new(Settings::default()),
            docs: RwLock::new(HashMap::new()),
            index: RwLock::new(WorkspaceIndex::new()),
            live: LiveModel::new(),
            reloader: Reloader::new(),
            session: RwLock::new(None),
            managed: tokio::sync::Mutex::new(None),
            mode: Mutex::new(Mode::None),
            last_error: Mutex::new(None),
            refresh_now: tokio::sync::Notify::new(),
            traced: Mutex::new(Default::default()),
            last_calls: Mutex::new(Default::default()),
            debug_sessions: Default::default(),
            bridge: Mutex::new(None),
        }
    }

    pub fn settings(&self) -> Settings {
        self.settings.read().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn session(&self) -> Option<Session> {
        self.session.read().ok().and_then(|s| s.clone())
    }

    pub fn mode(&self) -> Mode {
        self.mode.lock().map(|m| *m).unwrap_or(Mode::None)
    }

    fn set_error(&self, e: Option<String>) {
        if let Ok(mut l) = self.last_error.lock() {
            *l = e;
        }
    }

    /// Index every Elixir file under the root; returns the file count.
    pub fn index_workspace(&self) -> usize {
        let Some(root) = self.root.read().ok().and_then(|r| r.clone()) else {
            return 0;
        };
        let mut idx = WorkspaceIndex::new();
        let n = idx.index_dir(&root);
        // Open documents win over what is on disk.
        if let Ok(docs) = self.docs.read() {
            for (p, d) in docs.iter() {
                idx.update(p.clone(), &d.text());
            }
        }
        if let Ok(mut i) = self.index.write() {
            *i = idx;
        }
        n
    }

    /// Attach per the settings: to the configured node, or start the workspace's app.
    /// Output lines of a managed node go to `output`. Returns a description of the target.
    pub async fn attach(&self, output: mpsc::UnboundedSender<String>) -> Result<String, String> {
        let settings = self.settings();
        let attach_peers = settings.attach_peers.unwrap_or(true);
        let (node, cookie, mode) = match &settings.node {
            Some(node) => {
                crate::beam::split_node_name(node).map_err(|e| e.to_string())?;
                (node.clone(), settings.resolve_cookie()?, Mode::Attach)
            }
            None => {
                let root = self.root.read().ok().and_then(|r| r.clone());
                let Some(mix_root) = root.as_deref().and_then(managed::find_mix_root) else {
                    if let Ok(mut m) = self.mode.lock() {
                        *m = Mode::None;
                    }
                    return Err("no `node` configured and no mix.exs in the workspace: set `node` to attach to a running app".into());
                };
                let m = ManagedNode::start(&mix_root, output).await?;
                let pair = (m.node.clone(), m.cookie.clone(), Mode::Managed);
                *self.managed.lock().await = Some(m);
                pair
            }
        };
        if let Ok(mut m) = self.mode.lock() {
            *m = mode;
        }
        let session = Session::start(&node, &cookie, attach_peers);
        if let Ok(mut s) = self.session.write() {
            *s = Some(session.clone());
        }
        match session
            .wait_settled(std::time::Duration::from_secs(20))
            .await
        {
            Status::Attached => {
                self.set_error(None);
                Ok(node)
            }
            Status::Detached { reason } => {
                self.set_error(Some(reason.clone()));
                Err(reason)
            }
            Status::Attaching => Err(format!("still attaching to {node}")),
        }
    }

    /// Leave the nodes as found and stop a managed node.
    pub async fn shutdown(&self) {
        drop(self.bridge.lock().ok().and_then(|mut b| b.take()));
        let session = self.session.write().ok().and_then(|mut s| s.take());
        if let Some(s) = session {
            self.live.stop_tracing(&s).await;
            s.detach().await;
        }
        self.live.clear();
        self.reloader.shutdown().await;
        if let Some(mut m) = self.managed.lock().await.take() {
            m.stop().await;
        }
    }

    /// The `orrery/status` answer.
    pub async fn status_json(&self) -> serde_json::Value {
        let session = self.session();
        let (attached, state, nodes) = match &session {
            Some(s) => {
                let st = s.status();
                let nodes: Vec<_> = s
                    .nodes()
                    .iter()
                    .map(|n| attach::node_json(&n.info))
                    .collect();
                (
                    st == Status::Attached,
                    serde_json::to_value(&st).unwrap_or_default(),
                    nodes,
                )
            }
            None => (
                false,
                serde_json::json!({"state": "detached", "reason": self.last_error.lock().ok().and_then(|e| e.clone()).unwrap_or_else(|| "not started".into())}),
                vec![],
            ),
        };
        let reason = state.get("reason").cloned();
        let managed = self.managed.lock().await;
        serde_json::json!({
            "attached": attached,
            "status": state,
            "reason": reason,
            "node": session.as_ref().map(|s| s.node().to_string()),
            "nodes": nodes,
            "compileNode": serde_json::Value::Null,
            "mode": self.mode(),
            "managedPid": managed.as_ref().and_then(|m| m.pid()),
            "allowWrites": self.settings().allow_writes(),
            "debugSessions": self.debug_sessions.load(std::sync::atomic::Ordering::Relaxed),
        })
    }

    // ---- documents ----

    pub fn open(&self, path: PathBuf, text: &str, version: i32) {
        if let Ok(mut d) = self.docs.write() {
            d.insert(path.clone(), Document::new(text, version));
        }
        // Only Elixir sources are indexed: an Erlang file (`src/*.erl`) parsed as Elixir
        // would make up modules and references.
        if crate::workspace::index::is_elixir(&path) {
            if let Ok(mut i) = self.index.write() {
                i.update(path, text);
            }
        }
        self.refresh_now.notify_one();
    }

    pub fn change(&self, path: &Path, changes: Vec<(Option<(Pos, Pos)>, String)>, version: i32) {
        let text = {
            let Ok(mut docs) = self.docs.write() else {
                return;
            };
            let Some(doc) = docs.get_mut(path) else {
                return;
            };
            for (range, text) in changes {
                doc.apply(range, &text, version);
            }
            doc.text()
        };
        if !crate::workspace::index::is_elixir(path) {
            return;
        }
        if let Ok(mut i) = self.index.write() {
            i.update(path.to_path_buf(), &text);
        }
    }

    pub fn close(&self, path: &Path) {
        if let Ok(mut d) = self.docs.write() {
            d.remove(path);
        }
        // Re-read from disk so the index reflects the saved file.
        if !crate::workspace::index::is_elixir(path) {
            return;
        }
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Ok(mut i) = self.index.write() {
                i.update(path.to_path_buf(), &text);
            }
        }
    }

    pub fn text(&self, path: &Path) -> Option<String> {
        self.docs.read().ok()?.get(path).map(|d| d.text())
    }

    /// Modules and ETS tables of the open documents.
    pub fn interest(&self) -> Interest {
        let mut interest = Interest::default();
        let paths: Vec<PathBuf> = self
            .docs
            .read()
            .map(|d| d.keys().cloned().collect())
            .unwrap_or_default();
        if let Ok(idx) = self.index.read() {
            for p in paths {
                if let Some(f) = idx.file(&p) {
                    for m in &f.modules {
                        interest.modules.insert(m.name.clone());
                        if !m.names.is_empty() {
                            interest.names.insert(m.name.clone(), m.names.clone());
                        }
                        for (t, _) in &m.ets_tables {
                            interest
                                .tables
                                .insert(format!(":{}", t.trim_start_matches(':')));
                        }
                    }
                }
            }
        }
        interest
    }

    /// `(module, process names in its code)` from the index, for a module not open.
    pub fn names_of(&self, module: &str) -> Option<(String, Vec<index::NameDef>)> {
        let idx = self.index.read().ok()?;
        let (_, m) = idx.find_module(module)?;
        (!m.names.is_empty()).then(|| (m.name.clone(), m.names.clone()))
    }

    /// Refresh live values; true when something changed.
    pub async fn refresh_live(&self) -> bool {
        let Some(session) = self.session() else {
            return false;
        };
        if session.status() != Status::Attached {
            return false;
        }
        let interest = self.interest();
        let settings = self.settings();
        let calls = settings.inlay_hints().calls;
        self.live
            .set_call_time(settings.live_call_time.unwrap_or(false));
        let mut changed = self.live.refresh(&session, &interest, calls).await;
        if !self.traced.lock().map(|t| t.is_empty()).unwrap_or(true) {
            let last = crate::live::trace::fetch(&session).await;
            if let Ok(mut cur) = self.last_calls.lock() {
                changed |= *cur != last;
                *cur = last;
            }
        }
        changed
    }

    /// Switch call tracing of `Module.fun/arity` on or off; returns whether it is now on.
    pub async fn toggle_trace(&self, mfa: &str) -> Result<bool, String> {
        let (m, f, a) = crate::live::trace::parse_mfa(mfa)
            .ok_or_else(|| format!("{mfa} is not Module.fun/arity"))?;
        let session = self
            .session()
            .filter(|s| s.status() == Status::Attached)
            .ok_or("not attached to a node")?;
        let on = !self.traced.lock().map(|t| t.contains(mfa)).unwrap_or(false);
        crate::live::trace::set(&session, &m, &f, a, on).await?;
        if let Ok(mut t) = self.traced.lock() {
            if on {
                t.insert(mfa.to_string());
            } else {
                t.remove(mfa);
            }
        }
        self.refresh_now.notify_one();
        Ok(on)
    }

    /// The mix project root of the workspace.
    pub fn mix_root(&self) -> Option<PathBuf> {
        let root = self.root.read().ok().and_then(|r| r.clone())?;
        managed::find_mix_root(&root)
    }

    /// A file was saved (or changed on disk): compile it in isolation and hot-swap the
    /// result into every attached node.
    pub async fn save(&self, path: &Path) -> SaveOutcome {
        let settings = self.settings();
        let not_loaded = |reason: String| SaveOutcome::NotLoaded {
            reason,
            warnings: vec![],
        };
        let Some(root) = self.mix_root() else {
            return not_loaded("not in a mix project: nothing to compile".into());
        };
        // A file that defines the same module twice is refused before compiling.
        let names: Vec<String> = self
            .index
            .read()
            .ok()
            .and_then(|i| {
                i.file(path)
                    .map(|f| f.modules.iter().map(|m| m.name.clone()).collect())
            })
            .unwrap_or_default();
        if let Some(dup) = names
            .iter()
            .find(|n| names.iter().filter(|m| m == n).count() > 1)
        {
            return not_loaded(format!(
                "{} defines {dup} twice: fix that before it can be swapped",
                path.display()
            ));
        }
        // Users of its macros and structs are recompiled against the new code too.
        let dependents = match self.index.read() {
            Ok(idx) => crate::reload::dependents::stages(&idx, &root, path, |p| self.text(p)),
            Err(_) => vec![],
        };
        let compiled = match self
            .reloader
            .compile_with(&root, path, &dependents, settings.compile_timeout())
            .await
        {
            Ok(c) => c,
            Err(e) => return not_loaded(format!("could not compile {}: {e}", path.display())),
        };
        let (modules, warnings, stale) = match compiled {
            Compiled::TimedOut => {
                let secs = settings.compile_timeout().as_secs_f64();
                return SaveOutcome::CompileFailed {
                    errors: vec![Diagnostic {
                        file: path.to_path_buf(),
                        line: 1,
                        column: 0,
                        severity: Severity::Error,
                        message: format!(
                            "compiling took longer than {secs} s (a macro that never finishes?); it was stopped and nothing was loaded"
                        ),
                    }],
                    warnings: vec![],
                };
            }
            Compiled::Failed { errors, warnings } => {
                return SaveOutcome::CompileFailed { errors, warnings }
            }
            Compiled::Ok {
                modules,
                warnings,
                stale,
            } => (modules, warnings, stale),
        };
        let mut modules = modules;
        let mut stale: Vec<String> = match self.index.read() {
            Ok(idx) => stale
                .iter()
                .map(|(file, why)| {
                    let mods = crate::reload::dependents::modules_of(&idx, file);
                    let rel = file
                        .strip_prefix(&root)
                        .unwrap_or(file)
                        .display()
                        .to_string();
                    format!(
                        "{} ({rel} does not compile against it: {why})",
                        mods.join(", ")
                    )
                })
                .collect(),
            Err(_) => vec![],
        };
        let with_warnings = |reason: String| SaveOutcome::NotLoaded {
            reason,
            warnings: warnings.clone(),
        };
        if modules.is_empty() {
            return with_warnings(format!(
                "{} defines no module: nothing to load",
                path.display()
            ));
        }
        if !settings.allow_writes() {
            return with_warnings(
                "compiled cleanly, not loaded: `allowWrites` is false for this node".into(),
            );
        }
        let Some(session) = self.session().filter(|s| s.status() == Status::Attached) else {
            return with_warnings("compiled cleanly, not loaded: not attached to a node".into());
        };
        // Modules with breakpoints armed by a debug session are recompiled *with* their
        // probes, so the breakpoints survive the save.
        if self.has_breakpoints(&session, &modules).await {
            match self
                .reloader
                .instrument(&root, path, settings.compile_timeout())
                .await
            {
                Ok(inst) => {
                    for (m, b) in inst.modules {
                        if let Some(slot) = modules.iter_mut().find(|(n, _)| *n == m) {
                            slot.1 = b;
                        }
                    }
                }
                Err(e) => {
                    return with_warnings(format!(
                        "could not keep the breakpoints of {}: {e}",
                        path.display()
                    ))
                }
            }
        }
        let mut safe = vec![];
        for (m, bin) in std::mem::take(&mut modules) {
            if let Some(why) = self.reloader.unsafe_reason(&bin).await {
                let name = crate::beam::pretty::module_name(&m);
                if !names.contains(&name) {
                    // A dependent: swap the rest, say it is stale.
                    stale.push(format!("{name} (not swapped: {why})"));
                    continue;
                }
                return with_warnings(format!(
                    "{name} was not swapped: {why}; restart the node to load it"
                ));
            }
            safe.push((m, bin));
        }
        let modules = safe;
        match self
            .reloader
            .swap(&session, Some(&root), modules, "hot_swap")
            .await
        {
            Ok(mut report) => {
                report.warnings = warnings;
                report.stale = stale;
                SaveOutcome::Swapped(report)
            }
            Err(reason) => with_warnings(reason),
        }
    }

    /// Whether any of `modules` has breakpoints armed on the node (by any Orrery).
    async fn has_breakpoints(
        &self,
        session: &crate::attach::Session,
        modules: &[(String, Vec<u8>)],
    ) -> bool {
        use crate::beam::term::{atom, is_atom, tuple};
        let Ok(conn) = session.primary() else {
            return false;
        };
        for (m, _) in modules {
            let key = tuple(vec![atom("orrery_dbg_v1"), atom(m)]);
            let r = conn
                .rpc(
                    "persistent_term",
                    "get",
                    vec![key, atom("undefined")],
                    std::time::Duration::from_secs(5),
                )
                .await;
            if r.is_ok_and(|t| !is_atom(&t, "undefined")) {
                return true;
            }
        }
        false
    }

    /// Roll a module (as written in source, `KV.Bucket`) back to its previous version.
    pub async fn rollback(&self, module: &str) -> Result<crate::reload::SwapReport, String> {
        if !self.settings().allow_writes() {
            return Err("rollback refused: `allowWrites` is false for this node".into());
        }
        let session = self
            .session()
            .filter(|s| s.status() == Status::Attached)
            .ok_or("not attached to a node")?;
        let root = self.mix_root();
        self.reloader
            .rollback(
                &session,
                root.as_deref(),
                &crate::beam::term::module_atom(module),
            )
            .await
    }

    /// What is under the cursor.
    pub fn reference_at(&self, path: &Path, pos: index::Position) -> Option<index::Reference> {
        let text = self.text(path)?;
        index::reference_at(&text, pos)
    }
}

/// Convert a file path into an absolute path for use as a key.
pub fn normalize(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Shared handle.
pub type SharedCore = Arc<Core>;
