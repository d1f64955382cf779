//! Hot swap: compile a saved file on the compile node, load the result on every attached
//! node the safe way (the agent's `swap/3`: suspend, load, `code_change`, resume, or put
//! everything back), keep versions for rollback, write the `.beam` where mix would, and
//! audit every load. All nodes change, or none.

pub mod build;
pub mod compile_node;
pub mod dependents;
mod phases;
pub mod ranges;

use crate::attach::Session;
use crate::audit;
use compile_node::{CompileNode, Compiled, Diagnostic};
use eetf::Term;
use phases::{abort, finish, prepare, Held};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// An md5 from the node (a binary) as the hex the version store keeps.
pub fn md5_hex(t: &Term) -> String {
    phases::hex(t)
}

/// Versions kept per module for rollback.
const KEEP_VERSIONS: usize = 10;
const SWAP_TIMEOUT: Duration = Duration::from_secs(30);

/// Why code is loaded into a node: what it means for the version store, the audit log and
/// the guard on the node (instrumented code is put back by the guard if Orrery goes away).
#[derive(Debug, Clone, PartialEq)]
pub enum SwapKind {
    /// A saved edit (plain code of the source on disk).
    Edit,
    /// Debugger probes; per module, the plain code of the same source when known (the
    /// guard puts it back at the end of the debug session; else what was loaded before).
    Instrument {
        restore_to: HashMap<String, Vec<u8>>,
    },
    /// The end of a debug session: the code that matches the source, back.
    Restore,
    /// A previous version, on the user's request.
    Rollback,
}

impl SwapKind {
    /// The audit log's word for it.
    pub fn action(&self) -> &'static str {
        match self {
            SwapKind::Edit => "hot_swap",
            SwapKind::Instrument { .. } => "instrument",
            SwapKind::Restore => "restore",
            SwapKind::Rollback => "rollback",
        }
    }

    /// The agent's word for it (`kind` in `orrery_swap_v1:swap/3`).
    pub(crate) fn agent_kind(&self) -> &'static str {
        match self {
            SwapKind::Edit => "edit",
            SwapKind::Instrument { .. } => "instrument",
            SwapKind::Restore => "restore",
            SwapKind::Rollback => "rollback",
        }
    }
}

/// One loaded version of a module.
#[derive(Debug, Clone)]
pub struct Version {
    pub md5: String,
    pub binary: Vec<u8>,
    pub time: String,
}

/// What a successful swap did.
#[derive(Debug, Clone)]
pub struct SwapReport {
    pub modules: Vec<String>,
    pub nodes: usize,
    pub processes: i64,
    pub migrated: i64,
    pub elapsed: Duration,
    /// Files written where mix would (so a restarted node runs the same code).
    pub written: Vec<PathBuf>,
    pub warnings: Vec<Diagnostic>,
    /// Modules that use what changed (macros, structs) but could not be recompiled with
    /// it, with why: they keep running code built against the previous version.
    pub stale: Vec<String>,
    /// Why `_build` could not be brought up to the saved source, if it could not.
    pub build: Option<String>,
}

impl SwapReport {
    /// "KV.Bucket swapped on 2 nodes in 41 ms, 3 processes migrated".
    pub fn summary(&self, verb: &str) -> String {
        let names: Vec<String> = self
            .modules
            .iter()
            .map(|m| crate::beam::pretty::module_name(m))
            .collect();
        format!(
            "{} {verb} on {} node{} in {} ms, {} process{} migrated",
            names.join(", "),
            self.nodes,
            if self.nodes == 1 { "" } else { "s" },
            self.elapsed.as_millis(),
            self.migrated,
            if self.migrated == 1 { "" } else { "es" }
        ) + &if self.stale.is_empty() {
            String::new()
        } else {
            format!(
                "; stale (still built against the previous code): {}",
                self.stale.join("; ")
            )
        } + &self
            .build
            .as_ref()
            .map(|b| format!("; {b}"))
            .unwrap_or_default()
    }
}

/// Outcome of a save.
#[derive(Debug, Clone)]
pub enum SaveOutcome {
    Swapped(SwapReport),
    CompileFailed {
        errors: Vec<Diagnostic>,
        warnings: Vec<Diagnostic>,
    },
    /// Compiled, but not loaded (writes not allowed, not attached, refused module).
    NotLoaded {
        reason: String,
        warnings: Vec<Diagnostic>,
    },
}

