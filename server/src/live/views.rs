//! Data for editor views: processes, full state, ETS tables, supervision trees.
//! Answers are JSON with terms already rendered in Elixir syntax.

use super::targets::{self, Target};
use crate::agent;
use crate::attach::Session;
use crate::beam::pretty::{self, Limits};
use crate::beam::term::{self, atom, int, list, map};
use eetf::Term;
use serde_json::{json, Value};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);

fn show(t: &Term) -> String {
    pretty::to_elixir_compact(t, 200)
}

/// Processes listed per node by `orrery/state` for a module with several.
const STATE_MAX: i64 = 20;

/// The full state of the processes `target` names (per node), pretty-printed with
/// generous limits.
pub async fn state(session: &Session, target: &Target) -> Result<Value, String> {
    let nodes = session.nodes();
    if nodes.is_empty() {
        return Err(session
            .primary()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default());
    }
    // A LiveView module: its connected views, `socket.assigns` as the state.
    let text = target.text.trim();
    if target.key.is_none() && text.starts_with(|c: char| c.is_ascii_uppercase()) {
        if let Some(r) = super::phoenix::view_states(session, text).await {
            return r;
        }
    }
    let mut out = vec![];
    let mut total = 0;
    for n in nodes {
        let limits = agent::limits(12, 200, 4096, 50_000);
        let set = targets::find(&n, target, STATE_MAX, limits).await?;
        total += set.count;
        for f in set.items {
            let info = &f.info;
            let state = term::get(info, "state").and_then(agent::ok_value);
            out.push(json!({
                "node": n.info.name,
                "pid": show(&f.pid),
                "name": f.name,
                "state": state.map(|s| pretty::to_elixir(s, &Limits { max_depth: 12, max_items: 200, max_len: 200_000, max_binary: 4096 })),
                "stateAvailable": state.is_some(),
                "messageQueueLen": term::get_int(info, "message_queue_len"),
                "memory": term::get_int(info, "memory"),
                "reductions": term::get_int(info, "reductions"),
            }));
        }
    }
    if out.is_empty() {
        return Err(format!(
            "no process {} on any attached node",
            target.describe()
        ));
    }
    Ok(json!({ "target": target.describe(), "count": total, "processes": out }))
}

/// A page of processes, sorted by `memory`, `reductions` or `message_queue_len`.
pub async fn processes(
    session: &Session,
    sort: &str,
    offset: i64,
    limit: i64,
) -> Result<Value, String> {
    let sort = match sort {
        "reductions" => "reductions",
        "queue" | "message_queue_len" => "message_queue_len",
        _ => "memory",
    };
    let opts = map(vec![
        ("sort", atom(sort)),
        ("offset", int(offset.max(0))),
        ("limit", int(limit.clamp(1, 1000))),
    ]);
    let mut nodes = vec![];
    for n in session.nodes() {
        let page = agent::call_views(&n.conn, "processes", vec![opts.clone()], TIMEOUT)
            .await
            .map_err(|e| e.to_string())?;
        let items: Vec<Value> = term::get(&page, "items")
            .map(term::list_ref)
            .unwrap_or(&[])
            .iter()
            .map(|p| {
                json!({
                    "pid": term::get(p, "pid").map(show),
                    "name": term::get(p, "registered_name").filter(|n| !matches!(n, Term::List(l) if l.elements.is_empty())).map(|n| pretty::module_name(term::as_atom(n).unwrap_or(""))),
                    "module": term::get(p, "module").and_then(term::as_atom).map(pretty::module_name),
                    "memory": term::get_int(p, "memory"),
                    "reductions": term::get_int(p, "reductions"),
                    "messageQueueLen": term::get_int(p, "message_queue_len"),
                    "currentFunction": term::get(p, "current_function").map(show),
                })
            })
            .collect();
        nodes.push(json!({
            "node": n.info.name,
            "total": term::get_int(&page, "total"),
            "items": items,
        }));
    }
    Ok(json!({ "sort": sort, "offset": offset, "nodes": nodes }))
}

/// Tables listed per node when no table is given.
const ETS_ALL_MAX: i64 = 500;

/// The atom a table name means: `:kv_table` and `kv_table` are `kv_table`, an alias
/// `GameOfLife.CellRegistry` is `Elixir.GameOfLife.CellRegistry`.
pub fn table_atom(name: &str) -> String {
    let t = name.trim();
    if let Some(a) = t.strip_prefix(':') {
        return a.trim_matches('"').to_string();
    }
    if t.starts_with("Elixir.") || !t.starts_with(|c: char| c.is_ascii_uppercase()) {
        return t.to_string();
    }
    format!("Elixir.{t}")
}

