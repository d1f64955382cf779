//! The save pipeline: compile in the project's environment (Elixir files with Elixir's
//! compiler, Erlang sources and headers with Erlang's), keep protocols consolidated and
//! breakpoints armed, load only what changed, through the reloader's all-or-none swap.

use super::Core;
use crate::attach::Status;
use crate::reload::compile_node::{Compiled, Diagnostic, Severity};
use crate::reload::{SaveOutcome, SwapKind};
use crate::workspace::erlang::{self, SourceKind};
use std::path::Path;

impl Core {
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
        let Some(kind) = erlang::kind(path) else {
            return not_loaded(format!(
                "{} is not a source Orrery compiles (.ex, .erl, .hrl)",
                path.display()
            ));
        };
        if kind == SourceKind::Erlang && !erlang::in_app_src(&root, path) {
            return not_loaded(format!(
                "{} is not in its app's src/: Orrery swaps the Erlang sources mix compiles from src/",
                path.display()
            ));
        }
        // What to compile: the file, or for a header the Erlang sources that include it.
        let files = match kind {
            SourceKind::Header => erlang::includers(&root, path),
            _ => vec![path.to_path_buf()],
        };
        if files.is_empty() {
            let src = erlang::app_dir(&root, path).join("src");
            return not_loaded(format!(
                "no Erlang source in {} includes {}: nothing to compile",
                src.display(),
                path.display()
            ));
        }
        // A file that defines the same module twice is refused before compiling.
        let mut names: Vec<String> = self
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
        // Users of its macros and structs are recompiled against the new code too (Elixir
        // files only).
        let dependents = match self.index() {
            Some(idx) if kind == SourceKind::Elixir => {
                crate::reload::dependents::stages(&idx, &root, path, |p| self.text(p))
            }
            _ => vec![],
        };
        let compiled = match self
            .reloader
            .compile_with(&root, &files, &dependents, settings.compile_timeout())
            .await
        {
            Ok(c) => c,
            Err(e) => return not_loaded(format!("could not compile {}: {e}", path.display())),
        };
        let (modules, warnings, stale, roles, ebin) = match compiled {
            Compiled::TimedOut => {
                let secs = settings.compile_timeout().as_secs_f64();
                return SaveOutcome::CompileFailed {
                    errors: vec![Diagnostic {
                        file: path.to_path_buf(),
                        line: 1,
                        column: 0,
                        end: None,
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
                roles,
                ebin,
            } => (modules, warnings, stale, roles, ebin),
        };
        if kind != SourceKind::Elixir {
            // Erlang modules are what the compiler says (one per source).
            names = modules
                .iter()
                .map(|(m, _)| crate::beam::pretty::module_name(m))
                .collect();
        }
        let mut stale: Vec<String> = match self.index() {
            Some(idx) => stale
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
            None => vec![],
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
        self.sync_incarnations(&session);
        // One winner: mix's own compile brings `_build` and its manifest up to the saved
        // source, and the node gets what `_build` then holds (see `reload::build`), so
        // mix and Phoenix's CodeReloader find nothing left to compile or load.
        // Protocols and impls stay out of it: their consolidation is Orrery's on the node,
        // and mix's next compile rebuilds them on disk (source newer than its manifest).
        let mut modules = modules;
        // `ORRERY_SYNC_BUILD=0` leaves `_build` to mix (and CodeReloader compiles each save
        // again, unprobed).
        let enabled = std::env::var("ORRERY_SYNC_BUILD").map_or(true, |v| v != "0");
        let synced = if roles.is_empty() && enabled {
            self.reloader
                .sync_build(&root, settings.compile_timeout() * 2)
                .await
        } else {
            crate::reload::build::Synced::Skipped
        };
        if let crate::reload::build::Synced::Done { changed, .. } = &synced {
            let besides = self
                .reloader
                .without_protocols(crate::reload::build::rebuilt_besides(
                    &root, &modules, changed,
                ))
                .await;
            // What mix rebuilt is what runs; what it left behind the source (a change
            // within the second of its last compile) is put back from this compile.
            for (m, bin) in modules.iter_mut() {
                if changed.contains(m) {
                    if let Some(b) = crate::reload::build::beam(&root, m) {
                        *bin = b;
                    }
                }
            }
            let missed = self
                .reloader
                .agree_build(&root, ebin.as_deref(), &modules)
                .await;
            if !missed.is_empty() {
                tracing::info!(
                    "_build was behind the source for {missed:?}: written from this compile"
                );
            }
            modules.extend(besides);
        }
        let build_note = synced.note();
        let with_warnings = |reason: String| SaveOutcome::NotLoaded {
            reason: match &build_note {
                Some(n) => format!("{reason}; {n}"),
                None => reason,
            },
            warnings: warnings.clone(),
        };
        // Protocols the node runs consolidated stay consolidated.
        let (mut modules, added) = match self
            .consolidated(
                &session,
                (&root, &files),
                modules,
                &roles,
                settings.compile_timeout(),
            )
            .await
        {
            Ok(r) => r,
            Err(reason) => return with_warnings(reason),
        };
        names.extend(added.iter().map(|p| crate::beam::pretty::module_name(p)));
        // Modules with breakpoints armed by a debug session are recompiled *with* their
        // probes, so the breakpoints survive the save.
        let mut kind = SwapKind::Edit;
        if self.has_breakpoints(&session, &modules).await {
            // What the guard puts back when the debug session ends: this edit, plain.
            kind = SwapKind::Instrument {
                restore_to: modules.iter().cloned().collect(),
            };
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
        // Load what changed: not the code the node already runs, not modules nobody loaded
        // (the code server loads those when they are first used).
        let mut modules = vec![];
        let mut from_build = vec![];
        let primary = session.primary().ok();
        for (m, bin) in safe {
            let dependent = !names.contains(&crate::beam::pretty::module_name(&m));
            let needed = match &primary {
                Some(conn) => conn
                    .rpc(
                        crate::agent::SWAP_MODULE,
                        "needed",
                        vec![
                            crate::beam::term::atom(&m),
                            eetf::Term::Binary(eetf::Binary::from(bin.clone())),
                            crate::beam::term::atom(if dependent { "true" } else { "false" }),
                        ],
                        std::time::Duration::from_secs(10),
                    )
                    .await
                    .map(|r| {
                        if crate::beam::term::is_atom(&r, "on_disk") {
                            from_build.push(crate::beam::pretty::module_name(&m));
                        }
                        !crate::beam::term::is_atom(&r, "false")
                            && !crate::beam::term::is_atom(&r, "on_disk")
                    })
                    .unwrap_or(true),
                None => true,
            };
            if needed {
                modules.push((m, bin));
            }
        }
        if modules.is_empty() {
            let running: Vec<&String> = names.iter().filter(|n| !from_build.contains(n)).collect();
            let what = match (running.is_empty(), from_build.is_empty()) {
                (false, true) => "the node already runs this code".to_string(),
                (true, _) => format!(
                    "not loaded on the node yet: it loads this code from _build when first used ({})",
                    from_build.join(", ")
                ),
                (false, false) => format!(
                    "the node already runs this code ({} not loaded yet: loaded from _build when first used)",
                    from_build.join(", ")
                ),
            };
            return with_warnings(format!(
                "{}: compiled; {what}, nothing to swap",
                names.join(", ")
            ));
        }
        match self
            .reloader
            .swap_into(&session, Some(&root), modules, kind, ebin.as_deref())
            .await
        {
            Ok(mut report) => {
                report.warnings = warnings;
                report.stale = stale;
                report.build = build_note;
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
}