/// Counts a swap under way for as long as it lives.
struct Busy<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The reloader for one workspace.
#[derive(Default)]
pub struct Reloader {
    compile: tokio::sync::Mutex<Option<CompileNode>>,
    versions: Mutex<HashMap<String, Vec<Version>>>,
    /// Per module, the md5s of the probe-carrying code Orrery loaded (whatever else runs
    /// under that name was loaded by someone else).
    probed: Mutex<HashMap<String, std::collections::HashSet<String>>>,
    /// Swaps under way.
    busy: std::sync::atomic::AtomicUsize,
    /// The workspace's beams as they were before Orrery's first build sync.
    mirror: Mutex<Option<build::Mirror>>,
}

impl Reloader {
    pub fn new() -> Self {
        Self::default()
    }

    /// Compile `file` on the compile node (started on first use, restarted when it died
    /// or a compile timed out).
    pub async fn compile(
        &self,
        root: &Path,
        file: &Path,
        timeout: Duration,
    ) -> Result<Compiled, String> {
        self.compile_with(root, &[file.to_path_buf()], &[], timeout)
            .await
    }

    /// Compile `files` (the saved file, or the Erlang sources that include a saved
    /// header), then the stages of their dependents (see [`dependents::stages`]) against
    /// the new code, in one go on the compile node.
    pub async fn compile_with(
        &self,
        root: &Path,
        files: &[PathBuf],
        dependents: &[Vec<PathBuf>],
        timeout: Duration,
    ) -> Result<Compiled, String> {
        let mut stages = vec![files.to_vec()];
        stages.extend(dependents.iter().filter(|s| !s.is_empty()).cloned());
        let mut guard = self.compile.lock().await;
        let cn = Self::ready(&mut guard, root).await?;
        let result = cn.compile_stages(&stages, timeout).await;
        if matches!(result, Ok(Compiled::TimedOut) | Err(_)) {
            // The compile may still be spinning (a looping macro): replace the node.
            if let Some(old) = guard.take() {
                old.stop().await;
            }
        }
        result
    }

    /// Bring `_build` up to the sources on disk with mix's own compile on the compile node
    /// (see [`build`]); a compile node whose mix compile timed out or died is replaced.
    pub async fn sync_build(&self, root: &Path, timeout: Duration) -> build::Synced {
        // Keep what mix is about to overwrite: the code the node loaded from there.
        if let Ok(mut m) = self.mirror.lock() {
            if m.is_none() {
                match build::Mirror::new() {
                    Ok(new) => *m = Some(new),
                    Err(e) => return build::Synced::Failed(e),
                }
            }
            if let Some(m) = m.as_mut() {
                if let Err(e) = m.update(root) {
                    return build::Synced::Failed(e);
                }
            }
        }
        let before = build::Snapshot::take(root);
        let mut guard = self.compile.lock().await;
        let cn = match Self::ready(&mut guard, root).await {
            Ok(cn) => cn,
            Err(e) => return build::Synced::Failed(e),
        };
        let result = cn.sync_build(timeout).await;
        if !matches!(
            result,
            Ok(compile_node::MixCompile::Done | compile_node::MixCompile::Failed(_))
        ) {
            // Stopped mid-compile or unreachable: its Mix state is not to be trusted.
            if let Some(old) = guard.take() {
                old.stop().await;
            }
        }
        match result {
            Ok(compile_node::MixCompile::Done) => build::Synced::Done {
                changed: build::Snapshot::take(root).changed_since(&before),
            },
            Ok(compile_node::MixCompile::Failed(why)) => {
                build::Synced::Failed(format!("mix compile: {why}"))
            }
            Ok(compile_node::MixCompile::TimedOut) => build::Synced::Failed(format!(
                "mix compile took longer than {} s and was stopped",
                timeout.as_secs()
            )),
            Err(e) => build::Synced::Failed(format!("the compile node failed: {e}")),
        }
    }

