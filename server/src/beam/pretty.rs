//! Pretty-printing of Erlang terms (`eetf::Term`) in Elixir syntax.
//!
//! The layout follows `inspect(term, pretty: true)` of Elixir 1.14: containers
//! stay on one line when they fit in 80 columns; otherwise tuples, and lists of
//! plain values, are filled line by line, and other lists and maps get one
//! element per line, indented by two. Printable terms evaluate back to themselves
//! (`tests/pretty_roundtrip.rs`). Output is cut according to [`Limits`], and the
//! on-node agent's truncation markers (`'$orrery_trunc'` and
//! `{'$orrery_trunc_bin', Prefix, Size}`) are shown as `…`. Standard structs print
//! in their inspect form (`~D[2024-01-01]`, `MapSet.new([1])`, `1..10`: `structs.rs`).

use std::cmp::Ordering;

use eetf::{FixInteger, InternalFun, Term};

use layout::{ellipsis, ends_cut, flat, group, render, width, Doc};

mod chars;
mod layout;
mod structs;

use chars::{charlist_char, escape, float_to_elixir, printable};

const ELLIPSIS: &str = "…";
const TRUNC: &str = "$orrery_trunc";
const TRUNC_BIN: &str = "$orrery_trunc_bin";
/// Hard cap on nesting, whatever the limits say, so that recursion stays shallow.
const DEPTH_CAP: usize = 100;

/// Atoms that Elixir prints (and parses) as `:op` without quotes.
const OPERATORS: &[&str] = &[
    "+", "-", "*", "/", "++", "--", "**", "+++", "---", "==", "!=", "===", "!==", "<", ">", "<=",
    ">=", "&&", "||", "!", "<>", "|>", "<<<", ">>>", "&&&", "|||", "=~", "<-", "->", "\\\\", "..",
    "...", "..//", "<~", "~>", "<~>", "@", "&", "^", "|", "=", "%", "%{}", "{}", "<<>>", ".",
];

/// How much of a term to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Containers nested deeper than this are shown as `[…]`, `{…}`, `%{…}`.
    pub max_depth: usize,
    /// Elements shown per list, tuple, map or non-printable binary.
    pub max_items: usize,
    /// Maximum length of the whole output, in chars (including the final `…`).
    pub max_len: usize,
    /// Bytes of a string (or chars of a charlist) shown before cutting.
    pub max_binary: usize,
}

impl Limits {
    /// Generous limits for hovers.
    pub fn hover() -> Self {
        Limits {
            max_depth: 8,
            max_items: 50,
            max_len: 4000,
            max_binary: 200,
        }
    }

    /// Tight limits for inlay hints of at most 40 chars.
    pub fn compact() -> Self {
        Limits {
            max_depth: 3,
            max_items: 8,
            max_len: 40,
            max_binary: 30,
        }
    }
}

/// Prints `term` in Elixir syntax, broken over several lines when it does not
/// fit in 80 columns.
pub fn to_elixir(term: &Term, limits: &Limits) -> String {
    let doc = Printer::new(limits).term(term, 0);
    let mut out = String::new();
    render(&doc, 0, &mut 0, 0, &mut out);
    cut(out, limits.max_len)
}

/// Prints `term` on a single line of at most `max_chars` chars (cut with `…`).
/// Limits start from [`Limits::compact`] and grow with `max_chars`; containers
/// are closed early (`[1, 2, …]`) so that short outputs stay well-formed.
pub fn to_elixir_compact(term: &Term, max_chars: usize) -> String {
    let c = Limits::compact();
    let limits = Limits {
        max_depth: c.max_depth + max_chars / 100,
        max_items: c.max_items.max(max_chars / 5),
        max_len: max_chars,
        max_binary: c.max_binary.max(max_chars / 2),
    };
    let mut printer = Printer::new(&limits);
    printer.budget -= max_chars / 4;
    let doc = printer.term(term, 0);
    let mut out = String::new();
    flat(&doc, &mut out);
    cut(out, max_chars)
}

/// Prints `term` on a single line with the given limits (names and keys: deep but short).
pub fn to_elixir_line(term: &Term, limits: &Limits) -> String {
    let doc = Printer::new(limits).term(term, 0);
    let mut out = String::new();
    flat(&doc, &mut out);
    cut(out, limits.max_len)
}

