//! Processes found through the names written in a module's code: `{:global, name}`,
//! `{:via, Mod, name}` (a `Registry` included) resolved like `GenServer.whereis/1`, and,
//! for a Registry whose key is computed, the processes of that registry running the
//! module. The agent (`orrery_names_v1`) does the lookups; this builds the query and
//! reads the answer into the snapshot.

use super::{proc_on_node, ProcOnNode, RegistryProcs, Snapshot};
use crate::beam::pretty;
use crate::beam::term::{self, atom, binary, int, list, tuple};
use crate::workspace::index::{Lit, NameDef, ProcName};
use eetf::Term;
use std::collections::BTreeMap;

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

/// The agent's spec for one name.
pub fn spec(name: &ProcName, registers: bool) -> Term {
    match name {
        ProcName::Global(n) => tuple(vec![atom("global"), lit_term(n), bool_term(registers)]),
        ProcName::Via { module, name } => tuple(vec![
            atom("via"),
            atom(module),
            lit_term(name),
            bool_term(registers),
        ]),
        ProcName::RegistryAny { registry, key } => tuple(vec![
            atom("registry_any"),
            atom(registry),
            int(REGISTRY_ITEMS),
            key.as_ref().map(lit_term).unwrap_or(atom("_")),
        ]),
    }
}

/// The `named` query: `[{Module, [Spec]}]`.
pub fn query(names: &BTreeMap<String, Vec<NameDef>>) -> Term {
    list(
        names
            .iter()
            .filter(|(_, n)| !n.is_empty())
            .map(|(m, defs)| {
                tuple(vec![
                    term::module(m),
                    list(defs.iter().map(|d| spec(&d.name, d.registers)).collect()),
                ])
            })
            .collect(),
    )
}

/// Read the agent's answer for one node into `snap`.
pub fn merge(
    snap: &mut Snapshot,
    node: &str,
    names: &BTreeMap<String, Vec<NameDef>>,
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
        for (def, r) in defs.iter().zip(term::list_ref(results)) {
            if term::is_atom(r, "nil") || term::as_tuple(r).is_some() {
                continue;
            }
            let label = def.name.elixir();
            if let ProcName::RegistryAny { .. } = def.name {
                let items = term::get(r, "items")
                    .map(term::list_ref)
                    .unwrap_or(&[])
                    .iter()
                    .filter_map(|i| {
                        let info = term::get(i, "info").filter(|v| !term::is_atom(v, "nil"))?;
                        let p = proc_on_node(node, info);
                        let key = term::get(i, "key")
                            .map(|k| pretty::to_elixir_compact(k, 40))
                            .unwrap_or_default();
                        Some((key, p))
                    })
                    .collect();
                snap.registries
                    .entry(m.clone())
                    .or_default()
                    .push(RegistryProcs {
                        node: node.to_string(),
                        name: label,
                        count: term::get_int(r, "count").unwrap_or(0),
                        items,
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