    /// After [`Self::sync_build`]: the saved file's modules as compiled from the source
    /// (`modules`) and `_build`'s must be the same code. mix decides staleness by file times
    /// to the second, so two saves within one second can leave its beam behind the source;
    /// then the compiled beam (the code mix builds from that source) is written where mix
    /// writes it (`ebin`, through a rename). Returns the modules written.
    pub async fn agree_build(
        &self,
        root: &Path,
        ebin: Option<&Path>,
        modules: &[(String, Vec<u8>)],
    ) -> Vec<String> {
        let targets = modules
            .iter()
            .filter_map(|(m, bin)| {
                let target = build::beam_path(root, m)
                    .or_else(|| ebin.map(|e| e.join(format!("{m}.beam"))))?;
                Some((m.clone(), bin.as_slice(), target))
            })
            .collect();
        self.agree(targets).await
    }

    /// `modules` without the protocols among them (a protocol reaches the node only
    /// through consolidation, see `core::protocols`).
    pub async fn without_protocols(
        &self,
        modules: Vec<(String, Vec<u8>)>,
    ) -> Vec<(String, Vec<u8>)> {
        let guard = self.compile.lock().await;
        let Some(cn) = guard.as_ref() else {
            return modules;
        };
        let mut out = vec![];
        for (m, b) in modules {
            if !cn.is_protocol(&b).await {
                out.push((m, b));
            }
        }
        out
    }

    /// Write each binary over its target unless the target holds the same code.
    async fn agree(&self, targets: Vec<(String, &[u8], PathBuf)>) -> Vec<String> {
        let guard = self.compile.lock().await;
        let Some(cn) = guard.as_ref() else {
            return vec![];
        };
        let mut written = vec![];
        for (m, bin, target) in targets {
            let same = match std::fs::read(&target) {
                Ok(d) if d == bin => true,
                Ok(d) => {
                    let (a, b) = (cn.beam_md5(&d).await, cn.beam_md5(bin).await);
                    a.is_some() && a == b
                }
                Err(_) => false,
            };
            if !same && build::write_beam(&target, bin).is_ok() {
                written.push(m);
            }
        }
        written
    }

    /// Compile `file` with debugger probes on the compile node.
    pub async fn instrument(
        &self,
        root: &Path,
        file: &Path,
        timeout: Duration,
    ) -> Result<compile_node::Instrumented, String> {
        let mut guard = self.compile.lock().await;
        let cn = Self::ready(&mut guard, root).await?;
        cn.instrument(file, timeout).await
    }

    /// A protocol consolidated on the compile node (see [`compile_node::Consolidation`]).
    pub async fn consolidate(
        &self,
        root: &Path,
        c: &compile_node::Consolidation<'_>,
        timeout: Duration,
    ) -> Result<Vec<u8>, String> {
        let mut guard = self.compile.lock().await;
        let cn = Self::ready(&mut guard, root).await?;
        cn.consolidate(c, timeout).await
    }

