//! One workspace's pieces, owned together and free of protocol types: settings, the
//! session (attached nodes), the managed node of the embedded default, documents, the
//! index and the live model. The LSP layer maps requests onto this.

use crate::attach::{self, Session, Status};
use crate::config::Settings;
use crate::live::{Interest, LiveModel};
use crate::managed::{self, ManagedNode};
use crate::reload::Reloader;
use crate::workspace::documents::{Document, Pos};
use crate::workspace::index::{self, WorkspaceIndex, MAX_INDEXED};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::mpsc;

mod definition;
mod protocols;
mod save;

pub use definition::Definition;

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
    /// Read through [`Core::index`]: edits are indexed when the index is next read.
    pub index: RwLock<WorkspaceIndex>,
    /// The dependencies' sources (`deps/*/lib`, path deps), indexed when first needed.
    deps: RwLock<Option<Arc<WorkspaceIndex>>>,
    /// Open documents edited since they were last indexed.
    unindexed: Mutex<std::collections::BTreeSet<PathBuf>>,
    pub live: LiveModel,
    pub reloader: Arc<Reloader>,
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
    /// Node name -> creation (incarnation) last seen attached.
    incarnations: Mutex<HashMap<String, i64>>,
    /// Saves per file, coalesced: a burst of saves is one compile and swap.
    pub saves: crate::debounce::Debouncer,
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
            deps: RwLock::new(None),
            unindexed: Mutex::new(Default::default()),
            live: LiveModel::new(),
            reloader: Arc::default(),
            session: RwLock::new(None),
            managed: tokio::sync::Mutex::new(None),
            mode: Mutex::new(Mode::None),
            last_error: Mutex::new(None),
            refresh_now: tokio::sync::Notify::new(),
            traced: Mutex::new(Default::default()),
            last_calls: Mutex::new(Default::default()),
            debug_sessions: Default::default(),
            incarnations: Mutex::new(HashMap::new()),
            bridge: Mutex::new(None),
            saves: crate::debounce::Debouncer::new(
                std::time::Duration::from_millis(150),
                std::time::Duration::from_secs(2),
            ),
        }
    }

    pub fn settings(&self) -> Settings {
        self.settings.read().map(|s| s.clone()).unwrap_or_default()
    }

    /// A node (re)attached: versions kept for rollback belong to one incarnation of a
    /// node, so a restarted node starts with none (its code is what it booted).
    pub fn attached(&self, nodes: &[attach::NodeInfo]) {
        let Ok(mut seen) = self.incarnations.lock() else {
            return;
        };
        let mut restarted = false;
        for n in nodes {
            if let Some(old) = seen.insert(n.name.clone(), n.creation) {
                restarted |= old != n.creation;
            }
        }
        if restarted {
            self.reloader.forget();
        }
    }

    /// Check the attached nodes' incarnations now: an `Attached` event is handled on its
    /// own task, so a request may come first; versions of a node's earlier life must never
    /// be rolled back to.
    pub fn sync_incarnations(&self, session: &Session) {
        let now: Vec<_> = session.nodes().into_iter().map(|n| n.info).collect();
        self.attached(&now);
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

    /// With no `node` set: the nodes of the workspace's project someone else started
    /// (see [`managed::running`]), to be offered instead of starting a second copy.
    pub async fn running_copies(&self) -> Vec<managed::running::RunningCopy> {
        if self.settings().node.is_some() {
            return vec![];
        }
        match self.mix_root() {
            Some(root) => managed::running::running_copies(&root).await,
            None => vec![],
        }
    }

    /// Attach per the settings: to the configured node, else to `found` (a running copy
    /// of the project the user chose), else start the workspace's app.
    /// Output lines of a managed node go to `output`. Returns a description of the target.
    pub async fn attach(
        &self,
        output: mpsc::UnboundedSender<String>,
        found: Option<String>,
    ) -> Result<String, String> {
        let settings = self.settings();
        let attach_peers = settings.attach_peers.unwrap_or(true);
        let (node, cookie, mode) = match settings.node.as_ref().or(found.as_ref()) {
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
                let m = ManagedNode::start(&mix_root, settings.command.as_deref(), output)
                    .await
                    .inspect_err(|e| self.set_error(Some(e.clone())))?;
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
    /// Leave the node (its settings changed): what Orrery did there is undone, versions and
    /// live values are forgotten; `attach` starts afresh.
    pub async fn detach(&self) {
        let session = self.session.write().ok().and_then(|mut s| s.take());
        if let Some(s) = session {
            self.live.stop_tracing(&s).await;
            s.detach().await;
        }
        self.live.clear();
        self.reloader.forget();
        if let Ok(mut i) = self.incarnations.lock() {
            i.clear();
        }
        if let Some(mut m) = self.managed.lock().await.take() {
            m.stop().await;
        }
    }

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
                    .map(|n| {
                        let mut j = attach::node_json(&n.info);
                        j["callTimes"] =
                            crate::live::calltime::status(self.settings().live_call_time, &n.info)
                                .into();
                        j
                    })
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
            "managedRuns": managed.as_ref().map(|m| m.runs.clone()),
            "allowWrites": self.settings().allow_writes(),
            "debugSessions": self.debug_sessions.load(std::sync::atomic::Ordering::Relaxed),
        })
    }

    // ---- documents ----

    /// Track an opened document; `false` when it is too big to be indexed (it is tracked,
    /// but has no symbols, hovers or live values).
    pub fn open(&self, path: PathBuf, text: &str, version: i32) -> bool {
        if let Ok(mut d) = self.docs.write() {
            d.insert(path.clone(), Document::new(text, version));
        }
        // Only Elixir sources are indexed: an Erlang file (`src/*.erl`) parsed as Elixir
        // would make up modules and references.
        let indexed = !crate::workspace::index::is_elixir(&path)
            || self.index.write().is_ok_and(|mut i| i.update(path, text));
        self.refresh_now.notify_one();
        indexed
    }

    pub fn change(&self, path: &Path, changes: Vec<(Option<(Pos, Pos)>, String)>, version: i32) {
        {
            let Ok(mut docs) = self.docs.write() else {
                return;
            };
            let Some(doc) = docs.get_mut(path) else {
                return;
            };
            for (range, text) in changes {
                doc.apply(range, &text, version);
            }
            if doc.len_bytes() > MAX_INDEXED {
                // Not indexed: no copy of the whole text per keystroke.
                drop(docs);
                if let Ok(mut i) = self.index.write() {
                    i.remove(path);
                }
                return;
            }
        }
        // Indexed when next needed: a burst of keystrokes is one re-index of the file.
        if crate::workspace::index::is_elixir(path) {
            if let Ok(mut u) = self.unindexed.lock() {
                u.insert(path.to_path_buf());
            }
        }
    }

    /// The workspace index, with every edited document indexed first.
    pub fn index(&self) -> Option<std::sync::RwLockReadGuard<'_, WorkspaceIndex>> {
        let pending = self
            .unindexed
            .lock()
            .map(|mut u| std::mem::take(&mut *u))
            .unwrap_or_default();
        if !pending.is_empty() {
            let texts: Vec<(PathBuf, String)> = {
                let docs = self.docs.read().ok()?;
                pending
                    .into_iter()
                    .filter_map(|p| {
                        let d = docs.get(&p)?;
                        (d.len_bytes() <= MAX_INDEXED).then(|| (p, d.text()))
                    })
                    .collect()
            };
            let mut idx = self.index.write().ok()?;
            for (p, text) in texts {
                idx.update(p, &text);
            }
        }
        self.index.read().ok()
    }

    pub fn close(&self, path: &Path) {
        if let Ok(mut u) = self.unindexed.lock() {
            u.remove(path);
        }
        let big = self
            .docs
            .write()
            .ok()
            .and_then(|mut d| d.remove(path))
            .is_some_and(|d| d.len_bytes() > MAX_INDEXED);
        // Re-read from disk so the index reflects the saved file.
        if !crate::workspace::index::is_elixir(path) {
            return;
        }
        let on_disk = std::fs::metadata(path)
            .map(|m| m.len() as usize)
            .unwrap_or(0);
        if on_disk <= MAX_INDEXED {
            if let Ok(text) = std::fs::read_to_string(path) {
                if let Ok(mut i) = self.index.write() {
                    i.update(path.to_path_buf(), &text);
                }
            }
        } else if let Ok(mut i) = self.index.write() {
            i.remove(path);
        }
        if big {
            // Give the freed pages of a big document back to the system.
            #[cfg(all(target_os = "linux", target_env = "gnu"))]
            // SAFETY: malloc_trim only releases free heap memory.
            unsafe {
                libc::malloc_trim(0);
            }
        }
    }

    /// A file changed on disk (not open here): index what is there now (Elixir only).
    pub fn reindex(&self, path: &Path) {
        if !crate::workspace::index::is_elixir(path) {
            return;
        }
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Ok(mut idx) = self.index.write() {
                idx.update(path.to_path_buf(), &text);
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
        if let Some(idx) = self.index() {
            for p in paths {
                if let Some(f) = idx.file(&p) {
                    for m in &f.modules {
                        interest.modules.insert(m.name.clone());
                        let names = idx.names_of(m);
                        if !names.is_empty() {
                            interest.names.insert(m.name.clone(), names);
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
        let idx = self.index()?;
        let (_, m) = idx.find_module(module)?;
        let names = idx.names_of(m);
        (!names.is_empty()).then(|| (m.name.clone(), names))
    }

    /// A process target as the user gave it, with the module's process names from the
    /// index when it names a module of the workspace.
    pub fn target(&self, text: &str, key: Option<&str>) -> crate::live::targets::Target {
        let mut t = crate::live::targets::Target::new(text);
        t.key = key.map(str::to_string).filter(|k| !k.trim().is_empty());
        let looks_like_module = t
            .text
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_uppercase());
        if looks_like_module {
            t.names = self.names_of(&t.text).map(|(_, n)| n).unwrap_or_default();
        }
        t
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
        self.live.set_call_time(settings.live_call_time);
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
        if on && !self.settings().allow_writes() {
            // Trace patterns and flags change the node (and could clash with the user's
            // own tracer): a read-only session sets none.
            return Err(format!(
                "tracing calls sets trace patterns on the node: {}",
                crate::live::writes::WRITES_OFF
            ));
        }
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

    /// Roll a module (as written in source, `KV.Bucket`) back to its previous version.
    pub async fn rollback(&self, module: &str) -> Result<crate::reload::SwapReport, String> {
        if !self.settings().allow_writes() {
            return Err("rollback refused: `allowWrites` is false for this node".into());
        }
        let session = self
            .session()
            .filter(|s| s.status() == Status::Attached)
            .ok_or("not attached to a node")?;
        // The node may have restarted since the event saying so was handled.
        self.sync_incarnations(&session);
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
