//! Docs, specs and exports of any module, fetched from the live node: hover docs for remote
//! calls (`Enum.map`, `KV.Bucket.get`, `:ets.new`) and the items of live completion, with
//! no separate build. One agent call (`docs/3`) answers per module: the EEP 48 docs chunk
//! (Elixir modules have one; Erlang modules when OTP ships its chunks), the specs from the
//! debug info formatted on the node with `Code.Typespec.spec_to_quoted` + `Macro.to_string`,
//! and the exports. Answers are cached per node and module and kept while the module's md5
//! stays the same: a later call sends the md5 it knows and gets back just `unchanged`, at
//! most once per [`RECHECK`] per module (so docs lag a hot swap by at most that long).

use crate::agent;
use crate::attach::Session;
use crate::beam::term::{self, atom, binary, int, map};
use crate::beam::{pretty, Connection};
use eetf::Term;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes of one doc text the node sends.
const DOC_BYTES: i64 = 16 * 1024;
/// Chars of doc text in a hover.
const HOVER_DOC_CHARS: usize = 6000;
/// Modules kept in the cache before it starts over.
const CACHE_MODULES: usize = 512;
/// How long cached docs are used before the node is asked whether the md5 changed.
pub const RECHECK: Duration = Duration::from_secs(1);

/// Function or macro.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Function,
    Macro,
}

/// One exported function or macro.
#[derive(Debug, Clone, PartialEq)]
pub struct FunDoc {
    pub kind: Kind,
    pub name: String,
    pub arity: u32,
    /// Default arguments of the documented head (`add(a, b \\ 1)` has 1).
    pub defaults: u32,
    /// `map(enumerable, fun)`, or empty when the node has no docs for it.
    pub signature: String,
    pub doc: Option<String>,
    /// `@doc false`.
    pub hidden: bool,
    pub deprecated: Option<String>,
    /// `map(t(), (element() -> any())) :: list()`, one per clause.
    pub specs: Vec<String>,
}

/// What the node knows about one module.
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleDocs {
    /// As written in source: `Enum`, `:ets`.
    pub module: String,
    pub node: String,
    pub md5: Vec<u8>,
    pub loaded: bool,
    /// Whether the module has a docs chunk.
    pub has_docs: bool,
    pub moduledoc: Option<String>,
    /// Exports (generated ones left out), sorted by name and arity.
    pub functions: Vec<FunDoc>,
}

impl ModuleDocs {
    /// Functions named `name` callable with `arity` arguments (all arities without one).
    pub fn lookup(&self, name: &str, arity: Option<u32>) -> Vec<&FunDoc> {
        let named: Vec<&FunDoc> = self.functions.iter().filter(|f| f.name == name).collect();
        let Some(a) = arity else { return named };
        let exact: Vec<&FunDoc> = named.iter().copied().filter(|f| f.arity == a).collect();
        if !exact.is_empty() {
            return exact;
        }
        let by_defaults: Vec<&FunDoc> = named
            .iter()
            .copied()
            .filter(|f| a <= f.arity && a + f.defaults >= f.arity)
            .collect();
        if by_defaults.is_empty() {
            named
        } else {
            by_defaults
        }
    }

    /// Functions for completion: not hidden, not `__x__`.
    pub fn completable(&self) -> impl Iterator<Item = &FunDoc> {
        self.functions
            .iter()
            .filter(|f| !f.hidden && !f.name.starts_with("__"))
    }
}

/// (node, module atom) → docs and when the node last confirmed them.
type Cache = HashMap<(String, String), (Arc<ModuleDocs>, Instant)>;

/// One cache per process: a process serves one workspace.
fn cache() -> &'static Mutex<Cache> {
    static CACHE: std::sync::OnceLock<Mutex<Cache>> = std::sync::OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

fn cached(node: &str, module_atom: &str) -> Option<(Arc<ModuleDocs>, Instant)> {
    cache()
        .lock()
        .ok()?
        .get(&(node.to_string(), module_atom.to_string()))
        .cloned()
}

fn store(node: &str, module_atom: &str, docs: Option<Arc<ModuleDocs>>) {
    if let Ok(mut c) = cache().lock() {
        let key = (node.to_string(), module_atom.to_string());
        match docs {
            Some(d) => {
                if c.len() >= CACHE_MODULES {
                    c.clear();
                }
                c.insert(key, (d, Instant::now()));
            }
            None => {
                c.remove(&key);
            }
        }
    }
}

