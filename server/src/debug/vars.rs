//! Variables for the debugger: terms shown in Elixir syntax, with structured, paged
//! expansion of lists, tuples, maps and structs through variables references.

use crate::beam::pretty;
use crate::beam::term;
use eetf::Term;
use std::collections::HashMap;

/// One variable as the client shows it.
#[derive(Debug, Clone)]
pub struct Var {
    pub name: String,
    pub value: String,
    pub kind: String,
    /// 0 when the value has no children.
    pub reference: i64,
    pub indexed: usize,
    pub named: usize,
}

/// References handed out while a process is paused (cleared on resume).
#[derive(Default)]
pub struct VarStore {
    next: i64,
    refs: HashMap<i64, Vec<(String, Term)>>,
}

fn kind(t: &Term) -> &'static str {
    match t {
        Term::Atom(_) => "atom",
        Term::FixInteger(_) | Term::BigInteger(_) => "integer",
        Term::Float(_) => "float",
        Term::Binary(_) | Term::BitBinary(_) => "binary",
        Term::List(_) | Term::ImproperList(_) | Term::ByteList(_) => "list",
        Term::Tuple(_) => "tuple",
        Term::Map(m) if m.map.contains_key(&term::atom("__struct__")) => "struct",
        Term::Map(_) => "map",
        Term::Pid(_) => "pid",
        Term::Reference(_) => "reference",
        Term::Port(_) => "port",
        _ => "function",
    }
}

/// The children of a compound term, named as Elixir shows them.
fn children_of(t: &Term) -> Option<Vec<(String, Term)>> {
    match t {
        Term::List(l) if !l.elements.is_empty() => {
            // A keyword list shows its keys.
            let kw: Option<Vec<(String, Term)>> = l
                .elements
                .iter()
                .map(|e| match term::as_tuple(e) {
                    Some([k, v]) => term::as_atom(k).map(|k| (format!("{k}:"), v.clone())),
                    _ => None,
                })
                .collect();
            Some(kw.unwrap_or_else(|| {
                l.elements
                    .iter()
                    .enumerate()
                    .map(|(i, e)| (format!("[{i}]"), e.clone()))
                    .collect()
            }))
        }
        Term::ImproperList(l) => {
            let mut v: Vec<(String, Term)> = l
                .elements
                .iter()
                .enumerate()
                .map(|(i, e)| (format!("[{i}]"), e.clone()))
                .collect();
            v.push(("tail".into(), (*l.last).clone()));
            Some(v)
        }
        Term::Tuple(tu) if !tu.elements.is_empty() => Some(
            tu.elements
                .iter()
                .enumerate()
                .map(|(i, e)| (format!("{{{i}}}"), e.clone()))
                .collect(),
        ),
        Term::Map(m) if !m.map.is_empty() => {
            let mut v: Vec<(String, Term)> = m
                .map
                .iter()
                .filter(|(k, _)| !term::is_atom(k, "__struct__"))
                .map(|(k, v)| {
                    let name = match term::as_atom(k) {
                        Some(a) => a.to_string(),
                        None => pretty::to_elixir_compact(k, 60),
                    };
                    (name, v.clone())
                })
                .collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            Some(v)
        }
        _ => None,
    }
}

impl VarStore {
    pub fn clear(&mut self) {
        self.refs.clear();
    }

    fn alloc(&mut self, items: Vec<(String, Term)>) -> i64 {
        self.next += 1;
        self.refs.insert(self.next, items);
        self.next
    }

    /// A scope: a named list of values.
    pub fn add_named(&mut self, items: Vec<(String, Term)>) -> i64 {
        self.alloc(items)
    }

    /// A variable, with a reference when it has children.
    pub fn var(&mut self, name: &str, value: &Term) -> Var {
        let children = children_of(value);
        let (reference, n) = match children {
            Some(c) => {
                let n = c.len();
                (self.alloc(c), n)
            }
            None => (0, 0),
        };
        let indexed = if matches!(value, Term::List(_) | Term::Tuple(_)) {
            n
        } else {
            0
        };
        Var {
            name: name.to_string(),
            value: pretty::to_elixir_compact(value, 300),
            kind: kind(value).to_string(),
            reference,
            indexed,
            named: n - indexed,
        }
    }

    /// Children of `reference`, from `start`, at most `count`.
    pub fn children(&mut self, reference: i64, start: usize, count: Option<usize>) -> Vec<Var> {
        let items = self.refs.get(&reference).cloned().unwrap_or_default();
        let end = count
            .map(|c| (start + c).min(items.len()))
            .unwrap_or(items.len());
        items
            .get(start.min(items.len())..end)
            .unwrap_or(&[])
            .iter()
            .map(|(n, v)| self.var(n, v))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::beam::term::{atom, int, list, map, tuple};

    #[test]
    fn structs_maps_and_lists_expand() {
        let mut s = VarStore::default();
        let user = map(vec![
            ("__struct__", atom("Elixir.KV.User")),
            ("name", term::binary("ada")),
            ("tags", list(vec![int(1), int(2)])),
        ]);
        let v = s.var("user", &user);
        assert_eq!(v.kind, "struct");
        assert_eq!(v.value, "%KV.User{name: \"ada\", tags: [1, 2]}");
        let kids = s.children(v.reference, 0, None);
        assert_eq!(
            kids.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(),
            vec!["name", "tags"]
        );
        let tags = s.children(kids[1].reference, 1, Some(5));
        assert_eq!(tags.len(), 1);
        assert_eq!(tags[0].name, "[1]");
        let kw = s.var("opts", &list(vec![tuple(vec![atom("a"), int(1)])]));
        assert_eq!(s.children(kw.reference, 0, None)[0].name, "a:");
    }
}
