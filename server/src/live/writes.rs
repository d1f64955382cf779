//! Changing live state, only when `allowWrites` is on: replace a process's state with an
//! Elixir expression in which `state` is bound, insert or delete ETS rows, send a message,
//! and undo the last of these. Every write is appended to `.orrery/audit.log` (with a
//! backup in Elixir syntax) *before* it is made; an audit log that cannot be written means
//! nothing is changed.
//!
//! Expressions are evaluated on the node (`Code.eval_string`, in a separate process with a
//! timeout) before anything changes, so a syntax error or a raise changes nothing. Running
//! user code on the node is itself a write: an `eval` line with the expression is appended
//! before each evaluation. State
//! replacement is a compare-and-swap inside the process (`:sys.replace_state`): if the
//! state moved between reading it and replacing it, nothing is replaced. The exact previous
//! terms (pids and references included) are kept in memory for `undo`; undo of a state
//! refuses to overwrite a state that changed since the write unless forced.

use super::targets::{self, Target};
use crate::agent;
use crate::attach::{AttachedNode, Session};
use crate::audit;
use crate::beam::depth;
use crate::beam::pretty::{self, Limits};
use crate::beam::term::{self, atom, binary, int, list, tuple};
use eetf::Term;
use serde_json::{json, Value};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// How long an expression may run on the node.
const EVAL_MS: i64 = 5000;
const TIMEOUT: Duration = Duration::from_secs(15);
/// Undo entries kept (oldest dropped first).
const UNDO_DEPTH: usize = 100;

/// Why a write was refused when `allowWrites` is off.
pub const WRITES_OFF: &str = "Orrery does not change this node: `allowWrites` is false \
(the default for nodes on other hosts). To enable writes, set `allowWrites = true` in \
.orrery.toml, or `\"allowWrites\": true` in the `orrery` settings or initializationOptions.";

/// `Err` with [`WRITES_OFF`] unless writes are allowed.
pub fn check_allowed(allowed: bool) -> Result<(), String> {
    if allowed {
        Ok(())
    } else {
        Err(WRITES_OFF.to_string())
    }
}

/// Where a write goes and where it is audited.
pub struct WriteCtx {
    pub session: Session,
    /// Workspace root: the audit log is `<root>/.orrery/audit.log`.
    pub root: PathBuf,
    /// Node name; the primary node when `None`.
    pub node: Option<String>,
}

/// What undo needs to put things back.
#[derive(Debug, Clone)]
enum Backup {
    State {
        target: String,
        pid: Term,
        before: Term,
        after: Term,
    },
    Rows {
        table: String,
        key: Term,
        before: Vec<Term>,
    },
    Sent {
        target: String,
    },
}

#[derive(Debug, Clone)]
struct Done {
    node: String,
    backup: Backup,
}

/// The writes of this server process (one workspace per process), newest last.
static UNDO: Mutex<Vec<Done>> = Mutex::new(Vec::new());

fn push_undo(d: Done) {
    let mut u = UNDO.lock().unwrap_or_else(|e| e.into_inner());
    if u.len() >= UNDO_DEPTH {
        u.remove(0);
    }
    u.push(d);
}

/// A term as Elixir text for the audit log: complete up to 4 MB.
fn backup_text(t: &Term) -> String {
    let (max_items, max_len) = (10_000_000, 4_000_000);
    let limits = Limits {
        max_depth: 100,
        max_items,
        max_len,
        max_binary: max_items,
    };
    pretty::to_elixir(t, &limits)
}

/// A term as a short one-liner for results and the audit's before/after.
fn short(t: &Term) -> String {
    pretty::to_elixir_compact(t, 200)
}

fn show(t: &Term) -> String {
    pretty::to_elixir(t, &Limits::hover())
}

fn pick_node(cx: &WriteCtx) -> Result<AttachedNode, String> {
    let nodes = cx.session.nodes();
    let found = match cx.node.as_deref() {
        None => nodes.into_iter().next(),
        Some(name) => nodes.into_iter().find(|n| n.info.name == name),
    };
    found.ok_or_else(|| match (cx.node.as_deref(), cx.session.primary()) {
        (_, Err(e)) => e.to_string(),
        (Some(name), Ok(_)) => format!("node {name} is not attached"),
        (None, Ok(_)) => "not attached to a node".into(),
    })
}

/// One line of the audit log.
struct Audit<'a> {
    action: &'a str,
    target: &'a str,
    before: Option<String>,
    after: Option<String>,
    detail: String,
}

