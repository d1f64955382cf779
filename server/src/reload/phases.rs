//! The two phases of an all-or-none swap, on one node at a time: `prepare` (the agent
//! loads the module, migrates its processes and holds them suspended), then `finish` with
//! commit (resume on the new code) or abort (previous code and states back, resume).

use super::SWAP_TIMEOUT;
use crate::agent;
use crate::attach::AttachedNode;
use crate::audit;
use crate::beam::term::{self, atom};
use eetf::Term;
use std::path::Path;

pub(super) fn hex(t: &Term) -> String {
    match t {
        Term::Binary(b) => b.bytes.iter().map(|x| format!("{x:02x}")).collect(),
        _ => String::new(),
    }
}

pub(super) fn describe(node: &str, module: &str, reason: &Term) -> String {
    let m = crate::beam::pretty::module_name(module);
    let r = crate::beam::pretty::to_elixir_compact(reason, 300);
    match term::as_tuple(reason).and_then(|t| t.first()).and_then(term::as_atom) {
        Some("old_code_in_use") => format!("{m} not swapped on {node}: {} still on the code it replaced and did not leave it within 3 s (a loop that calls itself locally never does); loading again would kill it. Nothing changed; restart it to swap {m}", procs(reason)),
        Some("loops_in_code") => format!("{m} not swapped on {node}: {} busy running its code and did not leave it within 3 s: a long call, or a loop in {m} (a Task or spawned process that calls itself locally, an acceptor) that new code would never reach, and whose old code would block every later swap. Nothing changed; save again when it is idle, or restart that process", procs(reason)),
        Some("suspend_failed") if hung(reason, 2, "busy") => format!("{m} not swapped on {node}: {} was busy for more than 5 s and could not be held for the swap; nothing changed and it runs on; save again when it is idle", who(reason)),
        Some("suspend_failed") => format!("{m} not swapped on {node}: a process did not suspend ({r}); nothing changed"),
        Some("code_change_failed") if hung(reason, 2, "hung") => format!("{m} not swapped on {node}: code_change/3 did not return within 5 s in {}; that process is still inside it. The previous code is loaded again and its previous state is put back if code_change ever returns", who(reason)),
        Some("code_change_failed") => format!("{m} not swapped on {node}: code_change/3 failed ({r}); the previous code and state were restored"),
        Some("load_failed") => format!("{m} not swapped on {node}: the node refused the code ({r})"),
        _ => format!("{m} not swapped on {node}: {r}"),
    }
}

/// The processes named in a refusal (its third element), e.g. "#PID<0.1.0> (in M.loop/1) is".
fn procs(reason: &Term) -> String {
    let items: Vec<String> = term::as_tuple(reason)
        .and_then(|t| t.get(2))
        .map(term::list_ref)
        .unwrap_or(&[])
        .iter()
        .take(3)
        .map(|e| match term::as_tuple(e) {
            Some([p, mfa]) => format!(
                "{} (in {})",
                crate::beam::pretty::to_elixir_compact(p, 40),
                mfa_text(mfa)
            ),
            _ => crate::beam::pretty::to_elixir_compact(e, 40),
        })
        .collect();
    let n = count(reason);
    match n {
        0 => "a process".into(),
        1 => format!("{} is", items.join(", ")),
        _ if n > items.len() => format!("{} and {} more are", items.join(", "), n - items.len()),
        _ => format!("{} are", items.join(", ")),
    }
}

fn count(reason: &Term) -> usize {
    term::as_tuple(reason)
        .and_then(|t| t.get(2))
        .map(|l| term::list_ref(l).len())
        .unwrap_or(0)
}

fn mfa_text(mfa: &Term) -> String {
    match term::as_tuple(mfa) {
        Some([m, f, a]) => format!(
            "{}.{}/{}",
            crate::beam::pretty::module_name(term::as_atom(m).unwrap_or("?")),
            term::as_atom(f).unwrap_or("?"),
            term::as_int(a).unwrap_or(0)
        ),
        _ => crate::beam::pretty::to_elixir_compact(mfa, 60),
    }
}

fn hung(reason: &Term, at: usize, what: &str) -> bool {
    term::as_tuple(reason)
        .and_then(|t| t.get(at))
        .is_some_and(|a| term::is_atom(a, what))
}

fn who(reason: &Term) -> String {
    term::as_tuple(reason)
        .and_then(|t| t.get(1))
        .map(|p| crate::beam::pretty::to_elixir_compact(p, 60))
        .unwrap_or_else(|| "a process".into())
}

/// One module loaded on one node, its processes still suspended until committed.
pub(super) struct Held {
    pub(super) node: usize,
    pub(super) module: String,
    pub(super) binary: Vec<u8>,
    /// The agent's hold (a pid); None when the agent on the node could not hold (an older
    /// agent shared with another Orrery): then the swap is already committed there.
    pub(super) token: Option<Term>,
    pub(super) prev: Term,
    pub(super) before: String,
    pub(super) after: String,
    pub(super) processes: i64,
    pub(super) migrated: i64,
}