/// Docs of `module` (`KV.Bucket`, `:ets`) from the primary node; `Ok(None)` when the node
/// has no such module.
pub async fn module_docs(
    session: &Session,
    module: &str,
) -> Result<Option<Arc<ModuleDocs>>, String> {
    let conn = session.primary().map_err(|e| e.to_string())?;
    module_docs_on(&conn, module).await
}

/// Docs of `module` from the node behind `conn`, through the md5-checked cache.
pub async fn module_docs_on(
    conn: &Connection,
    module: &str,
) -> Result<Option<Arc<ModuleDocs>>, String> {
    let node = conn.peer().to_string();
    let matom = term::module_atom(module);
    let known = cached(&node, &matom);
    if let Some((d, checked)) = &known {
        if checked.elapsed() < RECHECK {
            return Ok(Some(d.clone()));
        }
    }
    let known = known.map(|(d, _)| d);
    let known_md5 = match &known {
        Some(d) => Term::Binary(eetf::Binary::from(d.md5.clone())),
        None => atom("nil"),
    };
    let limits = map(vec![("doc_bytes", int(DOC_BYTES))]);
    let reply = agent::call(
        conn,
        "docs",
        vec![binary(&matom), known_md5, limits],
        TIMEOUT,
    )
    .await
    .map_err(|e| e.to_string())?;
    if term::is_atom(&reply, "unchanged") {
        store(&node, &matom, known.clone());
        return Ok(known);
    }
    if term::is_atom(&reply, "nil") {
        store(&node, &matom, None);
        return Ok(None);
    }
    let docs = Arc::new(parse(module, &node, &reply));
    store(&node, &matom, Some(docs.clone()));
    Ok(Some(docs))
}

fn string_or_none(t: Option<&Term>) -> Option<String> {
    match t {
        Some(Term::Binary(b)) => Some(String::from_utf8_lossy(&b.bytes).into_owned()),
        _ => None,
    }
}

fn kind_of(t: Option<&Term>) -> Option<Kind> {
    match t.and_then(term::as_atom) {
        Some("function") => Some(Kind::Function),
        Some("macro") => Some(Kind::Macro),
        _ => None,
    }
}

struct Entry {
    kind: Kind,
    name: String,
    arity: u32,
    defaults: u32,
    signature: String,
    doc: Option<String>,
    hidden: bool,
    deprecated: Option<String>,
}

/// Turn the agent's answer into [`ModuleDocs`].
pub fn parse(module: &str, node: &str, reply: &Term) -> ModuleDocs {
    let md5 = match term::get(reply, "md5") {
        Some(Term::Binary(b)) => b.bytes.clone(),
        _ => vec![],
    };
    let docs = term::get(reply, "docs").filter(|d| matches!(d, Term::Map(_)));
    let entries: Vec<Entry> = docs
        .and_then(|d| term::get(d, "entries"))
        .map(term::list_ref)
        .unwrap_or(&[])
        .iter()
        .filter_map(|e| {
            Some(Entry {
                kind: kind_of(term::get(e, "kind"))?,
                name: term::get(e, "name").and_then(term::as_atom)?.to_string(),
                arity: term::get_int(e, "arity")? as u32,
                defaults: term::get_int(e, "defaults").unwrap_or(0) as u32,
                signature: string_or_none(term::get(e, "signature")).unwrap_or_default(),
                doc: string_or_none(term::get(e, "doc")),
                hidden: term::get(e, "hidden").is_some_and(|h| term::is_atom(h, "true")),
                deprecated: string_or_none(term::get(e, "deprecated")),
            })
        })
        .collect();
    let mut specs: HashMap<(String, u32), Vec<String>> = HashMap::new();
    for s in term::get(reply, "specs").map(term::list_ref).unwrap_or(&[]) {
        if let Some([fa, texts]) = term::as_tuple(s) {
            if let Some([f, a]) = term::as_tuple(fa) {
                let (Some(f), Some(a)) = (term::as_atom(f), term::as_int(a)) else {
                    continue;
                };
                let texts = term::list_ref(texts)
                    .iter()
                    .filter_map(|t| string_or_none(Some(t)))
                    .collect();
                specs.insert((f.to_string(), a as u32), texts);
            }
        }
    }
    let mut exports: Vec<(Kind, String, u32)> = term::get(reply, "exports")
        .map(term::list_ref)
        .unwrap_or(&[])
        .iter()
        .filter_map(|e| match term::as_tuple(e) {
            Some([k, n, a]) => Some((
                kind_of(Some(k))?,
                term::as_atom(n)?.to_string(),
                term::as_int(a)? as u32,
            )),
            _ => None,
        })
        .collect();
    if exports.is_empty() {
        exports = entries
            .iter()
            .map(|e| (e.kind, e.name.clone(), e.arity))
            .collect();
    }
    exports.sort_by(|a, b| (&a.1, a.2).cmp(&(&b.1, b.2)));
    exports.dedup();
    let functions = exports
        .into_iter()
        .map(|(kind, name, arity)| {
            let entry = entries
                .iter()
                .filter(|e| e.kind == kind && e.name == name)
                .find(|e| arity <= e.arity && arity + e.defaults >= e.arity);
            let specs = specs
                .get(&(name.clone(), arity))
                .or_else(|| entry.and_then(|e| specs.get(&(name.clone(), e.arity))))
                .cloned()
                .unwrap_or_default();
            FunDoc {
                kind,
                arity,
                defaults: entry.map(|e| e.defaults).unwrap_or(0),
                signature: entry.map(|e| e.signature.clone()).unwrap_or_default(),
                doc: entry.and_then(|e| e.doc.clone()),
                hidden: entry.is_some_and(|e| e.hidden),
                deprecated: entry.and_then(|e| e.deprecated.clone()),
                specs,
                name,
            }
        })
        .collect();
    ModuleDocs {
        module: module.to_string(),
        node: node.to_string(),
        md5,
        loaded: term::get(reply, "loaded").is_some_and(|l| term::is_atom(l, "true")),
        has_docs: docs.is_some(),
        moduledoc: docs.and_then(|d| string_or_none(term::get(d, "moduledoc"))),
        functions,
    }
}