/// ETS tables by name (`:kv_table`, `kv_table`, an alias), with info and first rows; a
/// name that is no table on any attached node is an error. No names: every table of
/// each node (biggest first, at most 500 per node), without rows.
pub async fn ets(session: &Session, tables: &[String], rows: i64) -> Result<Value, String> {
    if tables.is_empty() {
        return ets_all(session).await;
    }
    let atoms: Vec<String> = tables.iter().map(|t| table_atom(t)).collect();
    let names: Vec<Term> = atoms.iter().map(|a| term::binary(a)).collect();
    let limits = map(vec![
        ("rows", int(rows.clamp(0, 100))),
        ("depth", int(8)),
        ("items", int(50)),
        ("binary", int(512)),
        ("budget", int(10_000)),
    ]);
    let mut out = vec![];
    let mut seen = vec![false; atoms.len()];
    for n in session.nodes() {
        let reply = agent::call_views(
            &n.conn,
            "ets_named",
            vec![list(names.clone()), limits.clone()],
            TIMEOUT,
        )
        .await
        .map_err(|e| e.to_string())?;
        for (i, info) in term::list_ref(&reply).iter().enumerate() {
            let Some(a) = atoms.get(i).filter(|_| !term::is_atom(info, "nil")) else {
                continue;
            };
            seen[i] = true;
            out.push(json!({
                "node": n.info.name,
                "table": pretty::atom_to_elixir(a),
                "type": term::get(info, "type").and_then(term::as_atom),
                "size": term::get_int(info, "size"),
                "memory": term::get_int(info, "memory"),
                "owner": term::get(info, "owner").map(show),
                "protection": term::get(info, "protection").and_then(term::as_atom),
                "rows": term::get(info, "rows").map(|r| pretty::to_elixir(r, &Limits::hover())),
            }));
        }
    }
    let missing: Vec<String> = atoms
        .iter()
        .zip(&seen)
        .filter(|(_, s)| !**s)
        .map(|(a, _)| pretty::atom_to_elixir(a))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "no ETS table named {} on any attached node (orrery/ets without a table lists              every table)",
            missing.join(", ")
        ));
    }
    Ok(json!({ "tables": out }))
}

/// Every table of every node.
async fn ets_all(session: &Session) -> Result<Value, String> {
    let mut tables = vec![];
    let mut nodes = vec![];
    for n in session.nodes() {
        let reply = agent::call_views(&n.conn, "ets_all", vec![int(ETS_ALL_MAX)], TIMEOUT)
            .await
            .map_err(|e| e.to_string())?;
        let listed = term::get(&reply, "tables")
            .map(term::list_ref)
            .unwrap_or(&[]);
        for t in listed {
            let named = term::get(t, "named").is_some_and(|v| term::is_atom(v, "true"));
            let name = term::get(t, "name").and_then(term::as_atom);
            let table = match (named, name) {
                (true, Some(a)) => pretty::atom_to_elixir(a),
                _ => term::get(t, "id").map(show).unwrap_or_default(),
            };
            tables.push(json!({
                "node": n.info.name,
                "table": table,
                "name": name.map(pretty::atom_to_elixir),
                "named": named,
                "type": term::get(t, "type").and_then(term::as_atom),
                "size": term::get_int(t, "size"),
                "memory": term::get_int(t, "memory"),
                "owner": term::get(t, "owner").map(show),
                "ownerName": something(term::get(t, "owner_name")).map(label),
                "protection": term::get(t, "protection").and_then(term::as_atom),
            }));
        }
        nodes.push(json!({
            "node": n.info.name,
            "total": term::get_int(&reply, "total"),
            "shown": listed.len(),
        }));
    }
    Ok(json!({ "tables": tables, "nodes": nodes }))
}

/// `nil`/`undefined` (nothing) as `None`.
fn something(t: Option<&Term>) -> Option<&Term> {
    t.filter(|v| !term::is_atom(v, "nil") && !term::is_atom(v, "undefined"))
}

fn label(n: &Term) -> String {
    match term::as_atom(n) {
        Some(a) => pretty::module_name(a),
        None => show(n),
    }
}

/// A supervision tree node: `name` is the registered name, the id, the Registry key of a
/// dynamic child, or its module; a group of identical siblings is `"5 × Mod"`.
fn tree_json(t: &Term) -> Value {
    let children: Vec<Value> = term::get(t, "children")
        .map(term::list_ref)
        .unwrap_or(&[])
        .iter()
        .map(tree_json)
        .collect();
    let module = term::get(t, "module")
        .and_then(term::as_atom)
        .map(pretty::module_name);
    let group = term::get(t, "group").is_some_and(|g| term::is_atom(g, "true"));
    let count = term::get_int(t, "count");
    let name = if group {
        Some(format!(
            "{} × {}",
            count.unwrap_or(0),
            module.as_deref().unwrap_or("?")
        ))
    } else {
        term::get(t, "name").map(label)
    };
    let mut v = json!({
        "name": name,
        "pid": term::get(t, "pid").map(show),
        "type": term::get(t, "type").and_then(term::as_atom),
        "module": module,
        "childCount": term::get_int(t, "child_count"),
        "children": children,
    });
    if let Some(id) = something(term::get(t, "id")) {
        v["id"] = json!(label(id));
    }
    if let Some(key) = something(term::get(t, "key")) {
        v["key"] = json!(show(key));
        v["registry"] = json!(something(term::get(t, "registry")).map(label));
    }
    if group {
        let list = |k: &str| -> Vec<String> {
            term::get(t, k)
                .map(term::list_ref)
                .unwrap_or(&[])
                .iter()
                .map(label)
                .collect()
        };
        v["group"] = json!(true);
        v["count"] = json!(count);
        v["pids"] = json!(list("pids"));
        v["ids"] = json!(list("ids"));
    }
    v
}

/// Supervision trees per application and node.
pub async fn supervision_tree(session: &Session) -> Result<Value, String> {
    let mut out = vec![];
    for n in session.nodes() {
        let limits = map(vec![("depth", int(6)), ("items", int(100))]);
        let apps = agent::call_views(&n.conn, "sup_tree", vec![limits], TIMEOUT)
            .await
            .map_err(|e| e.to_string())?;
        let apps: Vec<Value> = term::list_ref(&apps)
            .iter()
            .filter_map(|a| match term::as_tuple(a) {
                Some([app, tree]) => Some(json!({
                    "application": term::as_atom(app),
                    "tree": tree_json(tree),
                })),
                _ => None,
            })
            .collect();
        out.push(json!({ "node": n.info.name, "applications": apps }));
    }
    Ok(json!({ "nodes": out }))
}
