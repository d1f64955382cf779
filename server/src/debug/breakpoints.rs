//! Breakpoints: where a requested line lands (only where a probe really exists, see
//! `lines.rs`), instrumenting a file once per content, and arming lines on every node.

use super::{lines, lock, Debugger, T};
use crate::agent::DBG_MODULE;
use crate::beam::term::{self, atom, binary, int, map};
use eetf::Term;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a breakpoint in an Erlang source (`src/*.erl`) is refused: the instrumenter inserts
/// probes into Elixir code only.
pub const ERLANG_REFUSED: &str = "breakpoints in Erlang modules are not supported yet (only \
     Elixir code gets probes); set the breakpoint in the Elixir code that calls it";

/// A breakpoint as the client asks for it.
#[derive(Debug, Clone, Default)]
pub struct BreakpointReq {
    pub line: u32,
    pub condition: Option<String>,
    pub hit_condition: Option<String>,
    pub log_message: Option<String>,
}

/// The on-node spec of a breakpoint: condition, hit count, log message.
fn spec_of(r: &BreakpointReq) -> Term {
    let hit = r
        .hit_condition
        .as_deref()
        .and_then(|h| h.trim().trim_start_matches(">=").trim().parse::<i64>().ok());
    map(vec![
        (
            "cond",
            r.condition
                .as_deref()
                .filter(|c| !c.trim().is_empty())
                .map(binary)
                .unwrap_or(atom("nil")),
        ),
        ("hit", hit.map(int).unwrap_or(atom("nil"))),
        (
            "log",
            r.log_message.as_deref().map(binary).unwrap_or(atom("nil")),
        ),
    ])
}

/// A file compiled with probes, before (or after, `loaded`) it goes into the node.
pub(super) struct Prepared {
    hash: u64,
    /// (module, binary); binaries are empty when `loaded`.
    modules: Vec<(String, Vec<u8>)>,
    /// (module, probe lines)
    lines: Vec<(String, Vec<u32>)>,
    loaded: bool,
    /// Per module, the plain code the guard puts back at the end (when not what the node
    /// ran before the probes).
    pub(super) restore_to: HashMap<String, Vec<u8>>,
}

impl Prepared {
    pub(super) fn names(&self) -> Vec<String> {
        self.modules.iter().map(|(m, _)| m.clone()).collect()
    }
}

/// Where a breakpoint ended up.
#[derive(Debug, Clone)]
pub struct BreakpointResult {
    pub verified: bool,
    pub line: u32,
    pub message: Option<String>,
}

impl Debugger {
    /// Set the breakpoints of one file (replacing the previous ones).
    pub async fn set_breakpoints(
        &self,
        file: &Path,
        reqs: &[BreakpointReq],
    ) -> Vec<BreakpointResult> {
        let fail = |msg: String| {
            reqs.iter()
                .map(|r| BreakpointResult {
                    verified: false,
                    line: r.line,
                    message: Some(msg.clone()),
                })
                .collect()
        };
        let file = crate::core::normalize(file);
        if reqs.is_empty() {
            // Clearing: disarm what is armed; never compile or load anything for it.
            let modules: Vec<String> = {
                let st = lock(&self.state);
                let mut ms: Vec<String> = st
                    .instrumented
                    .get(&file)
                    .map(|(_, m)| m.clone())
                    .unwrap_or_default();
                // Armed before the file was saved again (its probes are out of date).
                ms.extend(
                    st.line_bps
                        .keys()
                        .filter(|m| st.paths.get(*m).is_some_and(|p| *p == file))
                        .cloned(),
                );
                ms.sort();
                ms.dedup();
                ms
            };
            for m in modules {
                lock(&self.state).line_bps.remove(&m);
                if let Err(e) = self.arm(&m).await {
                    tracing::warn!("{e}");
                }
            }
            return vec![];
        }
        if !self.writes_allowed() {
            return fail(super::READ_ONLY_BREAKPOINTS.into());
        }
        if file.extension().is_some_and(|e| e == "exs") {
            return fail(
                "breakpoints in .exs files (tests, scripts) are not supported: they are compiled \
                 as they run; set the breakpoint in the code under test (lib/)"
                    .into(),
            );
        }
        if file.extension().is_some_and(|e| e == "erl" || e == "hrl") {
            return fail(ERLANG_REFUSED.into());
        }
        // Compile with probes first; load only if some breakpoint lands on a probe.
        let prepared = match self.prepare_instrumented(&file).await {
            Ok(p) => p,
            Err(e) => return fail(e),
        };
        let modules: Vec<String> = prepared.names();
        let lines_of: HashMap<String, Vec<u32>> = prepared.lines.iter().cloned().collect();
        let mut per_module: BTreeMap<String, Vec<(u32, Term)>> =
            modules.iter().map(|m| (m.clone(), vec![])).collect();
        // The file as compiled, indexed now (the workspace index may be older).
        let src = std::fs::read_to_string(&file).unwrap_or_default();
        let spans = lines::spans(&crate::workspace::index::index_source(&src));
        let probes: Vec<(String, Vec<u32>)> = lines_of.into_iter().collect();
        let mut out = vec![];
        for r in reqs {
            if let Some(why) = self.bad_condition(r).await {
                out.push(BreakpointResult {
                    verified: false,
                    line: r.line,
                    message: Some(why),
                });
                continue;
            }
            match lines::resolve(r.line, &probes, &spans, &src) {
                Ok((line, module)) => {
                    per_module
                        .entry(module)
                        .or_default()
                        .push((line, spec_of(r)));
                    out.push(BreakpointResult {
                        verified: true,
                        line,
                        message: None,
                    });
                }
                Err(reason) => out.push(BreakpointResult {
                    verified: false,
                    line: r.line,
                    message: Some(reason),
                }),
            }
        }
        if !out.iter().any(|r| r.verified) && !prepared.loaded {
            // Nothing to stop at: the node keeps its code.
            return out;
        }
        if let Err(e) = self.load_instrumented(&file, prepared).await {
            return fail(e);
        }
        for (module, bps) in per_module {
            lock(&self.state).line_bps.insert(module.clone(), bps);
            if let Err(e) = self.arm(&module).await {
                return fail(e);
            }
        }
        out
    }

