//! Breakpoints that survive reloads made by others: Phoenix's CodeReloader, IEx's
//! `recompile`/`r`, `mix compile` followed by `l`. Any of them loads plain code over the
//! probes. Every instrumented module's loaded md5 is checked on a short cadence; code
//! Orrery did not load there means someone else reloaded it, and the file is instrumented
//! again from its source on disk (its breakpoints armed again), with the reloaded code as
//! what the guard puts back at the end.

use super::{lock, lock_listeners, Debugger};
use crate::beam::term::atom;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How often the loaded code of instrumented modules is checked.
const CADENCE: Duration = Duration::from_millis(200);

impl Debugger {
    pub(super) fn watch_reloads(self: &Arc<Self>) {
        let me: Weak<Debugger> = Arc::downgrade(self);
        let watcher = tokio::spawn(async move {
            let mut tick = tokio::time::interval(CADENCE);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(dbg) = me.upgrade() else { return };
                for file in dbg.reloaded_by_others().await {
                    dbg.instrument_again(&file).await;
                }
            }
        });
        lock_listeners(&self.listeners).push(watcher);
    }

    /// Files with probes whose module now runs code Orrery did not load.
    async fn reloaded_by_others(&self) -> Vec<PathBuf> {
        let files: Vec<(PathBuf, Vec<String>)> = lock(&self.state)
            .instrumented
            .iter()
            .map(|(f, (_, names))| (f.clone(), names.clone()))
            .collect();
        // A load of ours under way shows code we have not recorded yet: look next time.
        if files.is_empty() || !self.writes_allowed() || self.reloader.busy() {
            return vec![];
        }
        let Ok(conn) = self.session.primary() else {
            return vec![];
        };
        let mut loaded: Vec<(PathBuf, String, String)> = vec![];
        for (file, names) in files {
            for m in names {
                // Not loaded (deleted, or the node is going away): nothing to re-arm.
                if let Ok(md5) = conn
                    .rpc(
                        "erlang",
                        "get_module_info",
                        vec![atom(&m), atom("md5")],
                        Duration::from_secs(5),
                    )
                    .await
                {
                    loaded.push((file.clone(), m, crate::reload::md5_hex(&md5)));
                }
            }
        }
        // A load of ours that began meanwhile: look next time.
        if self.reloader.busy() {
            return vec![];
        }
        let mut out: Vec<PathBuf> = vec![];
        for (file, m, md5) in loaded {
            if !self.reloader.is_probed(&m, &md5) && !out.contains(&file) {
                out.push(file);
            }
        }
        out
    }

    async fn instrument_again(&self, file: &PathBuf) {
        let names = match lock(&self.state).instrumented.remove(file) {
            Some((_, names)) => names,
            None => return,
        };
        let shown: Vec<String> = names
            .iter()
            .map(|m| crate::beam::pretty::module_name(m))
            .collect();
        let root = crate::managed::find_mix_root(&self.root).unwrap_or_else(|| self.root.clone());
        let result = async {
            let mut p = self.prepare_instrumented(file).await?;
            // The guard puts back the code that matches the source: the build's (what a
            // reloader compiled from the source on disk).
            p.restore_to = names
                .iter()
                .filter_map(|m| Some((m.clone(), crate::reload::build::beam(&root, m)?)))
                .collect::<HashMap<_, _>>();
            let modules = p.names();
            self.load_instrumented(file, p).await?;
            for m in &modules {
                self.arm(m).await?;
            }
            Ok::<_, String>(())
        }
        .await;
        match result {
            Ok(()) => self.say(format!(
                "{} was reloaded by someone else (a code reloader, IEx): its breakpoints are armed again",
                shown.join(", ")
            )),
            Err(e) => self.say(format!(
                "{} was reloaded by someone else and its breakpoints could not be armed again: {e}",
                shown.join(", ")
            )),
        }
    }
}