fn append(root: &Path, node: &str, a: &Audit<'_>) -> Result<(), String> {
    let entry = audit::Entry {
        time: audit::now_rfc3339(),
        node,
        action: a.action,
        target: a.target,
        before: a.before.as_deref(),
        after: a.after.as_deref(),
        detail: Some(&a.detail),
    };
    audit::append(root, &entry).map_err(|e| {
        format!(
            "could not write the audit log {}: {e}; nothing was changed",
            audit::log_path(root).display()
        )
    })
}

/// Append `a` to the audit log, *then* run `act` (nothing runs when the log cannot be
/// written). A failed act gets a second line, `<action>_failed`, with the reason.
async fn audited<T>(
    root: &Path,
    node: &str,
    a: Audit<'_>,
    act: impl Future<Output = Result<T, String>>,
) -> Result<T, String> {
    append(root, node, &a)?;
    let r = act.await;
    if let Err(e) = &r {
        let action = format!("{}_failed", a.action);
        let failed = Audit {
            action: &action,
            target: a.target,
            before: None,
            after: None,
            detail: e.clone(),
        };
        let _ = append(root, node, &failed);
    }
    r
}

async fn rpc(n: &AttachedNode, m: &str, f: &str, args: Vec<Term>) -> Result<Term, String> {
    n.conn
        .rpc(m, f, args, TIMEOUT)
        .await
        .map_err(|e| e.to_string())
}

/// `{ok, V}` → V; `{error, Msg}` → the message.
fn ok_or_message(reply: Term, what: &str) -> Result<Term, String> {
    match term::as_tuple(&reply) {
        Some([ok, v]) if term::is_atom(ok, "ok") => Ok(v.clone()),
        Some([e, msg]) if term::is_atom(e, "error") => Err(format!(
            "{what}: {}",
            term::as_string(msg).unwrap_or_else(|| short(msg))
        )),
        _ => Err(format!("{what}: unexpected answer {}", short(&reply))),
    }
}

/// Audit that `expr` is about to run on the node, for `purpose` on `target`.
fn audit_eval(
    cx: &WriteCtx,
    node: &str,
    purpose: &str,
    target: &str,
    expr: &str,
) -> Result<(), String> {
    let a = Audit {
        action: "eval",
        target,
        before: None,
        after: None,
        detail: format!("evaluating for {purpose}: {expr}"),
    };
    append(&cx.root, node, &a)
}

