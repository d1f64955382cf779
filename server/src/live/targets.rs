//! Which processes a request means: a pid (`#PID<0.1.0>`), a registered name
//! (`:cache`, whatever runs it) or module (`KV.Bucket`), a name tuple with literal parts (`{:via, Registry, {Reg, "k"}}`), or a
//! module and a key among its named processes (`Todo.Server` + `"bob"`: the Registry key
//! `{Todo.Server, "bob"}` or any key holding it). A module without a registered process
//! of its own means the processes found through the names in its code and, at run time,
//! the processes running it. Shared by `orrery/state` and the writes; only reads.

use super::named;
use crate::agent;
use crate::attach::AttachedNode;
use crate::beam::pretty;
use crate::beam::term::{self, atom, charlist, int, list, tuple};
use crate::workspace::index::{self, NameDef, ProcName};
use eetf::Term;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);

/// A target as the user gave it, with the module's names from the index.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// `KV.Bucket`, `:name`, `#PID<0.1.0>`, `{:via, Registry, {Reg, key}}`.
    pub text: String,
    /// A key among the module's named processes, as an Elixir literal (`{1, 2}`).
    pub key: Option<String>,
    /// The process names of the module `text` names (from the workspace index).
    pub names: Vec<NameDef>,
}

impl Target {
    /// Just a text (no key, no names).
    pub fn new(text: &str) -> Target {
        Target {
            text: text.trim().to_string(),
            ..Default::default()
        }
    }

    /// How the target reads in messages and the audit log: `Todo.Server "bob"`.
    pub fn describe(&self) -> String {
        match &self.key {
            Some(k) => format!("{} {}", self.text, k.trim()),
            None => self.text.clone(),
        }
    }
}

/// A process a target names on one node.
#[derive(Debug, Clone)]
pub struct Found {
    pub pid: Term,
    /// The name it has (`{:via, Registry, {Reg, key}}`, `KV.Bucket`), in Elixir syntax.
    pub name: Option<String>,
    /// The agent's `pid_info` (state included when asked for).
    pub info: Term,
}

/// What `find` found: the first processes (at most `max`) and how many there are.
#[derive(Debug, Clone, Default)]
pub struct FoundSet {
    pub items: Vec<Found>,
    pub count: i64,
}

fn found(info: Term, name: Option<String>) -> Option<Found> {
    if term::is_atom(&info, "nil") {
        return None;
    }
    let pid = term::get(&info, "pid").cloned()?;
    Some(Found { pid, name, info })
}

fn one(f: Option<Found>) -> FoundSet {
    let items: Vec<Found> = f.into_iter().collect();
    FoundSet {
        count: items.len() as i64,
        items,
    }
}

async fn rpc(n: &AttachedNode, m: &str, f: &str, args: Vec<Term>) -> Result<Term, String> {
    n.conn
        .rpc(m, f, args, TIMEOUT)
        .await
        .map_err(|e| e.to_string())
}

