//! The debug session's life on its nodes: arming the debugger runtime on each node, losing
//! a node (its paused processes are gone), re-arming every breakpoint when the node is back
//! (restarted or reconnected), and the clean detach that leaves the node as it was found.
//!
//! Architecture Invariant: what the session changed on a node is registered with the guard
//! there before it is changed (`undo_on_loss`), so a node the session loses track of undoes
//! it by itself; a node that comes back is a new node: it gets everything again.

use super::{lock, lock_listeners, Debugger, Event, T};
use crate::agent::DBG_MODULE;
use crate::attach::AttachedNode;
use crate::beam::term::{self, atom, int, map};
use crate::reload::SwapKind;
use eetf::Term;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Weak};

impl Debugger {
    /// Start the debugger runtime on `n`, events to this session, and have the guard end it
    /// should this Orrery vanish.
    pub(super) async fn arm_node(&self, n: &AttachedNode) -> Result<(), String> {
        let mut mailbox = n.conn.mailbox();
        n.conn
            .rpc(DBG_MODULE, "start", vec![Term::Pid(mailbox.pid.clone())], T)
            .await
            .map_err(|e| e.to_string())?;
        crate::agent::undo_on_loss(
            &n.conn,
            self.session.owner(),
            "debugger",
            (crate::agent::GUARD_MODULE, "end_debug", vec![]),
        )
        .await
        .map_err(|e| e.to_string())?;
        let state = self.state.clone();
        let events = self.events.clone();
        let node_name = n.info.name.clone();
        let conn = n.conn.clone();
        let root = self.root.clone();
        let index_paths = self.module_paths();
        let terminate = self.terminate_on_loss;
        let listener = tokio::spawn(async move {
            while let Some(msg) = mailbox.rx.recv().await {
                super::events::handle_event(&state, &events, &node_name, &root, &index_paths, msg);
            }
            let reason = conn
                .down_reason()
                .map(|e| e.to_string())
                .unwrap_or_else(|| "detached".into());
            if terminate {
                // The node Orrery started is gone: the program ended, its threads with it.
                {
                    let mut st = lock(&state);
                    st.paused.clear();
                    st.running.clear();
                    st.vars.clear();
                }
                let _ = events.send(Event::Terminated(reason));
            } else {
                node_lost(&state, &events, &node_name, &reason);
            }
        });
        lock_listeners(&self.listeners).push(listener);
        Ok(())
    }