/// An atom as Elixir source: `:ok`, `nil`, `:"foo bar"`, `:+`, `KV.Bucket`.
pub fn atom_to_elixir(name: &str) -> String {
    if matches!(name, "nil" | "true" | "false" | "Elixir") {
        name.to_string()
    } else if let Some(alias) = alias_name(name) {
        alias.to_string()
    } else if is_identifier(name) || OPERATORS.contains(&name) {
        format!(":{name}")
    } else {
        format!(":\"{}\"", escape(name, '"'))
    }
}

/// A module name as Elixir source: `"Elixir.KV.Bucket"` → `KV.Bucket`,
/// `"lists"` → `:lists`.
pub fn module_name(atom: &str) -> String {
    atom_to_elixir(atom)
}

/// `"Elixir.Foo.Bar"` → `Some("Foo.Bar")` when every segment is a valid alias.
fn alias_name(name: &str) -> Option<&str> {
    let rest = name.strip_prefix("Elixir.")?;
    let valid = |seg: &str| {
        let mut cs = seg.chars();
        cs.next().is_some_and(|c| c.is_ascii_uppercase())
            && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let first = rest.split('.').next().unwrap_or("");
    (first != "Elixir" && rest.split('.').all(valid)).then_some(rest)
}

/// Atoms written `:name` and keyword keys written `name:` without quotes.
fn is_identifier(name: &str) -> bool {
    let body = name.strip_suffix(['?', '!']).unwrap_or(name);
    let mut cs = body.chars();
    cs.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '@')
}

/// Keyword key (with trailing colon and space): `a: `, `"foo bar": `.
fn key_to_elixir(name: &str) -> String {
    if is_identifier(name) {
        format!("{name}: ")
    } else {
        format!("\"{}\": ", escape(name, '"'))
    }
}

/// Function name in `&Mod.fun/1`.
fn fun_name(name: &str) -> String {
    if is_identifier(name) || OPERATORS.contains(&name) {
        name.to_string()
    } else {
        format!("\"{}\"", escape(name, '"'))
    }
}

/// Cuts `s` to at most `max` chars, ending with a single `…`.
fn cut(s: String, max: usize) -> String {
    if s.chars().count() <= max {
        return s;
    }
    let head: String = s.chars().take(max.saturating_sub(1)).collect();
    let mut out = head.trim_end_matches([' ', ',', '\n']).to_string();
    if max > 0 && !out.ends_with(ELLIPSIS) {
        out.push_str(ELLIPSIS);
    }
    out
}

fn is_marker(t: &Term) -> bool {
    matches!(t, Term::Atom(a) if a.name == TRUNC)
}

struct Printer<'a> {
    limits: &'a Limits,
    /// Flat chars still allowed; once spent, containers stop at `…`.
    budget: usize,
}

impl<'a> Printer<'a> {
    fn new(limits: &'a Limits) -> Self {
        Printer {
            limits,
            budget: limits.max_len,
        }
    }

    fn text(&mut self, s: String) -> Doc {
        self.budget = self.budget.saturating_sub(width(&s) + 2);
        Doc::Text(s)
    }

    fn too_deep(&self, depth: usize) -> bool {
        depth >= self.limits.max_depth.min(DEPTH_CAP)
    }

    /// Docs for `elems`, stopping with `…` at `max_items` or when out of budget.
    fn seq<T>(&mut self, elems: &[T], mut f: impl FnMut(&mut Self, &T) -> Doc) -> Vec<Doc> {
        let mut out = Vec::new();
        for (i, e) in elems.iter().enumerate() {
            if i >= self.limits.max_items || self.budget == 0 {
                out.push(ellipsis());
                break;
            }
            out.push(f(self, e));
        }
        out
    }