    /// Why a breakpoint's condition or hit count can never work (it does not parse), if so.
    async fn bad_condition(&self, r: &BreakpointReq) -> Option<String> {
        if let Some(h) = r.hit_condition.as_deref().filter(|h| !h.trim().is_empty()) {
            let n = h.trim().trim_start_matches(">=").trim();
            if n.parse::<u64>().is_err() {
                return Some(format!(
                    "hit count `{h}` is not a number (write `3` or `>= 3`)"
                ));
            }
        }
        let cond = r.condition.as_deref().filter(|c| !c.trim().is_empty())?;
        // Parsing only (no evaluation): `Code.string_to_quoted/1` on the node.
        let conn = self.session.primary().ok()?;
        let parsed = conn
            .rpc(
                "Elixir.Code",
                "string_to_quoted",
                vec![term::binary(cond)],
                super::T,
            )
            .await
            .ok()?;
        match term::as_tuple(&parsed) {
            Some([tag, why]) if term::is_atom(tag, "error") => {
                let detail = match term::as_tuple(why) {
                    Some([_, msg, token]) => format!(
                        "{}{}",
                        term::as_string(msg).unwrap_or_default(),
                        term::as_string(token).unwrap_or_default()
                    ),
                    _ => crate::beam::pretty::to_elixir_compact(why, 200),
                };
                Some(format!("the condition `{cond}` does not parse: {detail}"))
            }
            _ => None,
        }
    }

    /// Put a module's breakpoints (from files and from function names) on every node.
    pub(super) async fn arm(&self, module: &str) -> Result<(), String> {
        let (recording, lines, specs) = {
            let st = lock(&self.state);
            let mut specs: Vec<(u32, Term)> = st.line_bps.get(module).cloned().unwrap_or_default();
            specs.extend(st.fn_bps.get(module).cloned().unwrap_or_default());
            (
                st.recording,
                st.probe_lines.get(module).cloned().unwrap_or_default(),
                specs,
            )
        };
        let mut m = std::collections::HashMap::new();
        if recording {
            // Every probe line records; breakpoint lines also pause.
            for l in lines {
                m.insert(int(l as i64), atom("record"));
            }
        }
        lock(&self.state)
            .bp_lines
            .insert(module.to_string(), specs.iter().map(|(l, _)| *l).collect());
        for (line, spec) in specs {
            m.insert(int(line as i64), spec);
        }
        let spec_map = Term::Map(eetf::Map::from(m));
        for n in self.session.nodes() {
            n.conn
                .rpc(
                    DBG_MODULE,
                    "set_breakpoints",
                    vec![atom(module), spec_map.clone()],
                    T,
                )
                .await
                .map_err(|e| format!("could not arm breakpoints on {}: {e}", n.info.name))?;
        }
        Ok(())
    }

