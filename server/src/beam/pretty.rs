//! Pretty-printing of Erlang terms (`eetf::Term`) in Elixir syntax.
//!
//! The layout follows `inspect(term, pretty: true)` of Elixir 1.14: containers
//! stay on one line when they fit in 80 columns; otherwise lists and tuples of
//! plain values are filled line by line, and anything else gets one element per
//! line, indented by two. Printable terms evaluate back to themselves
//! (`tests/pretty_roundtrip.rs`). Output is cut according to [`Limits`], and the
//! on-node agent's truncation markers (`'$orrery_trunc'` and
//! `{'$orrery_trunc_bin', Prefix, Size}`) are shown as `…`.

use std::borrow::Cow;
use std::cmp::Ordering;

use eetf::{FixInteger, InternalFun, Term};

const WIDTH: usize = 80;
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
        Limits { max_depth: 8, max_items: 50, max_len: 4000, max_binary: 200 }
    }

    /// Tight limits for inlay hints of at most 40 chars.
    pub fn compact() -> Self {
        Limits { max_depth: 3, max_items: 8, max_len: 40, max_binary: 30 }
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
pub fn to_elixir_compact(term: &Term, max_chars: usize) -> String {
    let limits = Limits { max_len: max_chars, ..Limits::compact() };
    let doc = Printer::new(&limits).term(term, 0);
    let mut out = String::new();
    flat(&doc, &mut out);
    cut(out, max_chars)
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
    cs.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
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

/// Characters `String.printable?/1` accepts (Elixir 1.14).
fn printable(c: char) -> bool {
    matches!(c as u32, 0x20..=0x7E | 0xA0..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
        || "\n\r\t\u{0B}\u{08}\u{0C}\u{1B}\u{7F}\u{07}".contains(c)
}

/// Escapes `s` for a literal delimited by `delim` (`"` or `'`).
fn escape(s: &str, delim: char) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            '#' if chars.peek() == Some(&'{') => out.push_str("\\#"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{0B}' => out.push_str("\\v"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0C}' => out.push_str("\\f"),
            '\u{1B}' => out.push_str("\\e"),
            '\u{7F}' => out.push_str("\\d"),
            '\u{07}' => out.push_str("\\a"),
            c if c == delim => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x80 && !printable(c) => out.push_str(&format!("\\x{:02X}", c as u32)),
            // The tokenizer rejects raw bidirectional formatting characters.
            c if !printable(c) || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}') => {
                out.push_str(&format!("\\u{{{:X}}}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

/// Floats like Elixir 1.14's `inspect`: integral values below 1e16 in full,
/// otherwise the shortest round-tripping digits laid out like
/// `:erlang.float_to_list(f, [:short])` (erts' Ryu `to_chars`).
fn float_to_elixir(v: f64) -> String {
    if !v.is_finite() {
        // Not representable on the BEAM; only reachable from hand-built terms.
        return format!("{v}");
    }
    let sign = if v.is_sign_negative() { "-" } else { "" };
    let a = v.abs();
    if a == 0.0 || (1.0..1.0e16).contains(&a) && a.fract() == 0.0 {
        return format!("{sign}{a:.1}");
    }
    let sci = format!("{a:e}");
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i64 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let n = digits.len() as i64;
    let ryu_exp = exp - (n - 1);
    let (lower, upper) = if n == 1 { (-4, 2) } else { (-(n + 2), if exp >= 10 { 2 } else { 1 }) };
    let m: u64 = digits.parse().unwrap_or(0);
    let inexact = (ryu_exp == 0 && m >= 1 << 53)
        || (ryu_exp == 1 && m > (1 << 52) / 5)
        || (ryu_exp == 2 && m > (1 << 51) / 25);
    let whole = n + ryu_exp;
    let body = if !(lower..=upper).contains(&ryu_exp) || inexact {
        let frac = if n > 1 { &digits[1..] } else { "0" };
        format!("{}.{frac}e{exp}", &digits[..1])
    } else if ryu_exp >= 0 {
        format!("{digits}{}.0", "0".repeat(ryu_exp as usize))
    } else if whole > 0 {
        let (int, frac) = digits.split_at(whole as usize);
        format!("{int}.{frac}")
    } else {
        format!("0.{}{digits}", "0".repeat(-whole as usize))
    };
    format!("{sign}{body}")
}

fn cut(s: String, max: usize) -> String {
    if s.chars().count() <= max {
        return s;
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    if max > 0 {
        out.push_str(ELLIPSIS);
    }
    out
}

fn width(s: &str) -> usize {
    s.chars().count()
}

fn is_marker(t: &Term) -> bool {
    matches!(t, Term::Atom(a) if a.name == TRUNC)
}

/// Layout tree: text, concatenation, and bracketed groups that may break.
enum Doc {
    Text(String),
    Concat(Vec<Doc>),
    /// `flex` groups fill lines (tuples, and lists of plain values); others put
    /// each item on its own line.
    Group { open: String, items: Vec<Doc>, close: String, flex: bool },
}

fn group(open: &str, items: Vec<Doc>, close: &str, flex: bool) -> Doc {
    let flex = flex || items.iter().all(|i| matches!(i, Doc::Text(_)));
    Doc::Group { open: open.to_string(), items, close: close.to_string(), flex }
}

fn ellipsis() -> Doc {
    Doc::Text(ELLIPSIS.to_string())
}

fn ends_cut(items: &[Doc]) -> bool {
    matches!(items.last(), Some(Doc::Text(s)) if s == ELLIPSIS)
}

fn flat_width(doc: &Doc) -> usize {
    match doc {
        Doc::Text(s) => width(s),
        Doc::Concat(parts) => parts.iter().map(flat_width).sum(),
        Doc::Group { open, items, close, .. } => {
            width(open) + width(close) + items.iter().map(flat_width).sum::<usize>()
                + 2 * items.len().saturating_sub(1)
        }
    }
}

/// Width `docs` need on the current line before they can break, plus `tail`
/// when they cannot break at all.
fn head_width(docs: &[Doc], tail: usize) -> usize {
    let mut w = 0;
    for doc in docs {
        match doc {
            Doc::Text(s) => w += width(s),
            Doc::Group { items, .. } if items.is_empty() => w += flat_width(doc),
            Doc::Group { open, items, flex, .. } => {
                return w + width(open) + if *flex { head_width(&items[..1], 0) } else { 0 };
            }
            Doc::Concat(parts) => return w + head_width(parts, 0),
        }
    }
    w + tail
}

fn flat(doc: &Doc, out: &mut String) {
    match doc {
        Doc::Text(s) => out.push_str(s),
        Doc::Concat(parts) => parts.iter().for_each(|p| flat(p, out)),
        Doc::Group { open, items, close, .. } => {
            out.push_str(open);
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                flat(item, out);
            }
            out.push_str(close);
        }
    }
}

fn newline(indent: usize, col: &mut usize, out: &mut String) {
    out.push('\n');
    out.extend(std::iter::repeat(' ').take(indent));
    *col = indent;
}

/// Renders `doc` at column `col` on a line indented by `indent`; `tail` is the
/// width of text that must follow on the same line.
fn render(doc: &Doc, indent: usize, col: &mut usize, tail: usize, out: &mut String) {
    match doc {
        Doc::Text(s) => {
            out.push_str(s);
            *col += width(s);
        }
        Doc::Concat(parts) => {
            for (i, part) in parts.iter().enumerate() {
                render(part, indent, col, head_width(&parts[i + 1..], tail), out);
            }
        }
        Doc::Group { open, items, close, flex } => {
            let w = flat_width(doc);
            if items.is_empty() || *col + w + tail <= WIDTH {
                flat(doc, out);
                *col += w;
                return;
            }
            out.push_str(open);
            *col += width(open);
            if *flex {
                // Like inspect: items stay on the line while they fit flat,
                // aligned after the bracket.
                let nest = if *col <= WIDTH / 2 { *col } else { indent + 1 };
                for (i, item) in items.iter().enumerate() {
                    let after = if i + 1 == items.len() { width(close) + tail } else { 1 };
                    if i > 0 {
                        if *col + 1 + flat_width(item) + after <= WIDTH {
                            out.push(' ');
                            *col += 1;
                        } else {
                            newline(nest, col, out);
                        }
                    }
                    render(item, nest, col, after, out);
                    if i + 1 < items.len() {
                        out.push(',');
                        *col += 1;
                    }
                }
            } else {
                for (i, item) in items.iter().enumerate() {
                    newline(indent + 2, col, out);
                    let last = i + 1 == items.len();
                    render(item, indent + 2, col, usize::from(!last), out);
                    if !last {
                        out.push(',');
                        *col += 1;
                    }
                }
                newline(indent, col, out);
            }
            out.push_str(close);
            *col += width(close);
        }
    }
}

struct Printer<'a> {
    limits: &'a Limits,
    /// Flat chars still allowed; once spent, containers stop at `…`.
    budget: usize,
}

impl<'a> Printer<'a> {
    fn new(limits: &'a Limits) -> Self {
        Printer { limits, budget: limits.max_len }
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
                InternalFun::Old { module, index, uniq, .. } => {
                    format!("#Function<{index}.{uniq} in {}>", module_name(&module.name))
                }
                InternalFun::New { module, arity, index, old_uniq, .. } => format!(
                    "#Function<{index}.{old_uniq}/{arity} in {}>",
                    module_name(&module.name)
                ),
            },
            Term::Binary(b) => return self.binary(&b.bytes, false),
            Term::BitBinary(b) => return self.bitstring(&b.bytes, b.tail_bits_size),
            Term::ByteList(l) => {
                let elems: Vec<Term> = l.bytes.iter().map(|&b| int(b.into())).collect();
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
        let (shown, cut) = if bytes.len() > max { (&bytes[..max], true) } else { (bytes, cut) };
        let text = match std::str::from_utf8(shown) {
            Ok(s) => Some(s),
            // A cut may split the last character.
            Err(e) if cut && e.error_len().is_none() => std::str::from_utf8(&shown[..e.valid_up_to()]).ok(),
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
        let Some((&last, whole)) = bytes.split_last() else { return self.text("\"\"".into()) };
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
        let keyword = tail.is_none() && keyword_keys(elems.iter().filter(|e| !is_marker(e)).map(pair_key));
        let mut items = self.seq(elems, |p, e| match e {
            Term::Tuple(t) if keyword && t.elements.len() == 2 => {
                let Term::Atom(k) = &t.elements[0] else { return p.term(e, depth + 1) };
                let key = p.text(key_to_elixir(&k.name));
                Doc::Concat(vec![key, p.term(&t.elements[1], depth + 1)])
            }
            _ => p.term(e, depth + 1),
        });
        match tail {
            Some(_) if cut_tail => {
                if !ends_cut(&items) {
                    items.push(ellipsis());
                }
            }
            Some(t) => {
                let t = self.term(t, depth + 1);
                let last = items.pop().unwrap_or(Doc::Text(String::new()));
                items.push(Doc::Concat(vec![last, Doc::Text(" | ".into()), t]));
            }
            None => {}
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
        let ascii = |c: char| c.is_ascii() && (printable(c) && c != '\u{7F}');
        if s.is_empty() || !s.chars().all(ascii) {
            return None;
        }
        let max = self.limits.max_binary;
        let shown = &s[..s.len().min(max)];
        let mark = if cut || shown.len() < s.len() { ELLIPSIS } else { "" };
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
        let mut entries: Vec<(&Term, &Term)> = m.map.iter().filter(|(k, _)| !is_marker(k)).collect();
        let cut = entries.len() < m.map.len();
        let mut open = "%{".to_string();
        let is_struct = |(k, v): &(&Term, &Term)| {
            matches!(k, Term::Atom(a) if a.name == "__struct__")
                && matches!(v, Term::Atom(a) if alias_name(&a.name).is_some())
        };
        if let Some(pos) = entries.iter().position(is_struct) {
            if let (_, Term::Atom(name)) = entries.remove(pos) {
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

enum Num {
    /// Sign and decimal digits.
    Int(bool, String),
    Float(f64),
}

fn num(t: &Term) -> Num {
    let digits = |s: String| match s.strip_prefix('-') {
        Some(d) => Num::Int(true, d.to_string()),
        None => Num::Int(false, s),
    };
    match t {
        Term::FixInteger(i) => digits(i.value.to_string()),
        Term::BigInteger(i) => digits(i.value.to_string()),
        Term::Float(f) => Num::Float(f.value),
        _ => Num::Float(0.0),
    }
}

/// Map key order, as inspect shows small maps: integers before floats.
fn cmp_num(a: &Num, b: &Num) -> Ordering {
    match (a, b) {
        (Num::Int(na, da), Num::Int(nb, db)) => match (na, nb) {
            (false, false) => (da.len(), da).cmp(&(db.len(), db)),
            (true, true) => (db.len(), db).cmp(&(da.len(), da)),
            _ => nb.cmp(na),
        },
        (Num::Float(x), Num::Float(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
        (Num::Int(..), Num::Float(_)) => Ordering::Less,
        (Num::Float(_), Num::Int(..)) => Ordering::Greater,
    }
}

fn list_parts(t: &Term) -> (Vec<Cow<'_, Term>>, Option<&Term>) {
    match t {
        Term::List(l) => (l.elements.iter().map(Cow::Borrowed).collect(), None),
        Term::ImproperList(l) => (l.elements.iter().map(Cow::Borrowed).collect(), Some(&*l.last)),
        Term::ByteList(l) => (l.bytes.iter().map(|&b| Cow::Owned(int(b.into()))).collect(), None),
        _ => (Vec::new(), None),
    }
}

fn cmp_seq<'t>(a: impl Iterator<Item = &'t Term>, b: impl Iterator<Item = &'t Term>, depth: usize) -> Ordering {
    a.zip(b).map(|(x, y)| cmp_terms(x, y, depth + 1)).find(|o| o.is_ne()).unwrap_or(Ordering::Equal)
}

fn sorted_entries(m: &eetf::Map, depth: usize) -> Vec<(&Term, &Term)> {
    let mut entries: Vec<(&Term, &Term)> = m.map.iter().collect();
    entries.sort_by(|p, q| cmp_terms(p.0, q.0, depth));
    entries
}

/// Erlang map key order (close enough to sort map keys deterministically).
fn cmp_terms(a: &Term, b: &Term, depth: usize) -> Ordering {
    if depth > DEPTH_CAP {
        return Ordering::Equal;
    }
    let by_rank = rank(a).cmp(&rank(b));
    if by_rank.is_ne() {
        return by_rank;
    }
    match (a, b) {
        (Term::Atom(x), Term::Atom(y)) => x.name.cmp(&y.name),
        _ if rank(a) == 0 => cmp_num(&num(a), &num(b)),
        (Term::Tuple(x), Term::Tuple(y)) => x.elements.len().cmp(&y.elements.len())
            .then_with(|| cmp_seq(x.elements.iter(), y.elements.iter(), depth)),
        (Term::Map(x), Term::Map(y)) => {
            let (ex, ey) = (sorted_entries(x, depth + 1), sorted_entries(y, depth + 1));
            ex.len().cmp(&ey.len())
                .then_with(|| cmp_seq(ex.iter().map(|e| e.0), ey.iter().map(|e| e.0), depth))
                .then_with(|| cmp_seq(ex.iter().map(|e| e.1), ey.iter().map(|e| e.1), depth))
        }
        _ if rank(a) >= 8 && rank(a) <= 9 => {
            let ((ea, ta), (eb, tb)) = (list_parts(a), list_parts(b));
            let n = ea.len().min(eb.len());
            let nil = Term::List(eetf::List::nil());
            let rest = |e: &[Cow<Term>], t: Option<&Term>| if e.len() > n { 9 } else { t.map_or(8, rank) };
            cmp_seq(ea.iter().map(|c| &**c), eb.iter().map(|c| &**c), depth)
                .then_with(|| rest(&ea, ta).cmp(&rest(&eb, tb)))
                .then_with(|| cmp_terms(ta.unwrap_or(&nil), tb.unwrap_or(&nil), depth + 1))
        }
        (Term::Binary(x), Term::Binary(y)) => x.bytes.cmp(&y.bytes),
        (Term::Pid(x), Term::Pid(y)) => (&x.node.name, x.id, x.serial).cmp(&(&y.node.name, y.id, y.serial)),
        (Term::Port(x), Term::Port(y)) => (&x.node.name, x.id).cmp(&(&y.node.name, y.id)),
        // Rare as keys: any deterministic order will do.
        _ => format!("{a:?}").cmp(&format!("{b:?}")),
    }
}

#[cfg(test)]
mod tests;