/// Cut `s` to at most `max` chars on a char boundary, marking the cut.
pub fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((i, _)) => format!("{}\n\n…", &s[..i]),
    }
}

/// How a call looks: `Enum.map(enumerable, fun)`, `:ets.new/2`.
pub fn call_text(module: &str, f: &FunDoc) -> String {
    if f.signature.contains('(') {
        let first = f.signature.lines().next().unwrap_or_default();
        format!("{module}.{first}")
    } else {
        format!(
            "{module}.{}/{}",
            pretty::atom_to_elixir(&f.name).trim_start_matches(':'),
            f.arity
        )
    }
}

/// The signature and specs as an Elixir code block.
pub fn code_block(module: &str, f: &FunDoc) -> String {
    let mut out = String::from("```elixir\n");
    out.push_str(&call_text(module, f));
    out.push('\n');
    for s in &f.specs {
        out.push_str(&format!("@spec {s}\n"));
    }
    out.push_str("```");
    out
}

/// The first paragraph of a doc, for completion items.
pub fn summary(doc: &str, max: usize) -> String {
    let first = doc.split("\n\n").next().unwrap_or_default().trim();
    cut(first, max)
}

/// Markdown for one function: code block, deprecation, doc (cut at `doc_chars`).
pub fn function_markdown(module: &str, f: &FunDoc, doc_chars: usize) -> String {
    let mut out = code_block(module, f);
    if let Some(d) = &f.deprecated {
        out.push_str(&format!("\n\n**Deprecated:** {d}"));
    }
    if let Some(d) = f.doc.as_deref().filter(|d| !d.trim().is_empty()) {
        out.push_str("\n\n");
        out.push_str(&cut(d.trim(), doc_chars));
    }
    out
}

/// The hover text for a remote call `module.function` (arity when known), from the live
/// node: signature, specs and doc; `None` when the node does not know the module.
pub async fn hover(
    session: &Session,
    module: &str,
    function: &str,
    arity: Option<u32>,
) -> Option<String> {
    let docs = match module_docs(session, module).await {
        Ok(Some(d)) => d,
        Ok(None) => return None,
        Err(e) => {
            tracing::debug!("docs of {module}: {e}");
            return None;
        }
    };
    Some(render_hover(&docs, function, arity))
}