/// Phase one on one node: load `bin` as `module`, migrate, keep the processes suspended.
pub(super) async fn prepare(
    i: usize,
    n: &AttachedNode,
    (module, bin, file): (&str, &[u8], Option<std::path::PathBuf>),
    (previous, was): (Option<&[u8]>, Option<&[u8]>),
    kind: &super::SwapKind,
) -> Result<Held, String> {
    let mut opts = vec![
        ("timeout", term::int(5000)),
        // Held until committed or aborted; aborted by itself after this long or as soon
        // as our connection goes away, so no process stays suspended.
        ("hold", term::int(SWAP_TIMEOUT.as_millis() as i64)),
        ("owner", atom(n.conn.local_name())),
        ("kind", atom(kind.agent_kind())),
    ];
    if let super::SwapKind::Instrument { restore_to } = kind {
        if let Some(b) = restore_to.get(module) {
            opts.push(("restore_to", Term::Binary(eetf::Binary::from(b.clone()))));
        }
    }
    if let Some(p) = previous {
        opts.push(("previous", Term::Binary(eetf::Binary::from(p.to_vec()))));
    }
    if let Some(w) = was {
        // The module's beam as the build had it before Orrery's first save: the code the
        // node runs when it loaded it from there (the agent checks the md5).
        opts.push(("was", Term::Binary(eetf::Binary::from(w.to_vec()))));
    }
    if let Some(f) = file {
        // Where a module new to the node says it comes from (used only for those).
        opts.push(("file", term::charlist(&f.to_string_lossy())));
    }
    let args = vec![
        atom(module),
        Term::Binary(eetf::Binary::from(bin.to_vec())),
        term::map(opts),
    ];
    let r = agent::call_swap(&n.conn, "swap", args, SWAP_TIMEOUT)
        .await
        .map_err(|e| {
            format!(
                "{} not swapped on {}: {e}",
                crate::beam::pretty::module_name(module),
                n.info.name
            )
        })?;
    let Some(info) = agent::ok_value(&r) else {
        return Err(match term::as_tuple(&r) {
            Some([_, reason]) => describe(&n.info.name, module, reason),
            _ => format!("unexpected answer from {}: {r:?}", n.info.name),
        });
    };
    Ok(Held {
        node: i,
        module: module.to_string(),
        binary: bin.to_vec(),
        token: term::get(info, "token")
            .filter(|t| matches!(t, Term::Pid(_)))
            .cloned(),
        prev: term::get(info, "previous").cloned().unwrap_or(atom("nil")),
        before: term::get(info, "md5_before").map(hex).unwrap_or_default(),
        after: term::get(info, "md5_after").map(hex).unwrap_or_default(),
        processes: term::get_int(info, "processes").unwrap_or(0),
        migrated: term::get_int(info, "migrated").unwrap_or(0),
    })
}

/// Phase two on one node: `commit` (resume on the new code) or `abort` (previous code and
/// states back, then resume).
pub(super) async fn finish(n: &AttachedNode, h: &Held, what: &str) -> Result<(), String> {
    match &h.token {
        Some(token) => {
            let r = agent::call_swap(
                &n.conn,
                "swap_finish",
                vec![token.clone(), atom(what)],
                SWAP_TIMEOUT,
            )
            .await
            .map_err(|e| e.to_string())?;
            if term::is_atom(&r, "ok") {
                Ok(())
            } else {
                Err(crate::beam::pretty::to_elixir_compact(&r, 300))
            }
        }
        None if what == "commit" => Ok(()),
        None => {
            // Already committed by an agent that cannot hold: load the previous binary back.
            let Term::Binary(_) = &h.prev else {
                return Err("no previous binary".into());
            };
            let args = vec![
                atom(&h.module),
                h.prev.clone(),
                term::map(vec![("timeout", term::int(5000))]),
            ];
            let r = agent::call_swap(&n.conn, "swap", args, SWAP_TIMEOUT)
                .await
                .map_err(|e| e.to_string())?;
            agent::ok_value(&r)
                .map(|_| ())
                .ok_or_else(|| crate::beam::pretty::to_elixir_compact(&r, 300))
        }
    }
}

/// Abort every held swap, newest first; says which nodes were put back.
pub(super) async fn abort(
    nodes: &[AttachedNode],
    root: Option<&Path>,
    action: &str,
    held: &[Held],
) -> String {
    let mut back = vec![];
    let mut failed = vec![];
    for h in held.iter().rev() {
        let name = &nodes[h.node].info.name;
        match finish(&nodes[h.node], h, "abort").await {
            Ok(()) => {
                if !back.contains(name) {
                    back.push(name.clone());
                }
            }
            Err(e) => failed.push(format!(
                "{} on {name} ({e})",
                crate::beam::pretty::module_name(&h.module)
            )),
        }
        if let Some(root) = root {
            let _ = audit::append(root, &audit::Entry {
                time: audit::now_rfc3339(),
                node: name,
                action,
                target: &h.module,
                before: Some(&h.before),
                after: Some(&h.before),
                detail: Some("aborted: not every node accepted the swap; the previous code and state were put back"),
            });
        }
    }
    if failed.is_empty() {
        format!(
            "nothing changed on {} either (all nodes or none)",
            back.join(", ")
        )
    } else {
        format!("could not put back: {}", failed.join(", "))
    }
}
