//! Mean call times, behind the `liveCallTime` setting. `call_time` only counts for
//! processes carrying the `call` trace flag. Where the node has trace sessions (OTP 27+)
//! the agent's sink (`orrery_calltime_v1`) flags every process in Orrery's own session,
//! which no other tracer sees: on by default there. Without sessions (OTP 25, 26) a
//! process has one tracer at most, so switching it on makes the sink the tracer of every
//! process that has none, and a tracer the user starts later cannot trace those: off by
//! default there. Off again (and everything undone) when the setting is turned off, when
//! the documents close and at detach.

use super::Snapshot;
use crate::agent::CALLTIME_MODULE;
use crate::attach::{AttachedNode, NodeInfo};
use crate::beam::pretty;
use crate::beam::term::{self, atom, list};
use eetf::Term;
use std::collections::BTreeSet;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

/// Are call times wanted on this node: the setting when given, else where the node has
/// trace sessions.
pub fn wanted(setting: Option<bool>, node: &NodeInfo) -> bool {
    setting.unwrap_or(node.trace_sessions)
}

/// What call times do on this node, for `orrery/status`.
pub fn status(setting: Option<bool>, node: &NodeInfo) -> &'static str {
    match (wanted(setting, node), node.trace_sessions) {
        (true, true) => "on, in Orrery's own trace session",
        (true, false) => {
            "on without trace sessions (OTP < 27): Orrery is the tracer of the processes \
             that had none, a tracer started later cannot trace those"
        }
        (false, true) => "off (liveCallTime is false)",
        (false, false) => {
            "off: the node has no trace sessions (OTP < 27); liveCallTime: true turns \
             them on, making Orrery the tracer of the processes that have none"
        }
    }
}

/// Count call times for exactly `modules` on node `n` (none: undo everything) and read
/// the times into `snap`.
pub async fn sync(n: &AttachedNode, modules: &BTreeSet<String>, snap: &mut Snapshot) {
    let mods = list(modules.iter().map(|m| term::module(m)).collect());
    let owner = atom(n.conn.local_name());
    match n
        .conn
        .rpc(CALLTIME_MODULE, "sync", vec![mods, owner], T)
        .await
    {
        Ok(reply) => merge(snap, &n.info.name, &reply),
        Err(e) => tracing::debug!("call times on {}: {e}", n.info.name),
    }
}

/// Undo everything on node `n`.
pub async fn stop(n: &AttachedNode) {
    if let Err(e) = n.conn.rpc(CALLTIME_MODULE, "stop", vec![], T).await {
        tracing::debug!("stopping call times on {}: {e}", n.info.name);
    }
}

fn merge(snap: &mut Snapshot, node: &str, reply: &Term) {
    let Term::Map(mods) = reply else { return };
    for (k, v) in &mods.map {
        let (Some(m), Term::Map(funs)) = (term::as_atom(k), v) else {
            continue;
        };
        let entry = snap.times.entry(pretty::module_name(m)).or_default();
        for (fa, t) in &funs.map {
            let (Some([f, a]), Some([c, us])) = (term::as_tuple(fa), term::as_tuple(t)) else {
                continue;
            };
            let (Some(f), Some(a)) = (term::as_atom(f), term::as_int(a)) else {
                continue;
            };
            let calls = term::as_int(c).unwrap_or(0);
            if calls == 0 {
                continue;
            }
            entry.entry(format!("{f}/{a}")).or_default().push((
                node.to_string(),
                calls,
                term::as_int(us).unwrap_or(0),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_by_default_only_with_trace_sessions() {
        let mut info = NodeInfo::default();
        assert!(!wanted(None, &info));
        assert!(wanted(Some(true), &info));
        info.trace_sessions = true;
        assert!(wanted(None, &info));
        assert!(!wanted(Some(false), &info));
        assert!(status(None, &info).starts_with("on, in Orrery's own"));
        info.trace_sessions = false;
        assert!(status(None, &info).contains("no trace sessions"));
    }
}