/// Evaluate an Elixir expression on the node (nothing bound), audited first.
async fn eval(
    cx: &WriteCtx,
    n: &AttachedNode,
    (purpose, target): (&str, &str),
    expr: &str,
    what: &str,
) -> Result<Term, String> {
    audit_eval(cx, &n.info.name, purpose, target, expr)?;
    let args = vec![binary(expr), list(vec![]), int(EVAL_MS)];
    let reply = agent::call(&n.conn, "eval", args, TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    ok_or_message(
        reply,
        &format!("{what} `{expr}` failed, nothing was changed"),
    )
}

/// Replace the state of `target` with the value of `expr` (`state` is bound to the current
/// state).
pub async fn replace_state(cx: &WriteCtx, target: &Target, expr: &str) -> Result<Value, String> {
    let n = pick_node(cx)?;
    let node = n.info.name.clone();
    let who = targets::the_one(&n, target)
        .await
        .map_err(|e| format!("{e}; nothing was changed"))?
        .pid;
    let target = &target.describe();
    let args = vec![who, binary(expr), int(EVAL_MS)];
    audit_eval(cx, &node, "replace_state", target, expr)?;
    let reply = agent::call(&n.conn, "state_for_write", args, TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    let (pid, before, after) = match term::as_tuple(&reply) {
        Some([ok, pid, old, new]) if term::is_atom(ok, "ok") => {
            (pid.clone(), old.clone(), new.clone())
        }
        _ => {
            let e = ok_or_message(reply, &format!("{target} on {node}"))
                .err()
                .unwrap_or_default();
            return Err(format!("{e}; nothing was changed"));
        }
    };
    depth::refuse_cut(&before, target)?;
    depth::refuse_cut(&after, target)?;
    let a = Audit {
        action: "replace_state",
        target,
        before: Some(short(&before)),
        after: Some(short(&after)),
        detail: format!(
            "expression: {expr}\npid: {}\nbackup: {}",
            short(&pid),
            backup_text(&before)
        ),
    };
    audited(&cx.root, &node, a, swap(&n, &pid, Some(&before), &after)).await?;
    let result = json!({
        "node": node,
        "target": target,
        "pid": short(&pid),
        "before": show(&before),
        "after": show(&after),
        "undo": "orrery.undo puts the previous state back",
    });
    let target = target.to_string();
    let backup = Backup::State {
        target,
        pid,
        before,
        after,
    };
    push_undo(Done { node, backup });
    Ok(result)
}

/// Compare-and-swap the state of `pid` (any state when `expect` is None).
async fn swap(
    n: &AttachedNode,
    pid: &Term,
    expect: Option<&Term>,
    new: &Term,
) -> Result<(), String> {
    let expect = match expect {
        Some(e) => tuple(vec![atom("expect"), e.clone()]),
        None => atom("any"),
    };
    let args = vec![pid.clone(), expect, new.clone(), int(EVAL_MS)];
    let r = agent::call(&n.conn, "swap_state", args, TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    match term::as_atom(&r) {
        Some("swapped") => Ok(()),
        Some("changed") => Err(format!(
            "the state of {} changed meanwhile; nothing was replaced (try again)",
            short(pid)
        )),
        _ => Err(ok_or_message(r, "replacing the state failed")
            .err()
            .unwrap_or_default()),
    }
}

/// A table's atom and key position, checked to exist and to be writable by others.
async fn writable_table(n: &AttachedNode, table: &str) -> Result<(Term, i64), String> {
    let name = table.trim().trim_start_matches(':');
    if name.is_empty() {
        return Err("no table given".into());
    }
    let t = atom(name);
    let info = |item: &str| rpc(n, "ets", "info", vec![t.clone(), atom(item)]);
    let protection = info("protection").await?;
    match term::as_atom(&protection) {
        Some("public") => {}
        Some("undefined") => return Err(format!("no ETS table :{name} on {}", n.info.name)),
        Some(p) => {
            let owner = info("owner").await.map(|o| short(&o)).unwrap_or_default();
            return Err(format!(
                "ETS table :{name} is {p}: only its owner {owner} can write it; nothing was changed"
            ));
        }
        None => return Err(format!("ETS table :{name}: unexpected answer")),
    }
    let keypos = info("keypos").await.ok().and_then(|k| term::as_int(&k));
    Ok((t, keypos.unwrap_or(1)))
}

async fn rows_of(n: &AttachedNode, t: &Term, key: &Term) -> Result<Vec<Term>, String> {
    let rows = rpc(n, "ets", "lookup", vec![t.clone(), key.clone()]).await?;
    Ok(term::list_ref(&rows).to_vec())
}

fn rows_text(rows: &[Term]) -> String {
    backup_text(&list(rows.to_vec()))
}

fn rows_json(rows: &[Term]) -> Vec<String> {
    rows.iter().map(show).collect()
}

/// Insert the row that `row_expr` evaluates to (a tuple) into `table`.
pub async fn ets_insert(cx: &WriteCtx, table: &str, row_expr: &str) -> Result<Value, String> {
    let n = pick_node(cx)?;
    let node = n.info.name.clone();
    let (t, keypos) = writable_table(&n, table).await?;
    let row = eval(cx, &n, ("ets_insert", table), row_expr, "the row").await?;
    let key = match term::as_tuple(&row) {
        Some(els) if els.len() as i64 >= keypos => els[keypos as usize - 1].clone(),
        _ => {
            return Err(format!(
                "the row must be a tuple with at least {keypos} element(s), got {}; \
                 nothing was changed",
                short(&row)
            ))
        }
    };
    let before = rows_of(&n, &t, &key).await?;
    let table = format!(":{}", term::as_atom(&t).unwrap_or_default());
    let a = Audit {
        action: "ets_insert",
        target: &table,
        before: Some(short(&list(before.clone()))),
        after: Some(short(&row)),
        detail: format!(
            "row: {}\nkey: {}\nbackup (rows with that key before): {}",
            short(&row),
            short(&key),
            rows_text(&before)
        ),
    };
    let act = rpc(&n, "ets", "insert", vec![t.clone(), row.clone()]);
    audited(&cx.root, &node, a, act).await?;
    let result = json!({
        "node": node,
        "table": table,
        "inserted": show(&row),
        "replaced": rows_json(&before),
        "undo": "orrery.undo puts the previous rows with that key back",
    });
    let backup = Backup::Rows { table, key, before };
    push_undo(Done { node, backup });
    Ok(result)
}

/// Delete the rows whose key is the value of `key_expr` from `table`.
pub async fn ets_delete(cx: &WriteCtx, table: &str, key_expr: &str) -> Result<Value, String> {
    let n = pick_node(cx)?;
    let node = n.info.name.clone();
    let (t, _) = writable_table(&n, table).await?;
    let key = eval(cx, &n, ("ets_delete", table), key_expr, "the key").await?;
    let table = format!(":{}", term::as_atom(&t).unwrap_or_default());
    let before = rows_of(&n, &t, &key).await?;
    if before.is_empty() {
        return Err(format!(
            "no row with key {} in {table}; nothing was changed",
            short(&key)
        ));
    }
    let a = Audit {
        action: "ets_delete",
        target: &table,
        before: Some(short(&list(before.clone()))),
        after: Some("[]".into()),
        detail: format!(
            "key: {}\nbackup (deleted rows): {}",
            short(&key),
            rows_text(&before)
        ),
    };
    let act = rpc(&n, "ets", "delete", vec![t.clone(), key.clone()]);
    audited(&cx.root, &node, a, act).await?;
    let result = json!({
        "node": node,
        "table": table,
        "deleted": rows_json(&before),
        "undo": "orrery.undo puts the deleted rows back",
    });
    let backup = Backup::Rows { table, key, before };
    push_undo(Done { node, backup });
    Ok(result)
}

/// Send the value of `msg_expr` to `target`.
pub async fn send_message(cx: &WriteCtx, target: &Target, msg_expr: &str) -> Result<Value, String> {
    let n = pick_node(cx)?;
    let node = n.info.name.clone();
    let pid = targets::the_one(&n, target)
        .await
        .map_err(|e| format!("{e}; nothing was sent"))?
        .pid;
    let target = &target.describe();
    let msg = eval(cx, &n, ("send", target), msg_expr, "the message").await?;
    let a = Audit {
        action: "send",
        target,
        before: None,
        after: Some(short(&msg)),
        detail: format!(
            "message: {}\npid: {}\n(a sent message cannot be undone)",
            backup_text(&msg),
            short(&pid)
        ),
    };
    let act = rpc(&n, "erlang", "send", vec![pid.clone(), msg.clone()]);
    audited(&cx.root, &node, a, act).await?;
    let result = json!({"node": node, "target": target, "pid": short(&pid), "sent": show(&msg)});
    let backup = Backup::Sent {
        target: target.to_string(),
    };
    push_undo(Done { node, backup });
    Ok(result)
}

/// Undo the last write of this session. A state that changed since the write is only
/// overwritten with `force`.
pub async fn undo(cx: &WriteCtx, force: bool) -> Result<Value, String> {
    let last = UNDO
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .last()
        .cloned()
        .ok_or_else(|| "nothing to undo: no write was made in this session".to_string())?;
    let pop = || {
        UNDO.lock().unwrap_or_else(|e| e.into_inner()).pop();
    };
    let nodes = cx.session.nodes();
    let Some(n) = nodes.iter().find(|n| n.info.name == last.node) else {
        return Err(format!(
            "the last write went to {}, which is not attached now",
            last.node
        ));
    };
    let node = &last.node;
    match &last.backup {
        Backup::Sent { target } => {
            pop();
            Err(format!(
                "the last write was a message sent to {target}: a sent message cannot be taken \
                 back. It is off the undo list now; undo again to undo the write before it"
            ))
        }
        Backup::State {
            target,
            pid,
            before,
            after,
        } => {
            let a = Audit {
                action: "undo_replace_state",
                target,
                before: Some(short(after)),
                after: Some(short(before)),
                detail: format!(
                    "undo of replace_state{}\npid: {}\nbackup: {}",
                    if force { " (forced)" } else { "" },
                    short(pid),
                    backup_text(after)
                ),
            };
            let expect = (!force).then_some(after);
            let done = audited(&cx.root, node, a, swap(n, pid, expect, before)).await;
            if let Err(e) = done {
                return Err(if e.contains("changed meanwhile") {
                    format!(
                        "the state of {target} changed since the write, so undo did not \
                         overwrite it; run orrery.undo with {{\"force\": true}} to put the \
                         backup back anyway"
                    )
                } else {
                    e
                });
            }
            pop();
            Ok(
                json!({"node": node, "undone": "replace_state", "target": target, "state": show(before)}),
            )
        }
        Backup::Rows { table, key, before } => {
            let a = Audit {
                action: "undo_ets",
                target: table,
                before: None,
                after: Some(short(&list(before.clone()))),
                detail: format!(
                    "undo: put back the rows with key {}\nrows: {}",
                    short(key),
                    rows_text(before)
                ),
            };
            let t = atom(table.trim_start_matches(':'));
            let args = vec![t, key.clone(), list(before.clone())];
            let act = async {
                agent::call(&n.conn, "ets_restore", args, TIMEOUT)
                    .await
                    .map_err(|e| e.to_string())
            };
            audited(&cx.root, node, a, act).await?;
            pop();
            Ok(json!({"node": node, "undone": "ets", "table": table, "rows": rows_json(before)}))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_when_writes_are_off() {
        let e = check_allowed(false).unwrap_err();
        assert!(e.contains("allowWrites"), "{e}");
        assert!(check_allowed(true).is_ok());
    }

    #[test]
    fn backups_are_complete_elixir() {
        let big = list((0..5000).map(int).collect());
        let text = backup_text(&big);
        assert!(text.contains("4999"), "backup was cut");
        assert!(!text.contains('…'));
    }
}