    /// Function breakpoints (`KV.Steps.double/1`, or without arity): the first line with
    /// code in the function. Replaces the previous function breakpoints.
    pub async fn set_function_breakpoints(
        &self,
        reqs: &[(String, BreakpointReq)],
    ) -> Vec<BreakpointResult> {
        if !reqs.is_empty() && !self.writes_allowed() {
            return reqs
                .iter()
                .map(|(_, r)| BreakpointResult {
                    verified: false,
                    line: r.line,
                    message: Some(super::READ_ONLY_BREAKPOINTS.into()),
                })
                .collect();
        }
        let old: Vec<String> = lock(&self.state).fn_bps.drain().map(|(m, _)| m).collect();
        let mut out = vec![];
        let mut touched: Vec<String> = old;
        for (name, r) in reqs {
            let found = self.function_location(name);
            let Some((path, module, start, end)) = found else {
                out.push(BreakpointResult {
                    verified: false,
                    line: 0,
                    message: Some(format!("no function {name} in the workspace")),
                });
                continue;
            };
            if let Err(e) = self.ensure_instrumented(&path).await {
                out.push(BreakpointResult {
                    verified: false,
                    line: 0,
                    message: Some(e),
                });
                continue;
            }
            let atom_name = term::module_atom(&module);
            let line = lock(&self.state)
                .probe_lines
                .get(&atom_name)
                .and_then(|ls| {
                    ls.iter()
                        .copied()
                        .filter(|l| *l >= start && *l <= end)
                        .min()
                });
            match line {
                Some(line) => {
                    lock(&self.state)
                        .fn_bps
                        .entry(atom_name.clone())
                        .or_default()
                        .push((line, spec_of(r)));
                    touched.push(atom_name);
                    out.push(BreakpointResult {
                        verified: true,
                        line,
                        message: None,
                    });
                }
                None => out.push(BreakpointResult {
                    verified: false,
                    line: start,
                    message: Some(format!("{name} has no code to stop in")),
                }),
            }
        }
        touched.sort();
        touched.dedup();
        for m in touched {
            if let Err(e) = self.arm(&m).await {
                tracing::warn!("{e}");
            }
        }
        out
    }

    /// (file, module, first line, last line) of `Mod.fun/arity` (1-based lines).
    fn function_location(&self, name: &str) -> Option<(PathBuf, String, u32, u32)> {
        let (mf, arity) = match name.rsplit_once('/') {
            Some((mf, a)) => (mf, a.trim().parse::<u32>().ok()),
            None => (name, None),
        };
        let (module, fun) = mf.trim().rsplit_once('.')?;
        let idx = self.index.lock().unwrap_or_else(|e| e.into_inner());
        let (path, f) = idx.find_function(module, fun, arity).into_iter().next()?;
        Some((
            path,
            module.to_string(),
            f.range.start.line + 1,
            f.range.end.line + 1,
        ))
    }

    /// Compile `file` with probes and swap it in, once per file content.
    pub(super) async fn ensure_instrumented(&self, file: &Path) -> Result<Vec<String>, String> {
        let prepared = self.prepare_instrumented(file).await?;
        let names = prepared.names();
        self.load_instrumented(file, prepared).await?;
        Ok(names)
    }

    /// `file` compiled with probes (nothing loaded yet), or what is loaded already when
    /// the file has not changed since.
    pub(super) async fn prepare_instrumented(&self, file: &Path) -> Result<Prepared, String> {
        if file.extension().is_some_and(|e| e != "ex") {
            return Err(if file.extension().is_some_and(|e| e == "erl") {
                ERLANG_REFUSED.into()
            } else {
                format!("{} is not an Elixir source (.ex)", file.display())
            });
        }
        let hash = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            std::fs::read(file)
                .map_err(|e| format!("{}: {e}", file.display()))?
                .hash(&mut h);
            h.finish()
        };
        {
            // Same content as last time: the probes in the node are current.
            let st = lock(&self.state);
            if let Some((h, names)) = st.instrumented.get(file) {
                if *h == hash {
                    let lines = names
                        .iter()
                        .map(|m| {
                            (
                                m.clone(),
                                st.probe_lines.get(m).cloned().unwrap_or_default(),
                            )
                        })
                        .collect();
                    return Ok(Prepared {
                        hash,
                        modules: names.iter().map(|m| (m.clone(), vec![])).collect(),
                        lines,
                        loaded: true,
                        restore_to: HashMap::new(),
                    });
                }
            }
        }
        let root = crate::managed::find_mix_root(&self.root).unwrap_or_else(|| self.root.clone());
        let inst = self
            .reloader
            .instrument(&root, file, Duration::from_secs(30))
            .await?;
        if inst.modules.is_empty() {
            return Err(format!("{} defines no module", file.display()));
        }
        Ok(Prepared {
            hash,
            modules: inst.modules,
            lines: inst.lines.into_iter().collect(),
            loaded: false,
            restore_to: HashMap::new(),
        })
    }

    /// Swap the probe-carrying code in (unless it is loaded already).
    pub(super) async fn load_instrumented(&self, file: &Path, p: Prepared) -> Result<(), String> {
        if p.loaded {
            return Ok(());
        }
        let names = p.names();
        self.reloader
            .swap(
                &self.session,
                Some(&self.root),
                p.modules,
                crate::reload::SwapKind::Instrument {
                    restore_to: p.restore_to,
                },
            )
            .await?;
        let mut st = lock(&self.state);
        for (m, ls) in p.lines {
            st.probe_lines.insert(m, ls);
        }
        st.instrumented.insert(file.to_path_buf(), (p.hash, names));
        Ok(())
    }

    /// The file changed (saved): re-instrument it with its breakpoints on the next set.
    pub fn invalidate(&self, file: &Path) {
        lock(&self.state)
            .instrumented
            .remove(&crate::core::normalize(file));
    }
}
