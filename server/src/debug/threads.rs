//! Threads and pausing: paused processes, running processes worth pausing (those executing,
//! or registered and started from, an instrumented module), and the "any process" entry.
//! `pause` on one of them stops it at its next instrumented line; every other process
//! keeps running.

use super::{lock, pid_key, Debugger, T};
use crate::agent::DBG_MODULE;
use crate::beam::pretty;
use crate::beam::term::{self, atom, list};

/// Thread id of the "any process" entry: `pause` on it stops the next process that runs an
/// instrumented line.
pub const ANY_THREAD: i64 = i32::MAX as i64;

impl Debugger {
    /// Paused processes first, then running ones, then the "any process" entry.
    pub async fn all_threads(&self) -> Vec<(i64, String)> {
        let mut out = self.threads();
        let modules: Vec<eetf::Term> = {
            let st = lock(&self.state);
            st.instrumented
                .values()
                .flat_map(|(_, ms)| ms.iter().map(|m| atom(m)))
                .collect()
        };
        let mut running = vec![];
        if !modules.is_empty() {
            for n in self.session.nodes() {
                let Ok(r) = n
                    .conn
                    .rpc(DBG_MODULE, "running", vec![list(modules.clone())], T)
                    .await
                else {
                    continue;
                };
                for p in term::list_ref(&r) {
                    if let Some([pid, name]) = term::as_tuple(p) {
                        running.push((n.info.name.clone(), pid.clone(), name.clone()));
                    }
                }
            }
        }
        let mut st = lock(&self.state);
        st.running.clear();
        for (node, pid, name) in running {
            let id = st.thread_id(pid_key(&node, &pid));
            if st.paused.contains_key(&id) {
                continue;
            }
            let name = term::as_atom(&name)
                .filter(|n| *n != "nil")
                .map(pretty::module_name)
                .unwrap_or_else(|| "process".into());
            out.push((
                id,
                format!(
                    "{name} {} @ {node} (running)",
                    pretty::to_elixir_compact(&pid, 40)
                ),
            ));
            st.running.insert(id, (node, pid));
        }
        out.push((
            ANY_THREAD,
            "Any process (pause stops the next one on an instrumented line)".into(),
        ));
        out
    }

    /// Stop `thread_id` at its next instrumented line; for [`ANY_THREAD`], the next process
    /// that gets there. Returns what the user should know while it has not happened yet.
    pub async fn pause(&self, thread_id: i64) -> Result<String, String> {
        if lock(&self.state).paused.contains_key(&thread_id) {
            return Ok(String::new());
        }
        if lock(&self.state).instrumented.is_empty() {
            return Err(
                "nothing to pause in yet: pausing stops a process at its next line in a module \
                 with breakpoints; set a breakpoint in the module first"
                    .into(),
            );
        }
        let target = if thread_id == ANY_THREAD {
            None
        } else {
            Some(
                lock(&self.state)
                    .running
                    .get(&thread_id)
                    .cloned()
                    .ok_or_else(|| format!("no running thread {thread_id}: list threads again"))?,
            )
        };
        for n in self.session.nodes() {
            let arg = match &target {
                None => atom("any"),
                Some((node, pid)) if *node == n.info.name => pid.clone(),
                Some(_) => continue,
            };
            let r = n
                .conn
                .rpc(DBG_MODULE, "request_pause", vec![arg], T)
                .await
                .map_err(|e| format!("could not pause on {}: {e}", n.info.name))?;
            if !term::is_atom(&r, "ok") {
                return Err(format!(
                    "could not pause on {}: {}",
                    n.info.name,
                    pretty::to_elixir_compact(&r, 200)
                ));
            }
        }
        Ok(match target {
            None => "Orrery: the next process to run an instrumented line will pause there\n".into(),
            Some((node, pid)) => format!(
                "Orrery: {} @ {node} will pause at its next instrumented line (it may be waiting for a message)\n",
                pretty::to_elixir_compact(&pid, 40)
            ),
        })
    }
}