    fn term(&mut self, t: &Term, depth: usize) -> Doc {
        let s = match t {
            Term::Atom(a) if a.name == TRUNC => ELLIPSIS.to_string(),
            Term::Atom(a) => atom_to_elixir(&a.name),
            Term::FixInteger(i) => i.value.to_string(),
            Term::BigInteger(i) => i.value.to_string(),
            Term::Float(f) => float_to_elixir(f.value),
            Term::Pid(p) => format!("#PID<0.{}.{}>", p.id, p.serial),
            Term::Port(p) => format!("#Port<0.{}>", p.id),
            Term::Reference(r) => {
                let ids: String = r.id.iter().rev().map(|i| format!(".{i}")).collect();
                format!("#Reference<0{ids}>")
            }
            Term::ExternalFun(f) => format!(
                "&{}.{}/{}",
                module_name(&f.module.name),
                fun_name(&f.function.name),
                f.arity
            ),
            Term::InternalFun(f) => match &**f {
                InternalFun::Old {
                    module,
                    index,
                    uniq,
                    ..
                } => {
                    format!("#Function<{index}.{uniq} in {}>", module_name(&module.name))
                }
                InternalFun::New {
                    module,
                    arity,
                    index,
                    old_uniq,
                    ..
                } => format!(
                    "#Function<{index}.{old_uniq}/{arity} in {}>",
                    module_name(&module.name)
                ),
            },
            Term::Binary(b) => return self.binary(&b.bytes, false),
            Term::BitBinary(b) => return self.bitstring(&b.bytes, b.tail_bits_size),
            Term::ByteList(l) => {
                // Only what can be shown becomes terms, plus the first byte
                // that rules out a charlist, if any.
                let bad = l.bytes.iter().position(|&b| !charlist_char(b.into()));
                let shown = self.limits.max_items.max(self.limits.max_binary);
                let keep = shown.saturating_add(1).max(bad.map_or(0, |j| j + 1));
                let bytes = &l.bytes[..keep.min(l.bytes.len())];
                let elems: Vec<Term> = bytes.iter().map(|&b| int(b.into())).collect();
                return self.list(&elems, None, depth);
            }
            Term::List(l) => return self.list(&l.elements, None, depth),
            Term::ImproperList(l) => return self.list(&l.elements, Some(&l.last), depth),
            Term::Tuple(t) => return self.tuple(&t.elements, depth),
            Term::Map(m) => return self.map(m, depth),
        };
        self.text(s)
    }

    fn binary(&mut self, bytes: &[u8], cut: bool) -> Doc {
        let max = self.limits.max_binary;
        let (shown, cut) = if bytes.len() > max {
            (&bytes[..max], true)
        } else {
            (bytes, cut)
        };
        let text = match std::str::from_utf8(shown) {
            Ok(s) => Some(s),
            // A cut may split the last character.
            Err(e) if cut && e.error_len().is_none() => {
                std::str::from_utf8(&shown[..e.valid_up_to()]).ok()
            }
            Err(_) => None,
        };
        if let Some(s) = text.filter(|s| s.chars().all(printable)) {
            let mark = if cut { ELLIPSIS } else { "" };
            return self.text(format!("\"{}{mark}\"", escape(s, '"')));
        }
        let mut items = self.seq(bytes, |p, b| p.text(b.to_string()));
        if cut && !ends_cut(&items) {
            items.push(ellipsis());
        }
        group("<<", items, ">>", false)
    }

    fn bitstring(&mut self, bytes: &[u8], bits: u8) -> Doc {
        let Some((&last, whole)) = bytes.split_last() else {
            return self.text("\"\"".into());
        };
        if bits == 0 || bits >= 8 {
            return self.binary(bytes, false);
        }
        let mut items = self.seq(whole, |p, b| p.text(b.to_string()));
        if !ends_cut(&items) {
            let last = last & (0xFFu8 >> (8 - bits));
            items.push(self.text(format!("{last}::size({bits})")));
        }
        group("<<", items, ">>", false)
    }