    /// The compile node, started on first use and restarted when it died.
    async fn ready<'a>(
        guard: &'a mut Option<CompileNode>,
        root: &Path,
    ) -> Result<&'a mut CompileNode, String> {
        // Architecture Invariant: a compile node compiles for the one mix root it was set
        // up in (the project on Mix's stack, its config, its code paths); asked for another
        // root it is replaced, never reused (it would compile without the project).
        let root = &crate::core::normalize(root);
        if guard
            .as_ref()
            .is_some_and(|c| !c.alive() || crate::core::normalize(c.root()) != *root)
        {
            if let Some(old) = guard.take() {
                old.stop().await;
            }
        }
        if guard.is_none() {
            *guard = Some(CompileNode::start(root).await?);
        }
        guard.as_mut().ok_or_else(|| "no compile node".to_string())
    }

    /// The code Orrery last loaded as `module` (atom name) by a save, when the node still
    /// runs it (`md5` is the loaded code's, hex).
    pub fn current(&self, module: &str, md5: &str) -> Option<Vec<u8>> {
        let v = self.versions.lock().ok()?;
        let last = v.get(module)?.last()?;
        (last.md5 == md5).then(|| last.binary.clone())
    }

    /// The code Orrery last loaded by a save of each module whose name starts with
    /// `prefix` (impls of a protocol: `Elixir.P.`).
    pub fn current_with_prefix(&self, prefix: &str) -> Vec<(String, Vec<u8>)> {
        self.versions
            .lock()
            .map(|v| {
                v.iter()
                    .filter(|(m, _)| m.starts_with(prefix))
                    .filter_map(|(m, l)| Some((m.clone(), l.last()?.binary.clone())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The first version seen of each module Orrery swapped (what the node ran before).
    pub fn pristine(&self) -> Vec<(String, Vec<u8>)> {
        self.versions
            .lock()
            .map(|v| {
                v.iter()
                    .filter_map(|(m, l)| Some((m.clone(), l.first()?.binary.clone())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether a swap is under way (code on the node may be Orrery's before it says so).
    pub fn busy(&self) -> bool {
        self.busy.load(std::sync::atomic::Ordering::SeqCst) > 0
    }

    /// Whether `md5` (hex) is probe-carrying code Orrery loaded as `module`.
    pub fn is_probed(&self, module: &str, md5: &str) -> bool {
        self.probed
            .lock()
            .is_ok_and(|p| p.get(module).is_some_and(|s| s.contains(md5)))
    }

    /// Forget all versions (after restoring the pristine ones).
    pub fn forget(&self) {
        if let Ok(mut v) = self.versions.lock() {
            v.clear();
        }
    }

    /// Why a binary must not be swapped, if so.
    pub async fn unsafe_reason(&self, bin: &[u8]) -> Option<&'static str> {
        let guard = self.compile.lock().await;
        guard.as_ref()?.unsafe_reason(bin).await
    }

    /// Versions known for a module (oldest first), as (md5, time).
    pub fn history(&self, module_atom: &str) -> Vec<(String, String)> {
        self.versions
            .lock()
            .map(|v| {
                v.get(module_atom)
                    .map(|l| l.iter().map(|x| (x.md5.clone(), x.time.clone())).collect())
                    .unwrap_or_default()
            })
            .unwrap_or_default()
    }

    /// Load `modules` on every attached node, all or none. Two phases: every node loads
    /// every module and migrates its processes but keeps them suspended (the agent holds
    /// the swap); only when all have accepted is the swap committed everywhere (processes
    /// resumed on the new code). One refusal aborts every held swap: previous code and
    /// backed-up states are put back, so no process ever ran the new code.
    pub async fn swap(
        &self,
        session: &Session,
        root: Option<&Path>,
        modules: Vec<(String, Vec<u8>)>,
        kind: SwapKind,
    ) -> Result<SwapReport, String> {
        self.swap_into(session, root, modules, kind, None).await
    }

    /// [`Reloader::swap`], where a module no node has (not loaded, not on its code path:
    /// new in the saved source) is loaded as from `ebin` (the app's compile path, where
    /// `mix compile` will write it), so `code:which` names the file that will hold it.
    pub async fn swap_into(
        &self,
        session: &Session,
        root: Option<&Path>,
        modules: Vec<(String, Vec<u8>)>,
        kind: SwapKind,
        ebin: Option<&Path>,
    ) -> Result<SwapReport, String> {
        // Loads under way: a watcher of loaded code waits until they are over.
        self.busy.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let _done = Busy(&self.busy);
        let action = kind.action();
        let started = Instant::now();
        let nodes = session.nodes();
        if nodes.is_empty() {
            return Err("not attached to a node: nothing was loaded".into());
        }
        let mut held: Vec<Held> = vec![];
        let mut report = SwapReport {
            modules: modules.iter().map(|(m, _)| m.clone()).collect(),
            nodes: nodes.len(),
            processes: 0,
            migrated: 0,
            elapsed: Duration::ZERO,
            written: vec![],
            warnings: vec![],
            stale: vec![],
            build: None,
        };
        for (module, bin) in &modules {
            let previous = self.versions.lock().ok().and_then(|v| {
                v.get(module)
                    .and_then(|l| l.last())
                    .map(|x| x.binary.clone())
            });
            let was = match &previous {
                None => self
                    .mirror
                    .lock()
                    .ok()
                    .and_then(|m| m.as_ref()?.get(module)),
                Some(_) => None,
            };
            let tries = nodes.iter().enumerate().map(|(i, n)| {
                let file = ebin.map(|d| d.join(format!("{module}.beam")));
                prepare(
                    i,
                    n,
                    (module, bin, file),
                    (previous.as_deref(), was.as_deref()),
                    &kind,
                )
            });
            let mut failures = vec![];
            for r in futures::future::join_all(tries).await {
                match r {
                    Ok(h) => {
                        if let (SwapKind::Instrument { .. }, Ok(mut p)) =
                            (&kind, self.probed.lock())
                        {
                            p.entry(h.module.clone())
                                .or_default()
                                .insert(h.after.clone());
                        }
                        held.push(h)
                    }
                    Err(msg) => failures.push(msg),
                }
            }
            if !failures.is_empty() {
                let msg = failures.join("; ");
                if held.is_empty() {
                    return Err(msg);
                }
                let undone = abort(&nodes, root, action, &held).await;
                return Err(format!("{msg}; {undone}"));
            }
        }
        // Every node accepted every module: let the processes run the new code.
        let commits = held.iter().map(|h| finish(&nodes[h.node], h, "commit"));
        let committed = futures::future::join_all(commits).await;
        let mut expired = vec![];
        for (h, result) in held.iter().zip(committed) {
            let name = &nodes[h.node].info.name;
            if let Err(e) = result {
                expired.push(format!(
                    "{} on {name} ({e})",
                    crate::beam::pretty::module_name(&h.module)
                ));
                continue;
            }
            report.processes += h.processes;
            report.migrated += h.migrated;
            // Versions are plain code the user can go back to: not probes, not rollbacks.
            if kind == SwapKind::Edit {
                self.record(&h.module, &h.prev, &h.before, &h.binary, &h.after);
            }
            if let (SwapKind::Instrument { .. }, Ok(mut p)) = (&kind, self.probed.lock()) {
                p.entry(h.module.clone())
                    .or_default()
                    .insert(h.after.clone());
            }
            if let Some(root) = root {
                let _ = audit::append(
                    root,
                    &audit::Entry {
                        time: audit::now_rfc3339(),
                        node: name,
                        action,
                        target: &h.module,
                        before: Some(&h.before),
                        after: Some(&h.after),
                        detail: None,
                    },
                );
            }
        }
        if !expired.is_empty() {
            return Err(format!(
                "the swap expired before it was committed for {}: those run the previous code while the rest run the new code; save again to retry",
                expired.join(", ")
            ));
        }
        // Nothing goes to `_build`: what is there stays what `mix compile` wrote, and the
        // saved source is newer than mix's manifest, so mix (and a node started with
        // `mix run`) rebuilds it. Instrumented or rolled-back code never reaches disk.
        report.elapsed = started.elapsed();
        Ok(report)
    }

    fn record(&self, module: &str, prev: &Term, before: &str, bin: &[u8], after: &str) {
        let Ok(mut v) = self.versions.lock() else {
            return;
        };
        let list = v.entry(module.to_string()).or_default();
        if list.is_empty() {
            if let Term::Binary(b) = prev {
                list.push(Version {
                    md5: before.to_string(),
                    binary: b.bytes.clone(),
                    time: "at attach".into(),
                });
            }
        }
        if list.last().map(|l| l.md5.as_str()) != Some(after) {
            list.push(Version {
                md5: after.to_string(),
                binary: bin.to_vec(),
                time: audit::now_rfc3339(),
            });
        }
        let excess = list.len().saturating_sub(KEEP_VERSIONS);
        list.drain(..excess);
    }

    /// Restore the version before the current one of `module` (atom name).
    pub async fn rollback(
        &self,
        session: &Session,
        root: Option<&Path>,
        module: &str,
    ) -> Result<SwapReport, String> {
        let target = {
            let v = self
                .versions
                .lock()
                .map_err(|_| "version store unavailable")?;
            let list = v.get(module).cloned().unwrap_or_default();
            if list.len() < 2 {
                return Err(format!(
                    "no previous version of {} to roll back to (Orrery keeps the versions it swapped in this session)",
                    crate::beam::pretty::module_name(module)
                ));
            }
            list[list.len() - 2].clone()
        };
        let report = self
            .swap(
                session,
                root,
                vec![(module.to_string(), target.binary.clone())],
                SwapKind::Rollback,
            )
            .await?;
        // The previous version is current again.
        if let Ok(mut v) = self.versions.lock() {
            if let Some(list) = v.get_mut(module) {
                list.pop();
            }
        }
        Ok(report)
    }

    /// Stop the compile node.
    pub async fn shutdown(&self) {
        if let Some(cn) = self.compile.lock().await.take() {
            cn.stop().await;
        }
    }
}
