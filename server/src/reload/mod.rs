//! Hot swap: compile a saved file on the compile node, load the result on every attached
//! node the safe way (the agent's `swap/3`: suspend, load, `code_change`, resume, or put
//! everything back), keep versions for rollback, write the `.beam` where mix would, and
//! audit every load. All nodes change, or none.

pub mod compile_node;

use crate::agent;
use crate::attach::{AttachedNode, Session};
use crate::audit;
use crate::beam::term::{self, atom};
use compile_node::{CompileNode, Compiled, Diagnostic};
use eetf::Term;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Versions kept per module for rollback.
const KEEP_VERSIONS: usize = 10;
const SWAP_TIMEOUT: Duration = Duration::from_secs(30);

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
}

impl SwapReport {
    /// "KV.Bucket swapped on 2 nodes in 41 ms, 3 processes migrated".
    pub fn summary(&self, verb: &str) -> String {
        let names: Vec<String> = self.modules.iter().map(|m| crate::beam::pretty::module_name(m)).collect();
        format!(
            "{} {verb} on {} node{} in {} ms, {} process{} migrated",
            names.join(", "),
            self.nodes,
            if self.nodes == 1 { "" } else { "s" },
            self.elapsed.as_millis(),
            self.migrated,
            if self.migrated == 1 { "" } else { "es" }
        )
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

/// The reloader for one workspace.
#[derive(Default)]
pub struct Reloader {
    compile: tokio::sync::Mutex<Option<CompileNode>>,
    versions: Mutex<HashMap<String, Vec<Version>>>,
}

fn hex(t: &Term) -> String {
    match t {
        Term::Binary(b) => b.bytes.iter().map(|x| format!("{x:02x}")).collect(),
        _ => String::new(),
    }
}

fn describe(node: &str, module: &str, reason: &Term) -> String {
    let m = crate::beam::pretty::module_name(module);
    let r = crate::beam::pretty::to_elixir_compact(reason, 300);
    match term::as_tuple(reason).and_then(|t| t.first()).and_then(term::as_atom) {
        Some("old_code_in_use") => format!("{m} not swapped on {node}: a process still runs its old code; try again in a moment"),
        Some("suspend_failed") => format!("{m} not swapped on {node}: a process did not suspend ({r}); nothing changed"),
        Some("code_change_failed") => format!("{m} not swapped on {node}: code_change/3 failed ({r}); the previous code and state were restored"),
        Some("load_failed") => format!("{m} not swapped on {node}: the node refused the code ({r})"),
        _ => format!("{m} not swapped on {node}: {r}"),
    }
}

impl Reloader {
    pub fn new() -> Self {
        Self::default()
    }

    /// Compile `file` on the compile node (started on first use, restarted when it died
    /// or a compile timed out).
    pub async fn compile(&self, root: &Path, file: &Path, timeout: Duration) -> Result<Compiled, String> {
        let mut guard = self.compile.lock().await;
        if guard.as_ref().is_some_and(|c| !c.alive()) {
            if let Some(old) = guard.take() {
                old.stop().await;
            }
        }
        if guard.is_none() {
            *guard = Some(CompileNode::start(root).await?);
        }
        let cn = guard.as_mut().ok_or("no compile node")?;
        let result = cn.compile(file, timeout).await;
        if matches!(result, Ok(Compiled::TimedOut) | Err(_)) {
            // The compile may still be spinning (a looping macro): replace the node.
            if let Some(old) = guard.take() {
                old.stop().await;
            }
        }
        result
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

    /// Load `modules` on every attached node, all or none.
    pub async fn swap(
        &self,
        session: &Session,
        root: Option<&Path>,
        modules: Vec<(String, Vec<u8>)>,
        action: &str,
    ) -> Result<SwapReport, String> {
        let started = Instant::now();
        let nodes = session.nodes();
        if nodes.is_empty() {
            return Err("not attached to a node: nothing was loaded".into());
        }
        let mut done: Vec<(usize, String, Term)> = vec![]; // (node index, module, previous binary)
        let mut report = SwapReport {
            modules: modules.iter().map(|(m, _)| m.clone()).collect(),
            nodes: nodes.len(),
            processes: 0,
            migrated: 0,
            elapsed: Duration::ZERO,
            written: vec![],
            warnings: vec![],
        };
        for (module, bin) in &modules {
            let previous = self
                .versions
                .lock()
                .ok()
                .and_then(|v| v.get(module).and_then(|l| l.last()).map(|x| x.binary.clone()));
            for (i, n) in nodes.iter().enumerate() {
                let mut opts = vec![("timeout", term::int(5000))];
                if let Some(p) = &previous {
                    opts.push(("previous", Term::Binary(eetf::Binary::from(p.clone()))));
                }
                let args = vec![atom(module), Term::Binary(eetf::Binary::from(bin.clone())), term::map(opts)];
                let reply = agent::call(&n.conn, "swap", args, SWAP_TIMEOUT).await;
                let failure = match reply {
                    Ok(r) => match agent::ok_value(&r) {
                        Some(info) => {
                            let before = term::get(info, "md5_before").map(hex).unwrap_or_default();
                            let after = term::get(info, "md5_after").map(hex).unwrap_or_default();
                            report.processes += term::get_int(info, "processes").unwrap_or(0);
                            report.migrated += term::get_int(info, "migrated").unwrap_or(0);
                            let prev = term::get(info, "previous").cloned().unwrap_or(atom("nil"));
                            if action != "rollback" {
                                self.record(module, &prev, &before, bin, &after);
                            }
                            if let Some(root) = root {
                                let _ = audit::append(root, &audit::Entry {
                                    time: audit::now_rfc3339(),
                                    node: &n.info.name,
                                    action,
                                    target: module,
                                    before: Some(&before),
                                    after: Some(&after),
                                    detail: None,
                                });
                            }
                            done.push((i, module.clone(), prev));
                            None
                        }
                        None => Some(match term::as_tuple(&r) {
                            Some([_, reason]) => describe(&n.info.name, module, reason),
                            _ => format!("unexpected answer from {}: {r:?}", n.info.name),
                        }),
                    },
                    Err(e) => Some(format!("{} not swapped on {}: {e}", crate::beam::pretty::module_name(module), n.info.name)),
                };
                if let Some(msg) = failure {
                    let undone = self.undo(&nodes, &done).await;
                    return Err(if done.is_empty() {
                        msg
                    } else {
                        format!("{msg}; {undone}")
                    });
                }
            }
        }
        report.written = write_beams(&nodes[0], &modules).await;
        report.elapsed = started.elapsed();
        Ok(report)
    }

    /// Put back what `done` loaded, newest first.
    async fn undo(&self, nodes: &[AttachedNode], done: &[(usize, String, Term)]) -> String {
        let mut failed = vec![];
        for (i, module, prev) in done.iter().rev() {
            let Term::Binary(_) = prev else {
                failed.push(format!("{module} on {} (no previous binary)", nodes[*i].info.name));
                continue;
            };
            let args = vec![atom(module), prev.clone(), term::map(vec![("timeout", term::int(5000))])];
            let ok = agent::call(&nodes[*i].conn, "swap", args, SWAP_TIMEOUT)
                .await
                .ok()
                .is_some_and(|r| agent::ok_value(&r).is_some());
            if !ok {
                failed.push(format!("{module} on {}", nodes[*i].info.name));
            }
        }
        if failed.is_empty() {
            "the nodes that had changed were put back".into()
        } else {
            format!("could not put back: {}", failed.join(", "))
        }
    }

    fn record(&self, module: &str, prev: &Term, before: &str, bin: &[u8], after: &str) {
        let Ok(mut v) = self.versions.lock() else { return };
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
    pub async fn rollback(&self, session: &Session, root: Option<&Path>, module: &str) -> Result<SwapReport, String> {
        let target = {
            let v = self.versions.lock().map_err(|_| "version store unavailable")?;
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
            .swap(session, root, vec![(module.to_string(), target.binary.clone())], "rollback")
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

/// Write the new `.beam` files where the node loaded the module from, when that file is on
/// this machine, so a restarted node runs the same code.
async fn write_beams(node: &AttachedNode, modules: &[(String, Vec<u8>)]) -> Vec<PathBuf> {
    let local = node
        .info
        .name
        .split_once('@')
        .is_some_and(|(_, h)| crate::config::is_local_host(h));
    let mut written = vec![];
    if !local {
        return written;
    }
    for (module, bin) in modules {
        let which = node
            .conn
            .rpc("code", "which", vec![atom(module)], Duration::from_secs(5))
            .await
            .ok()
            .and_then(|w| term::as_string(&w));
        let Some(path) = which.map(PathBuf::from).filter(|p| p.extension().is_some_and(|e| e == "beam")) else {
            continue;
        };
        if path.parent().is_some_and(|d| d.is_dir()) && std::fs::write(&path, bin).is_ok() {
            written.push(path);
        }
    }
    written
}
