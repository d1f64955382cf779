//! Time travel: recording on and off, and moving a paused thread's cursor through its
//! recorded history (step back, reverse continue, forward steps back to the live point).

use super::{lock, recorded, Debugger, Recorded, T};
use crate::agent::DBG_MODULE;
use crate::beam::term::{self, atom, int, map};

impl Debugger {
    /// Turn recording on (bounded by `limit` events) for instrumented modules.
    pub async fn set_recording(&self, on: bool, limit: i64) -> Result<(), String> {
        if on && !self.writes_allowed() {
            return Err(format!(
                "recording needs breakpoint probes in the code: {}",
                super::READ_ONLY
            ));
        }
        let limits = map(vec![
            ("limit", int(limit.max(10))),
            ("bytes", int(64 * 1024 * 1024)),
        ]);
        for n in self.session.nodes() {
            n.conn
                .rpc(
                    DBG_MODULE,
                    "record",
                    vec![atom(if on { "true" } else { "false" }), limits.clone()],
                    T,
                )
                .await
                .map_err(|e| e.to_string())?;
        }
        {
            let mut st = lock(&self.state);
            st.recording = on;
            st.record_limit = limit;
        }
        Ok(())
    }

    /// Whether the thread is looking at a recorded point (not the live one).
    pub fn in_past(&self, thread_id: i64) -> bool {
        lock(&self.state)
            .paused
            .get(&thread_id)
            .is_some_and(|p| p.cursor.is_some())
    }

    async fn load_history(&self, thread_id: i64) -> Result<(), String> {
        let (node, pid, empty) = {
            let st = lock(&self.state);
            let p = st
                .paused
                .get(&thread_id)
                .ok_or_else(|| format!("thread {thread_id} is not paused"))?;
            (p.node.clone(), p.pid.clone(), p.history.is_empty())
        };
        if !empty {
            return Ok(());
        }
        let conn = self.conn_of(&node).ok_or("node gone")?;
        let h = conn
            .rpc(DBG_MODULE, "history", vec![pid, int(100_000)], T)
            .await
            .map_err(|e| e.to_string())?;
        let (events, returns): (Vec<Recorded>, Vec<Recorded>) = term::list_ref(&h)
            .iter()
            .map(recorded)
            .partition(Recorded::is_line);
        if let Some(p) = lock(&self.state).paused.get_mut(&thread_id) {
            p.history = events;
            p.returns = returns;
        }
        Ok(())
    }

    /// Step back one recorded line (`reverse`: back to the previous breakpoint hit, or
    /// the start of the recording).
    pub async fn step_back(&self, thread_id: i64, reverse: bool) -> Result<(), String> {
        self.load_history(thread_id).await?;
        let mut st = lock(&self.state);
        let bp_lines = st.bp_lines.clone();
        let p = st.paused.get_mut(&thread_id).ok_or("not paused")?;
        if p.history.len() < 2 {
            return Err(
                "nothing recorded before this point: launch or attach with `record: true`".into(),
            );
        }
        // The live point is the newest event (the probe records before pausing).
        let cur = p.cursor.unwrap_or(p.history.len() - 1);
        if cur == 0 {
            return Err("at the start of the recording".into());
        }
        let target = if reverse {
            (0..cur)
                .rev()
                .find(|&i| {
                    let e = &p.history[i];
                    bp_lines
                        .get(&e.module)
                        .is_some_and(|ls| ls.contains(&e.line))
                })
                .unwrap_or(0)
        } else {
            cur - 1
        };
        p.cursor = Some(target);
        st.vars.clear();
        Ok(())
    }

    /// Move forward through the recording; `Ok(true)` when the thread was in the past (it
    /// stays there or reaches the live point; no real resume).
    pub(super) fn forward_in_past(&self, thread_id: i64, cmd: &str) -> Result<bool, String> {
        let mut st = lock(&self.state);
        let bp_lines = st.bp_lines.clone();
        let Some(p) = st.paused.get_mut(&thread_id) else {
            return Err(format!("thread {thread_id} is not paused"));
        };
        let Some(cur) = p.cursor else {
            return Ok(false);
        };
        let last = p.history.len() - 1;
        let depth = p.history[cur].depth;
        if cmd == "continue" {
            // To the next recorded breakpoint hit before the live point; with none, back
            // to live and running on (one press, not one to reach live and one to run).
            let hit = (cur + 1..last).find(|&i| {
                let e = &p.history[i];
                bp_lines
                    .get(&e.module)
                    .is_some_and(|ls| ls.contains(&e.line))
            });
            p.cursor = hit;
            st.vars.clear();
            return Ok(hit.is_some());
        }
        let next = (cur + 1..=last).find(|&i| {
            let e = &p.history[i];
            match cmd {
                "next" => e.depth <= depth,
                "step_out" => e.depth < depth,
                _ => true,
            }
        });
        p.cursor = match next {
            Some(i) if i < last => Some(i),
            _ => None, // back at the live point
        };
        st.vars.clear();
        Ok(true)
    }
}