/// The processes `t` names on node `n`, with `limits` for their `pid_info`.
pub async fn find(
    n: &AttachedNode,
    t: &Target,
    max: i64,
    limits: Term,
) -> Result<FoundSet, String> {
    let text = t.text.trim();
    if text.is_empty() {
        return Err("no process given: pass a module, a registered name or a pid".into());
    }
    if let Some(inner) = text
        .strip_prefix("#PID")
        .or_else(|| text.starts_with('<').then_some(text))
    {
        let pid = rpc(n, "erlang", "list_to_pid", vec![charlist(inner)])
            .await
            .map_err(|_| format!("{text} is not a pid on {}", n.info.name))?;
        let info = agent::call(&n.conn, "pid_info", vec![pid, limits], TIMEOUT)
            .await
            .map_err(|e| e.to_string())?;
        return Ok(one(found(info, None)));
    }
    if text.starts_with('{') {
        let spec = match index::parse_proc_name(text) {
            Some(name @ (ProcName::Global(_) | ProcName::Via { .. })) => {
                named::spec(&name, true, "")
            }
            _ => {
                return Err(format!(
                    "{text} is not a process name with literal parts ({{:global, name}}, \
                     {{:via, Module, name}}); for a module's processes pass the module and a key"
                ))
            }
        };
        let q = list(vec![tuple(vec![atom("nil"), list(vec![spec])])]);
        let r = rpc(n, agent::NAMES_MODULE, "lookup", vec![q, limits]).await?;
        let info = term::get(&r, "nil")
            .and_then(|r| term::list_ref(r).first().cloned())
            .filter(|r| term::as_tuple(r).is_none())
            .unwrap_or(atom("nil"));
        return Ok(one(found(info, Some(text.to_string()))));
    }
    let name = term::module_atom(text);
    if text.starts_with(':') && t.key.is_none() {
        // A registered name: the process under it, whatever it runs.
        let pid = rpc(n, "erlang", "whereis", vec![atom(&name)]).await?;
        if !matches!(pid, Term::Pid(_)) {
            return Ok(FoundSet::default());
        }
        let info = agent::call(&n.conn, "pid_info", vec![pid, limits], TIMEOUT)
            .await
            .map_err(|e| e.to_string())?;
        return Ok(one(found(info, Some(text.to_string()))));
    }
    let key = match t.key.as_deref().map(str::trim).filter(|k| !k.is_empty()) {
        Some(k) => Some(
            index::parse_literal(k)
                .map(|l| named::lit_term(&l))
                .ok_or_else(|| {
                    format!("the key {k} is not a literal (such as {{1, 2}}, \"bob\" or :a)")
                })?,
        ),
        None => None,
    };
    if key.is_none() {
        // Registered under the name, running that module (not a Registry named like it).
        let r = agent::call(
            &n.conn,
            "names",
            vec![list(vec![atom(&name)]), limits.clone()],
            TIMEOUT,
        )
        .await
        .map_err(|e| e.to_string())?;
        let info = term::get(&r, &name).cloned().unwrap_or(atom("nil"));
        if term::get(&info, "runs").is_none() {
            if let Some(f) = found(info, Some(pretty::module_name(&name))) {
                return Ok(one(Some(f)));
            }
        }
    }
    let filter = match key {
        Some(k) => tuple(vec![atom("key"), k]),
        None => atom("any"),
    };
    let args = vec![
        atom(&name),
        named::specs(text, &t.names),
        filter,
        int(max),
        limits,
    ];
    let r = rpc(n, agent::NAMES_MODULE, "find", args).await?;
    let items = term::get(&r, "items")
        .map(term::list_ref)
        .unwrap_or(&[])
        .iter()
        .filter_map(|i| {
            let shown = term::get(i, "name")
                .filter(|n| !matches!(n, Term::Pid(_)) && !term::is_atom(n, "nil"))
                .map(|n| pretty::to_elixir_line(n, &named::KEY_LIMITS));
            found(term::get(i, "info").cloned()?, shown)
        })
        .collect();
    Ok(FoundSet {
        items,
        count: term::get_int(&r, "count").unwrap_or(0),
    })
}

/// The one process `t` names on `n` (for writes): an error says what else to give when
/// it names none or several.
pub async fn the_one(n: &AttachedNode, t: &Target) -> Result<Found, String> {
    let limits = agent::limits(4, 10, 60, 200);
    let limits = match limits {
        Term::Map(mut m) => {
            m.map.insert(atom("state"), atom("false"));
            Term::Map(m)
        }
        l => l,
    };
    let set = find(n, t, 5, limits).await?;
    let node = &n.info.name;
    match set.items.as_slice() {
        [one] if set.count == 1 => Ok(one.clone()),
        [] => Err(format!("no such process {} on {node}", t.describe())),
        some => {
            let names: Vec<String> = some
                .iter()
                .map(|f| {
                    f.name
                        .clone()
                        .unwrap_or_else(|| pretty::to_elixir_compact(&f.pid, 40))
                })
                .collect();
            Err(format!(
                "{} names {} processes on {node} ({}{}): pass a key or a pid",
                t.describe(),
                set.count,
                names.join(", "),
                if set.count > some.len() as i64 {
                    ", …"
                } else {
                    ""
                }
            ))
        }
    }
}