    fn list(&mut self, elems: &[Term], tail: Option<&Term>, depth: usize) -> Doc {
        let tail = tail.filter(|t| !matches!(t, Term::List(l) if l.elements.is_empty()));
        let cut_tail = tail.is_some_and(is_marker);
        if elems.is_empty() && tail.is_none() {
            return self.text("[]".into());
        }
        if tail.is_none() || cut_tail {
            if let Some(s) = self.charlist(elems, cut_tail) {
                return self.text(s);
            }
        }
        if self.too_deep(depth) {
            return self.text("[…]".into());
        }
        let keyword =
            tail.is_none() && keyword_keys(elems.iter().filter(|e| !is_marker(e)).map(pair_key));
        let mut items = self.seq(elems, |p, e| match e {
            Term::Tuple(t) if keyword && t.elements.len() == 2 => {
                let Term::Atom(k) = &t.elements[0] else {
                    return p.term(e, depth + 1);
                };
                let key = p.text(key_to_elixir(&k.name));
                Doc::Concat(vec![key, p.term(&t.elements[1], depth + 1)])
            }
            _ => p.term(e, depth + 1),
        });
        if cut_tail && !ends_cut(&items) {
            items.push(ellipsis());
        } else if let Some(t) = tail.filter(|_| !cut_tail) {
            let t = self.term(t, depth + 1);
            let last = items.pop().unwrap_or(Doc::Text(String::new()));
            items.push(Doc::Concat(vec![last, Doc::Text(" | ".into()), t]));
        }
        group("[", items, "]", false)
    }

    /// `'abc'` for a list of printable ASCII codes (an optional trailing
    /// marker shows as `'abc…'`).
    fn charlist(&mut self, elems: &[Term], mut cut: bool) -> Option<String> {
        let mut elems = elems;
        if let Some((_, init)) = elems.split_last().filter(|(l, _)| is_marker(l)) {
            elems = init;
            cut = true;
        }
        let chars = elems.iter().map(|e| match e {
            Term::FixInteger(i) => u8::try_from(i.value).ok().map(char::from),
            _ => None,
        });
        let s: String = chars.collect::<Option<_>>()?;
        if s.is_empty() || !s.chars().all(charlist_char) {
            return None;
        }
        let max = self.limits.max_binary;
        let shown = &s[..s.len().min(max)];
        let mark = if cut || shown.len() < s.len() {
            ELLIPSIS
        } else {
            ""
        };
        Some(format!("'{}{mark}'", escape(shown, '\'')))
    }

    fn tuple(&mut self, elems: &[Term], depth: usize) -> Doc {
        if let [Term::Atom(a), Term::Binary(b), _] = elems {
            if a.name == TRUNC_BIN {
                return self.binary(&b.bytes, true);
            }
        }
        if elems.is_empty() {
            return self.text("{}".into());
        }
        if self.too_deep(depth) {
            return self.text("{…}".into());
        }
        let items = self.seq(elems, |p, e| p.term(e, depth + 1));
        group("{", items, "}", true)
    }

    fn map(&mut self, m: &eetf::Map, depth: usize) -> Doc {
        let mut entries: Vec<(&Term, &Term)> =
            m.map.iter().filter(|(k, _)| !is_marker(k)).collect();
        let cut = entries.len() < m.map.len();
        let mut open = "%{".to_string();
        let is_struct = |(k, v): &(&Term, &Term)| {
            matches!(k, Term::Atom(a) if a.name == "__struct__")
                && matches!(v, Term::Atom(a) if alias_name(&a.name).is_some())
        };
        if let Some(pos) = entries.iter().position(is_struct) {
            if let (_, Term::Atom(name)) = entries.remove(pos) {
                if !cut {
                    if let Some(doc) = self.special_struct(&name.name, m, depth) {
                        return doc;
                    }
                }
                open = format!("%{}{{", module_name(&name.name));
            }
        }
        if entries.is_empty() && !cut {
            return self.text(open + "}");
        }
        if self.too_deep(depth) {
            return self.text(open + "…}");
        }
        entries.sort_by(|a, b| cmp_terms(a.0, b.0, 0));
        let keyword = keyword_keys(entries.iter().map(|(k, _)| Some(*k)));
        let mut items = self.seq(&entries, |p, (k, v)| match k {
            Term::Atom(a) if keyword => {
                let key = p.text(key_to_elixir(&a.name));
                Doc::Concat(vec![key, p.term(v, depth + 1)])
            }
            _ => {
                let key = p.term(k, depth + 1);
                Doc::Concat(vec![key, Doc::Text(" => ".into()), p.term(v, depth + 1)])
            }
        });
        if cut && !ends_cut(&items) {
            items.push(ellipsis());
        }
        group(&open, items, "}", false)
    }
}

fn int(value: i32) -> Term {
    Term::FixInteger(FixInteger { value })
}