    /// Re-arm on every node each time the session attaches again (a restarted node, or one
    /// reachable again): the watcher holds the session weakly and ends with it.
    pub(super) fn watch_reattach(self: &Arc<Self>) {
        let mut events = self.session.events();
        let me: Weak<Debugger> = Arc::downgrade(self);
        let watcher = tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(crate::attach::Event::Attached(_)) => {
                        let Some(dbg) = me.upgrade() else { return };
                        dbg.rearm().await;
                    }
                    Ok(crate::attach::Event::Detached(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        lock_listeners(&self.listeners).push(watcher);
    }

    /// The session attached again: start the runtime on every node, instrument again every
    /// file that had probes, put every breakpoint back (and the recording, if on).
    pub(super) async fn rearm(&self) {
        let nodes = self.session.nodes();
        let names: Vec<String> = nodes.iter().map(|n| n.info.name.clone()).collect();
        for n in &nodes {
            if let Err(e) = self.arm_node(n).await {
                self.say(format!(
                    "could not start the debugger on {} again: {e}",
                    n.info.name
                ));
                return;
            }
        }
        if !self.writes_allowed() {
            return;
        }
        // The node runs the code it booted: every probe has to be compiled in again.
        let files: Vec<PathBuf> = {
            let mut st = lock(&self.state);
            let files = st.instrumented.keys().cloned().collect();
            st.instrumented.clear();
            files
        };
        let mut modules: BTreeSet<String> = BTreeSet::new();
        for f in files {
            match self.ensure_instrumented(&f).await {
                Ok(ms) => modules.extend(ms),
                Err(e) => self.say(format!(
                    "the breakpoints in {} could not be armed again: {e}",
                    f.display()
                )),
            }
        }
        let (recording, limit, count) = {
            let st = lock(&self.state);
            modules.extend(st.line_bps.keys().cloned());
            modules.extend(st.fn_bps.keys().cloned());
            let count: usize = st
                .line_bps
                .values()
                .chain(st.fn_bps.values())
                .map(Vec::len)
                .sum();
            (st.recording, st.record_limit, count)
        };
        if recording {
            let limits = map(vec![
                ("limit", int(limit.max(10))),
                ("bytes", int(64 * 1024 * 1024)),
            ]);
            for n in &nodes {
                let r = n
                    .conn
                    .rpc(DBG_MODULE, "record", vec![atom("true"), limits.clone()], T)
                    .await;
                if let Err(e) = r {
                    self.say(format!("recording on {} did not restart: {e}", n.info.name));
                }
            }
        }
        for m in &modules {
            if let Err(e) = self.arm(m).await {
                self.say(e);
            }
        }
        self.say(format!(
            "attached again to {}: {count} breakpoint{} armed again",
            names.join(", "),
            if count == 1 { "" } else { "s" }
        ));
    }

    pub(super) fn say(&self, text: String) {
        let _ = self.events.send(Event::Output(format!("Orrery: {text}\n")));
    }

    /// Disarm, resume everything, load the pristine binaries back, remove the agent, and
    /// stop a managed node. The node ends as it was found.
    pub async fn disconnect(&self) {
        // No re-arming from here on.
        for l in lock_listeners(&self.listeners).drain(..) {
            l.abort();
        }
        for n in self.session.nodes() {
            let _ = n.conn.rpc(DBG_MODULE, "stop", vec![], T).await;
        }
        lock(&self.state).paused.clear();
        // The guard on the node knows, for every module with probes (whoever put them
        // there), the plain code that matches its source: put that back.
        let mut targets: Vec<(String, Vec<u8>)> = vec![];
        for n in self.session.nodes() {
            if let Ok(t) = n
                .conn
                .rpc(crate::agent::GUARD_MODULE, "restore_targets", vec![], T)
                .await
            {
                for e in term::list_ref(&t) {
                    if let Some([Term::Atom(m), Term::Binary(b)]) = term::as_tuple(e) {
                        if !targets.iter().any(|(x, _)| *x == m.name) {
                            targets.push((m.name.clone(), b.bytes.clone()));
                        }
                    }
                }
            }
        }
        // A launched task that ended took its node with it: nothing to restore.
        if !targets.is_empty() && !self.session.nodes().is_empty() {
            if let Err(e) = self
                .reloader
                .swap(&self.session, Some(&self.root), targets, SwapKind::Restore)
                .await
            {
                tracing::warn!("could not restore the original code: {e}");
            }
        }
        for n in self.session.nodes() {
            // What the swap above could not put back (modules instrumented without having
            // been loaded are unloaded): the guard does it on the node.
            let _ = n
                .conn
                .rpc(crate::agent::GUARD_MODULE, "restore_all", vec![], T)
                .await;
            let _ = crate::agent::forget_undo(&n.conn, self.session.owner(), "debugger").await;
        }
        if self.owns_session {
            // The reloader is this session's own (a bridged session shares the language
            // server's: its versions and compile node stay).
            self.reloader.forget();
            self.reloader.shutdown().await;
            self.session.detach().await;
        }
        if let Some(mut m) = self.managed.lock().await.take() {
            m.stop().await;
        }
    }
}

/// A node went away: its paused processes and running threads are gone with it. The
/// session stays; the breakpoints come back when the node does.
fn node_lost(
    state: &std::sync::Mutex<super::State>,
    events: &tokio::sync::mpsc::UnboundedSender<Event>,
    node: &str,
    reason: &str,
) {
    let gone: Vec<i64> = {
        let mut st = lock(state);
        let gone: Vec<i64> = st
            .paused
            .iter()
            .filter(|(_, p)| p.node == node)
            .map(|(t, _)| *t)
            .collect();
        for t in &gone {
            st.paused.remove(t);
        }
        st.running.retain(|_, (n, _)| n != node);
        // Pids of a node that comes back are new processes, even where they read the same.
        let prefix = format!("{node}/");
        st.thread_of.retain(|k, _| !k.starts_with(&prefix));
        st.vars.clear();
        gone
    };
    for t in gone {
        let _ = events.send(Event::ThreadExited(t));
    }
    let _ = events.send(Event::Output(format!(
        "Orrery: lost {node} ({reason}); the debug session waits for it and arms its \
         breakpoints again when it is back\n"
    )));
}
