//! Small helpers to build and take apart `eetf` terms without ceremony.
//!
//! Elixir strings are binaries and Elixir module atoms carry the `Elixir.` prefix;
//! these helpers make that explicit so no caller sends a charlist by accident.

use eetf::{Atom, Binary, ByteList, FixInteger, List, Map, Term, Tuple};

/// An atom term.
pub fn atom(name: &str) -> Term {
    Term::Atom(Atom::from(name))
}

/// The atom for an Elixir module name given as written in source (`KV.Bucket`),
/// or an Erlang module written as `:lists`.
pub fn module(name: &str) -> Term {
    atom(&module_atom(name))
}

/// `KV.Bucket` -> `Elixir.KV.Bucket`; `:lists` -> `lists`.
pub fn module_atom(name: &str) -> String {
    if let Some(erl) = name.strip_prefix(':') {
        erl.to_string()
    } else if name.starts_with("Elixir.") {
        name.to_string()
    } else {
        format!("Elixir.{name}")
    }
}

/// A binary (an Elixir string).
pub fn binary(s: &str) -> Term {
    Term::Binary(Binary::from(s.as_bytes().to_vec()))
}

/// A charlist (an Erlang string), for APIs such as `erl_scan:string/1`.
pub fn charlist(s: &str) -> Term {
    if s.is_empty() {
        return nil();
    }
    if s.bytes().all(|b| b < 128) {
        Term::ByteList(ByteList::from(s))
    } else {
        Term::List(List::from(
            s.chars().map(|c| int(c as i64)).collect::<Vec<_>>(),
        ))
    }
}

/// An integer term (fixnum when it fits, else bignum).
pub fn int(v: i64) -> Term {
    if let Ok(v) = i32::try_from(v) {
        Term::FixInteger(FixInteger::from(v))
    } else {
        Term::BigInteger(eetf::BigInteger::from(v))
    }
}

/// A tuple term.
pub fn tuple(elements: Vec<Term>) -> Term {
    Term::Tuple(Tuple::from(elements))
}

/// A proper list term.
pub fn list(elements: Vec<Term>) -> Term {
    Term::List(List::from(elements))
}

/// The empty list.
pub fn nil() -> Term {
    Term::List(List::nil())
}

/// A map with atom keys.
pub fn map(pairs: Vec<(&str, Term)>) -> Term {
    let mut m = std::collections::HashMap::new();
    for (k, v) in pairs {
        m.insert(atom(k), v);
    }
    Term::Map(Map::from(m))
}

/// The name of an atom term.
pub fn as_atom(t: &Term) -> Option<&str> {
    match t {
        Term::Atom(a) => Some(&a.name),
        _ => None,
    }
}

/// Whether `t` is the atom `name`.
pub fn is_atom(t: &Term, name: &str) -> bool {
    as_atom(t) == Some(name)
}

/// Elements of a tuple.
pub fn as_tuple(t: &Term) -> Option<&[Term]> {
    match t {
        Term::Tuple(x) => Some(&x.elements),
        _ => None,
    }
}

/// Elements of a proper list (a charlist counts as a list of integers).
pub fn as_list(t: &Term) -> Option<Vec<Term>> {
    match t {
        Term::List(l) => Some(l.elements.clone()),
        Term::ByteList(b) => Some(b.bytes.iter().map(|&x| int(x as i64)).collect()),
        _ => None,
    }
}

/// Borrowing view of a proper list's elements (not for charlists).
pub fn list_ref(t: &Term) -> &[Term] {
    match t {
        Term::List(l) => &l.elements,
        _ => &[],
    }
}

/// An integer term as i64.
pub fn as_int(t: &Term) -> Option<i64> {
    match t {
        Term::FixInteger(i) => Some(i.value as i64),
        Term::BigInteger(b) => b.value.to_string().parse().ok(),
        _ => None,
    }
}

/// A float or integer as f64.
pub fn as_f64(t: &Term) -> Option<f64> {
    match t {
        Term::Float(f) => Some(f.value),
        other => as_int(other).map(|i| i as f64),
    }
}

/// A binary or charlist as a Rust string (lossy).
pub fn as_string(t: &Term) -> Option<String> {
    match t {
        Term::Binary(b) => Some(String::from_utf8_lossy(&b.bytes).into_owned()),
        Term::ByteList(b) => Some(String::from_utf8_lossy(&b.bytes).into_owned()),
        Term::List(l) if l.elements.is_empty() => Some(String::new()),
        Term::List(l) => l
            .elements
            .iter()
            .map(|e| as_int(e).and_then(|c| char::from_u32(c as u32)))
            .collect(),
        Term::Atom(a) => Some(a.name.clone()),
        _ => None,
    }
}

/// Value under an atom key of a map.
pub fn get<'a>(t: &'a Term, key: &str) -> Option<&'a Term> {
    match t {
        Term::Map(m) => m.map.get(&atom(key)),
        _ => None,
    }
}

/// Value under an atom key, as a string.
pub fn get_str(t: &Term, key: &str) -> Option<String> {
    get(t, key).and_then(as_string)
}

/// Value under an atom key, as an integer.
pub fn get_int(t: &Term, key: &str) -> Option<i64> {
    get(t, key).and_then(as_int)
}

/// Whether `t` holds the atom `name` anywhere (an iterative walk: no depth limit).
pub fn contains_atom(t: &Term, name: &str) -> bool {
    let mut stack = vec![t];
    while let Some(t) = stack.pop() {
        match t {
            Term::Atom(a) if a.name == name => return true,
            Term::List(l) => stack.extend(&l.elements),
            Term::ImproperList(l) => {
                stack.extend(&l.elements);
                stack.push(&l.last);
            }
            Term::Tuple(tp) => stack.extend(&tp.elements),
            Term::Map(m) => {
                for (k, v) in &m.map {
                    stack.push(k);
                    stack.push(v);
                }
            }
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_atoms() {
        assert_eq!(module_atom("KV.Bucket"), "Elixir.KV.Bucket");
        assert_eq!(module_atom(":lists"), "lists");
        assert_eq!(module_atom("Elixir.A"), "Elixir.A");
    }

    #[test]
    fn strings_round_trip() {
        assert_eq!(as_string(&binary("héllo")).unwrap(), "héllo");
        assert_eq!(as_string(&charlist("abc")).unwrap(), "abc");
        assert_eq!(as_string(&charlist("é")).unwrap(), "é");
        assert_eq!(as_int(&int(1 << 40)), Some(1 << 40));
    }
}