/// Whether these keys (`None` for a list element that is not a pair) allow
/// keyword syntax: all atoms, none of them an alias (like inspect), at least one.
fn keyword_keys<'t>(keys: impl Iterator<Item = Option<&'t Term>>) -> bool {
    let mut any = false;
    let all = keys.into_iter().all(|k| {
        any = true;
        matches!(k, Some(Term::Atom(a)) if a.name != TRUNC && !a.name.starts_with("Elixir."))
    });
    any && all
}

/// The key of a `{key, value}` pair.
fn pair_key(t: &Term) -> Option<&Term> {
    match t {
        Term::Tuple(t) if t.elements.len() == 2 => t.elements.first(),
        _ => None,
    }
}

/// Erlang term order class: number < atom < reference < fun < port < pid <
/// tuple < map < nil < list < bitstring.
fn rank(t: &Term) -> u8 {
    match t {
        Term::FixInteger(_) | Term::BigInteger(_) | Term::Float(_) => 0,
        Term::Atom(_) => 1,
        Term::Reference(_) => 2,
        Term::ExternalFun(_) | Term::InternalFun(_) => 3,
        Term::Port(_) => 4,
        Term::Pid(_) => 5,
        Term::Tuple(_) => 6,
        Term::Map(_) => 7,
        Term::List(l) if l.elements.is_empty() => 8,
        Term::ByteList(l) if l.bytes.is_empty() => 8,
        Term::List(_) | Term::ByteList(_) | Term::ImproperList(_) => 9,
        Term::Binary(_) | Term::BitBinary(_) => 10,
    }
}

/// Compares decimal integers (`-12`, `345`) of any size.
fn cmp_int(a: &str, b: &str) -> Ordering {
    let (na, da) = a.strip_prefix('-').map_or((false, a), |d| (true, d));
    let (nb, db) = b.strip_prefix('-').map_or((false, b), |d| (true, d));
    match (na, nb) {
        (false, false) => (da.len(), da).cmp(&(db.len(), db)),
        (true, true) => (db.len(), db).cmp(&(da.len(), da)),
        _ => nb.cmp(&na),
    }
}

/// Map key order as inspect shows small maps (integers before floats) for the
/// usual key types; other keys by their printed form, deterministically.
fn cmp_terms(a: &Term, b: &Term, depth: usize) -> Ordering {
    let int = |t: &Term| match t {
        Term::FixInteger(i) => i.value.to_string(),
        Term::BigInteger(i) => i.value.to_string(),
        _ => String::new(),
    };
    let printed = |t: &Term| {
        let all = usize::MAX;
        let limits = Limits {
            max_depth: all,
            max_items: all,
            max_len: all,
            max_binary: all,
        };
        let mut out = String::new();
        flat(&Printer::new(&limits).term(t, 0), &mut out);
        out
    };
    rank(a).cmp(&rank(b)).then_with(|| match (a, b) {
        _ if depth > DEPTH_CAP => Ordering::Equal,
        (Term::Atom(x), Term::Atom(y)) => x.name.cmp(&y.name),
        (Term::Float(x), Term::Float(y)) => x.value.total_cmp(&y.value),
        (Term::Float(_), _) => Ordering::Greater,
        (_, Term::Float(_)) => Ordering::Less,
        _ if rank(a) == 0 => cmp_int(&int(a), &int(b)),
        (Term::Tuple(x), Term::Tuple(y)) => {
            (x.elements.len().cmp(&y.elements.len())).then_with(|| {
                let pairs = x.elements.iter().zip(&y.elements);
                pairs
                    .map(|(p, q)| cmp_terms(p, q, depth + 1))
                    .find(|o| o.is_ne())
                    .unwrap_or(Ordering::Equal)
            })
        }
        (Term::Binary(x), Term::Binary(y)) => x.bytes.cmp(&y.bytes),
        (Term::Pid(x), Term::Pid(y)) => (x.serial, x.id).cmp(&(y.serial, y.id)),
        (Term::Port(x), Term::Port(y)) => x.id.cmp(&y.id),
        (Term::Reference(x), Term::Reference(y)) => x.id.iter().rev().cmp(y.id.iter().rev()),
        _ => printed(a).cmp(&printed(b)),
    })
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_structs;
