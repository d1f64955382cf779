//! Processes found through the names written in a module's code: `{:global, name}`,
//! `{:via, Mod, name}` (a `Registry` included) resolved like `GenServer.whereis/1`, and,
//! for a Registry whose key is computed, the processes of that registry running the
//! module (every key for the registry's own module), and for names the code does not
//! tell, the module's processes with the names they have on the node. The agent
//! (`orrery_names_v1`) does the lookups; this builds the query and reads the answer into
//! the snapshot.

use super::{proc_on_node, ProcOnNode, RegistryProcs, Snapshot};
use crate::beam::pretty;
use crate::beam::term::{self, atom, binary, int, list, tuple};
use crate::workspace::index::{Lit, NameDef, ProcName};
use eetf::Term;
use std::collections::BTreeMap;

/// How keys and names are shown: whole names are five levels deep.
pub(crate) const KEY_LIMITS: pretty::Limits = pretty::Limits {
    max_depth: 7,
    max_items: 10,
    max_len: 100,
    max_binary: 60,
};

/// Processes of a registry listed per module.
const REGISTRY_ITEMS: i64 = 5;

/// A literal as a term.
pub fn lit_term(l: &Lit) -> Term {
    match l {
        Lit::Atom(a) => atom(a),
        Lit::Str(s) => binary(s),
        Lit::Int(i) => int(*i),
        Lit::Tuple(items) => tuple(items.iter().map(lit_term).collect()),
    }
}

fn bool_term(b: bool) -> Term {
    atom(if b { "true" } else { "false" })
}

/// The agent's spec for one name of `module` (Erlang atom text).
pub fn spec(name: &ProcName, registers: bool, module: &str) -> Term {
    match name {
        ProcName::Global(n) => tuple(vec![atom("global"), lit_term(n), bool_term(registers)]),
        ProcName::Via { module, name } => tuple(vec![
            atom("via"),
            atom(module),
            lit_term(name),
            bool_term(registers),
        ]),
        // The registry's own module with a wholly computed key (its `via_tuple/1`
        // helper): every key counts.
        ProcName::RegistryAny { registry, key } => tuple(vec![
            atom("registry_any"),
            atom(registry),
            int(REGISTRY_ITEMS),
            key.as_ref().map(lit_term).unwrap_or(atom("_")),
            bool_term(registry == module && key.is_none()),
        ]),
        ProcName::Runtime => tuple(vec![atom("runtime"), int(REGISTRY_ITEMS)]),
    }
}

/// The names sent for a module: run-time lookups (a walk over every process) only when
/// processes are counted too.
fn sent(defs: &[NameDef], runtime: bool) -> impl Iterator<Item = &NameDef> {
    defs.iter()
        .filter(move |d| runtime || d.name != ProcName::Runtime)
}

/// The `named` query: `[{Module, [Spec]}]`.
pub fn query(names: &BTreeMap<String, Vec<NameDef>>, runtime: bool) -> Term {
    list(
        names
            .iter()
            .filter(|(_, n)| !n.is_empty())
            .map(|(m, defs)| {
                let module = term::module_atom(m);
                tuple(vec![
                    term::module(m),
                    list(
                        sent(defs, runtime)
                            .map(|d| spec(&d.name, d.registers, &module))
                            .collect(),
                    ),
                ])
            })
            .collect(),
    )
}

/// The specs of every name of `module`, for one lookup of its processes.
pub fn specs(module: &str, defs: &[NameDef]) -> Term {
    let m = term::module_atom(module);
    list(
        sent(defs, false)
            .map(|d| spec(&d.name, d.registers, &m))
            .collect(),
    )
}

/// A `#{count, items}` answer: (shown key, process) per item.
pub fn items(node: &str, r: &Term, runs_shown: bool) -> Vec<(String, ProcOnNode)> {
    term::get(r, "items")
        .map(term::list_ref)
        .unwrap_or(&[])
        .iter()
        .filter_map(|i| {
            let info = term::get(i, "info").filter(|v| !term::is_atom(v, "nil"))?;
            let mut p = proc_on_node(node, info);
            if runs_shown {
                p.runs = term::get(i, "runs")
                    .and_then(term::as_atom)
                    .map(pretty::module_name);
            }
            let key = term::get(i, "key")
                .filter(|k| !term::is_atom(k, "nil"))
                .map(|k| pretty::to_elixir_line(k, &KEY_LIMITS))
                .unwrap_or_default();
            Some((key, p))
        })
        .collect()
}

/// Read the agent's answer for one node into `snap`.
pub fn merge(
    snap: &mut Snapshot,
    node: &str,
    names: &BTreeMap<String, Vec<NameDef>>,
    runtime: bool,
    reply: Option<&Term>,
) {
    let Some(Term::Map(by_module)) = reply else {
        return;
    };
    for (k, results) in &by_module.map {
        let Some(m) = term::as_atom(k).map(pretty::module_name) else {
            continue;
        };
        let Some(defs) = names.get(&m) else { continue };
        for (def, r) in sent(defs, runtime).zip(term::list_ref(results)) {
            if term::is_atom(r, "nil") || term::as_tuple(r).is_some() {
                continue;
            }
            let label = def.name.elixir();
            if let ProcName::RegistryAny { .. } | ProcName::Runtime = def.name {
                let all = matches!(&def.name, ProcName::RegistryAny { registry, key: None }
                    if *registry == term::module_atom(&m));
                let runtime = def.name == ProcName::Runtime;
                snap.registries
                    .entry(m.clone())
                    .or_default()
                    .push(RegistryProcs {
                        node: node.to_string(),
                        name: label,
                        count: term::get_int(r, "count").unwrap_or(0),
                        items: items(node, r, all),
                        all,
                        runtime,
                    });
            } else {
                let p = ProcOnNode {
                    label: Some(label),
                    ..proc_on_node(node, r)
                };
                let procs = snap.procs.entry(m.clone()).or_default();
                // The same process under two names (or also under its module): once.
                if !procs.iter().any(|q| q.node == p.node && q.pid == p.pid) {
                    procs.push(p);
                }
            }
        }
    }
}
