//! Mean call times, behind the `liveCallTime` setting (off by default). `call_time` only
//! counts for processes carrying the `call` trace flag, and a process has one tracer at
//! most, so switching it on makes the agent's sink (`orrery_calltime_v1`) the tracer of
//! every process that has none: a tracer the user starts later cannot trace those. Off
//! again (and everything undone) when the setting is turned off, when the documents close
//! and at detach.

use super::Snapshot;
use crate::agent::CALLTIME_MODULE;
use crate::attach::Session;
use crate::beam::pretty;
use crate::beam::term::{self, atom, list};
use eetf::Term;
use std::collections::BTreeSet;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

/// Count call times for exactly `modules` on every node (none: undo everything) and read
/// the times into `snap`.
pub async fn sync(session: &Session, modules: &BTreeSet<String>, snap: &mut Snapshot) {
    for n in session.nodes() {
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
}

/// Undo everything on every node.
pub async fn stop(session: &Session) {
    for n in session.nodes() {
        if let Err(e) = n.conn.rpc(CALLTIME_MODULE, "stop", vec![], T).await {
            tracing::debug!("stopping call times on {}: {e}", n.info.name);
        }
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