/// The hover markdown for `function` of a fetched module.
pub fn render_hover(docs: &ModuleDocs, function: &str, arity: Option<u32>) -> String {
    let found = docs.lookup(function, arity);
    let shown = match arity {
        Some(a) => format!("{function}/{a}"),
        None => function.to_string(),
    };
    if found.is_empty() {
        return format!(
            "`{}.{shown}` is not exported by `{}` on {}",
            docs.module, docs.module, docs.node
        );
    }
    let mut parts: Vec<String> = found
        .iter()
        .take(4)
        .map(|f| function_markdown(&docs.module, f, HOVER_DOC_CHARS / found.len().min(4)))
        .collect();
    if found.len() > 4 {
        parts.push(format!("… and {} more", found.len() - 4));
    }
    let source = if docs.has_docs {
        "docs"
    } else {
        "exports (no docs chunk)"
    };
    parts.push(format!("_{source} from {}_", docs.node));
    parts.join("\n\n---\n\n")
}

/// Module names under `base` (Elixir-style, `"KV"`, or `""` for top level; `":"` for Erlang
/// modules) whose next segment starts with `partial`: `(segment, is_module)` and the total.
/// Loaded modules and the modules of loaded applications count.
pub async fn complete_modules(
    conn: &Connection,
    base: &str,
    partial: &str,
    limit: usize,
) -> Result<(Vec<(String, bool)>, usize), String> {
    let base_atom = match base {
        ":" => String::new(),
        "" => "Elixir.".to_string(),
        b => format!("{}.", term::module_atom(b)),
    };
    let reply = agent::call(
        conn,
        "complete_modules",
        vec![binary(&base_atom), binary(partial), int(limit as i64)],
        TIMEOUT,
    )
    .await
    .map_err(|e| e.to_string())?;
    let items = term::get(&reply, "items")
        .map(term::list_ref)
        .unwrap_or(&[])
        .iter()
        .filter_map(|i| match term::as_tuple(i) {
            Some([s, m]) => Some((term::as_string(s)?, term::is_atom(m, "true"))),
            _ => None,
        })
        .collect();
    Ok((items, term::get_int(&reply, "total").unwrap_or(0) as usize))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::beam::term::{list, tuple};

    fn bin(s: &str) -> Term {
        binary(s)
    }

    fn sample() -> Term {
        let entry = map(vec![
            ("kind", atom("function")),
            ("name", atom("add")),
            ("arity", int(3)),
            ("defaults", int(1)),
            ("signature", bin("add(a, b, c \\\\ 0)")),
            ("doc", bin("Adds.\n\nMore text.")),
            ("hidden", atom("false")),
            ("deprecated", atom("nil")),
        ]);
        let docs = map(vec![
            ("format", bin("text/markdown")),
            ("moduledoc", bin("Calc.")),
            ("entries", list(vec![entry])),
        ]);
        map(vec![
            ("md5", bin("0123456789abcdef")),
            ("loaded", atom("true")),
            ("docs", docs),
            (
                "specs",
                list(vec![tuple(vec![
                    tuple(vec![atom("add"), int(3)]),
                    list(vec![bin(
                        "add(integer(), integer(), integer()) :: integer()",
                    )]),
                ])]),
            ),
            (
                "exports",
                list(vec![
                    tuple(vec![atom("function"), atom("add"), int(2)]),
                    tuple(vec![atom("function"), atom("add"), int(3)]),
                    tuple(vec![atom("macro"), atom("__using__"), int(1)]),
                ]),
            ),
        ])
    }

    #[test]
    fn parses_and_matches_defaults() {
        let d = parse("KV.Calc", "kv@h", &sample());
        assert!(d.has_docs && d.loaded);
        assert_eq!(d.functions.len(), 3);
        let add2 = d.lookup("add", Some(2));
        assert_eq!(add2.len(), 1);
        assert_eq!(add2[0].arity, 2);
        assert_eq!(add2[0].doc.as_deref(), Some("Adds.\n\nMore text."));
        assert_eq!(add2[0].specs.len(), 1, "spec of the full arity applies");
        assert_eq!(d.completable().count(), 2, "__using__ is left out");
        let h = render_hover(&d, "add", Some(3));
        assert!(h.contains("KV.Calc.add(a, b, c \\\\ 0)"), "{h}");
        assert!(h.contains("@spec add(integer()"), "{h}");
        assert!(h.contains("Adds."), "{h}");
        let missing = render_hover(&d, "sub", Some(2));
        assert!(missing.contains("not exported"), "{missing}");
        assert_eq!(summary("One.\n\nTwo.", 100), "One.");
        assert!(cut("abcdef", 3).starts_with("abc\n"));
    }
}
