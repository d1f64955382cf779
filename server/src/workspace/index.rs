//! The tree-sitter-elixir index of the workspace: modules, functions (clauses merged),
//! aliases, `use`s and ETS tables per file, plus `reference_at` for the token under the
//! cursor.
//!
//! Conventions:
//! - Positions are 0-based; `character` counts UTF-16 code units, like LSP.
//! - Module names are Elixir-style without the `Elixir.` prefix (`"KV.Calc"`). Erlang modules
//!   keep their leading colon: `:ets.new(...)` refers to module `":ets"`.
//! - Atom names are the atom's text without the colon (`:kv_table` → `"kv_table"`); ETS tables
//!   named by a module (`:ets.new(__MODULE__, ..)`) get the real atom name (`"Elixir.KV.Calc"`).
//! - Parsing never fails: tree-sitter recovers from syntax errors and the index keeps what it
//!   can recognise (a module whose body the parser detached is still found).

mod indexer;
mod names;
mod refs;
mod syntax;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_names;
#[cfg(test)]
mod tests_refs;
mod text;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use names::{to_proc_name, Helper, NameUse, Tmpl};

/// 0-based line and UTF-16 column, like an LSP position.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Position {
    pub line: u32,
    pub character: u32,
}

impl Position {
    pub fn new(line: u32, character: u32) -> Self {
        Self { line, character }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Range {
    pub start: Position,
    pub end: Position,
}

impl Range {
    /// Whether `pos` lies in the range, both ends included (a cursor just after a token is
    /// still on it).
    pub fn contains(&self, pos: Position) -> bool {
        self.start <= pos && pos <= self.end
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FunKind {
    Def,
    Defp,
    Defmacro,
    Defmacrop,
    Defguard,
    Defguardp,
    Defdelegate,
}

impl FunKind {
    pub fn from_keyword(word: &str) -> Option<Self> {
        Some(match word {
            "def" => Self::Def,
            "defp" => Self::Defp,
            "defmacro" => Self::Defmacro,
            "defmacrop" => Self::Defmacrop,
            "defguard" => Self::Defguard,
            "defguardp" => Self::Defguardp,
            "defdelegate" => Self::Defdelegate,
            _ => return None,
        })
    }

    pub fn keyword(self) -> &'static str {
        match self {
            Self::Def => "def",
            Self::Defp => "defp",
            Self::Defmacro => "defmacro",
            Self::Defmacrop => "defmacrop",
            Self::Defguard => "defguard",
            Self::Defguardp => "defguardp",
            Self::Defdelegate => "defdelegate",
        }
    }

    /// Callable from other modules.
    pub fn is_public(self) -> bool {
        matches!(
            self,
            Self::Def | Self::Defmacro | Self::Defguard | Self::Defdelegate
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionDef {
    pub name: String,
    /// Full arity, default arguments included.
    pub arity: u32,
    pub kind: FunKind,
    /// First clause's `def` to the end of the last clause.
    pub range: Range,
    /// The first clause's name.
    pub name_range: Range,
    /// Consecutive clauses with the same name, arity and kind (bodiless heads count).
    pub clauses: u32,
    /// Source of each `when` guard, in clause order; clauses without a guard add nothing.
    pub guards: Vec<String>,
    /// End of the first clause's head (after `)` or the guard): where an inlay hint goes.
    pub head_end: Position,
    /// Number of `\\` default arguments: callable with `arity - defaults ..= arity` args.
    pub defaults: u32,
}

impl FunctionDef {
    /// Whether a call with `arity` arguments can reach this function.
    pub fn accepts(&self, arity: u32) -> bool {
        arity <= self.arity && arity + self.defaults >= self.arity
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleDef {
    /// Full name, nesting applied: `defmodule Inner` in `KV.Calc` is `"KV.Calc.Inner"`.
    /// `defimpl P, for: T` is `"P.T"`.
    pub name: String,
    pub range: Range,
    pub name_range: Range,
    /// Functions defined directly in this module (not in nested modules).
    pub functions: Vec<FunctionDef>,
    /// Module-level `alias` statements as `(short, full)`; all forms expanded.
    pub aliases: Vec<(String, String)>,
    /// Module-level `use` targets, alias-resolved (`"GenServer"`).
    pub uses: Vec<String>,
    /// Line of the first `use`.
    pub line_of_use: Option<u32>,
    /// `:ets.new(name, ..)` calls in this module: atom name and the range of the call.
    pub ets_tables: Vec<(String, Range)>,
    /// Process names written in this module: `{:global, ..}`, `{:via, Mod, ..}` tuples.
    pub names: Vec<NameDef>,
    /// Functions whose result may be a process name (`via_tuple(key)`), for `name_uses`.
    pub helpers: Vec<Helper>,
    /// `name:` options of start functions whose value is not a tuple written there
    /// (`name: via_tuple(name)`); [`WorkspaceIndex::names_of`] resolves them.
    pub name_uses: Vec<NameUse>,
}

/// A term written literally in the source. Atoms carry their Erlang text (`kv_main`,
/// `Elixir.KV.Names` for an alias or `__MODULE__`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Lit {
    Atom(String),
    Str(String),
    Int(i64),
    Tuple(Vec<Lit>),
}

impl Lit {
    /// Elixir syntax: `:kv_main`, `KV.Names`, `"main"`, `{:w, 1}`.
    pub fn elixir(&self) -> String {
        match self {
            Lit::Atom(a) => match a.strip_prefix("Elixir.") {
                Some(m) => m.to_string(),
                None if a.chars().all(|c| c.is_alphanumeric() || c == '_') => format!(":{a}"),
                None => format!(":{a:?}"),
            },
            Lit::Str(s) => format!("{s:?}"),
            Lit::Int(i) => i.to_string(),
            Lit::Tuple(items) => format!(
                "{{{}}}",
                items.iter().map(Lit::elixir).collect::<Vec<_>>().join(", ")
            ),
        }
    }
}

/// A process name as `GenServer.whereis/1` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProcName {
    /// `{:global, name}`.
    Global(Lit),
    /// `{:via, Mod, name}` (`Registry` included when its key is literal); `module` is the
    /// Erlang atom text (`Elixir.Registry`).
    Via { module: String, name: Lit },
    /// `{:via, Registry, {Reg, key}}` whose key is not a literal: the processes of `Reg`
    /// whose key matches `key`, a pattern where `Lit::Atom("_")` stands for a computed
    /// part (`{:worker, id}` is `{:worker, _}`); `None` when the whole key is computed.
    RegistryAny { registry: String, key: Option<Lit> },
    /// A `name:` the index cannot tell (`name: opts[:name]`, a helper outside the
    /// workspace): the module's processes and their names are found on the node.
    Runtime,
}

impl ProcName {
    /// Elixir syntax; a non-literal Registry key shows as `_`.
    pub fn elixir(&self) -> String {
        match self {
            ProcName::Global(n) => format!("{{:global, {}}}", n.elixir()),
            ProcName::Via { module, name } => format!(
                "{{:via, {}, {}}}",
                Lit::Atom(module.clone()).elixir(),
                name.elixir()
            ),
            ProcName::RegistryAny { registry, key } => format!(
                "{{:via, Registry, {{{}, {}}}}}",
                Lit::Atom(registry.clone()).elixir(),
                key.as_ref().map_or("_".to_string(), pattern_elixir)
            ),
            ProcName::Runtime => "names found on the node".to_string(),
        }
    }
}

/// A key pattern in Elixir syntax: the computed parts (`Lit::Atom("_")`) as `_`.
fn pattern_elixir(l: &Lit) -> String {
    match l {
        Lit::Atom(a) if a == "_" => "_".into(),
        Lit::Tuple(items) => format!(
            "{{{}}}",
            items
                .iter()
                .map(pattern_elixir)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.elixir(),
    }
}

/// A process name found in a module's source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameDef {
    pub name: ProcName,
    /// Given as `name:` (so the module starts the process under it), not just used.
    pub registers: bool,
    pub range: Range,
}

impl ModuleDef {
    /// The function whose range contains `pos`.
    pub fn function_at(&self, pos: Position) -> Option<&FunctionDef> {
        self.functions.iter().find(|f| f.range.contains(pos))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileIndex {
    /// Every module of the file, nested ones included, in source order (outer first).
    pub modules: Vec<ModuleDef>,
}

impl FileIndex {
    /// The innermost module containing `pos`.
    pub fn module_at(&self, pos: Position) -> Option<&ModuleDef> {
        self.modules
            .iter()
            .filter(|m| m.range.contains(pos))
            .max_by_key(|m| m.range.start)
    }

    /// The function containing `pos`, with its (innermost) module.
    pub fn function_at(&self, pos: Position) -> Option<(&ModuleDef, &FunctionDef)> {
        let module = self.module_at(pos)?;
        Some((module, module.function_at(pos)?))
    }
}

/// Parse a process name written as Elixir (`{:global, :kv}`, `{:via, Registry, {R, "k"}}`).
pub fn parse_proc_name(src: &str) -> Option<ProcName> {
    let tree = syntax::parse(src)?;
    names::proc_name_in(&tree, src)
}

/// Parse a literal written as Elixir (`{1, 2}`, `"bob"`, `:a`, `Todo.Server`).
pub fn parse_literal(src: &str) -> Option<Lit> {
    let tree = syntax::parse(src)?;
    names::literal_in(&tree, src)
}

/// Index one Elixir source text.
/// Largest file the index parses (bytes); bigger documents are tracked, not indexed.
pub const MAX_INDEXED: usize = 2 * 1024 * 1024;

pub fn index_source(src: &str) -> FileIndex {
    match syntax::parse(src) {
        Some(tree) => indexer::index_tree(&tree, src),
        None => FileIndex::default(),
    }
}

/// What the cursor is on. Module names are alias-resolved and Erlang modules carry a
/// leading `:` (`":ets"`); atoms have no colon. `arity` is `None` when it cannot be told
/// (a remote name that is not called). `LocalCall::module` is the enclosing module (`""`
/// outside any module); a definition's own name is a `LocalCall` too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Reference {
    Module {
        name: String,
        range: Range,
    },
    RemoteCall {
        module: String,
        function: String,
        arity: Option<u32>,
        range: Range,
    },
    LocalCall {
        module: String,
        function: String,
        arity: Option<u32>,
        range: Range,
    },
    Atom {
        name: String,
        range: Range,
    },
}

impl Reference {
    pub fn range(&self) -> Range {
        match self {
            Self::Module { range, .. }
            | Self::RemoteCall { range, .. }
            | Self::LocalCall { range, .. }
            | Self::Atom { range, .. } => *range,
        }
    }
}

/// The reference under the cursor (or just before it), if any.
pub fn reference_at(src: &str, pos: Position) -> Option<Reference> {
    refs::reference_at(src, pos)
}

/// Directories never indexed.
const SKIP_DIRS: &[&str] = &[
    "_build",
    "deps",
    "node_modules",
    ".git",
    ".elixir_ls",
    ".orrery",
];

/// Index of every Elixir file of the workspace, keyed by path (as given, not canonicalised).
#[derive(Debug, Clone, Default)]
pub struct WorkspaceIndex {
    files: BTreeMap<PathBuf, FileIndex>,
}

impl WorkspaceIndex {
    pub fn new() -> Self {
        Self::default()
    }

    /// (Re-)index one file from its current text. A file over [`MAX_INDEXED`] bytes is
    /// not indexed (parsing it would take a lot of time and memory): `false`.
    pub fn update(&mut self, path: PathBuf, src: &str) -> bool {
        if src.len() > MAX_INDEXED {
            self.files.remove(&path);
            return false;
        }
        self.files.insert(path, index_source(src));
        true
    }

    pub fn remove(&mut self, path: &Path) {
        self.files.remove(path);
    }

    /// Index `.ex`/`.exs` files under `lib/`, `test/`, `apps/*/lib` and `apps/*/test` of
    /// `root`, skipping `_build`, `deps`, `node_modules` and `.git`. Symlinked directories are
    /// not followed. Returns the number of files indexed.
    pub fn index_dir(&mut self, root: &Path) -> usize {
        let mut dirs = vec![root.join("lib"), root.join("test")];
        if let Ok(apps) = std::fs::read_dir(root.join("apps")) {
            let mut apps: Vec<PathBuf> = apps
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect();
            apps.sort();
            for app in apps {
                dirs.push(app.join("lib"));
                dirs.push(app.join("test"));
            }
        }
        let mut files = Vec::new();
        for dir in dirs {
            collect_elixir_files(&dir, &mut files);
        }
        let mut count = 0;
        for file in files {
            if let Ok(bytes) = std::fs::read(&file) {
                self.update(file, &String::from_utf8_lossy(&bytes));
                count += 1;
            }
        }
        count
    }

    /// Index every Elixir source under `dir` (as `index_dir` skips `_build`, `deps`, ..
    /// below it). Returns the number of files indexed.
    pub fn index_tree(&mut self, dir: &Path) -> usize {
        let mut files = Vec::new();
        collect_elixir_files(dir, &mut files);
        let mut count = 0;
        for file in files {
            if let Ok(bytes) = std::fs::read(&file) {
                self.update(file, &String::from_utf8_lossy(&bytes));
                count += 1;
            }
        }
        count
    }

    pub fn file(&self, path: &Path) -> Option<&FileIndex> {
        self.files.get(path)
    }

    pub fn files(&self) -> impl Iterator<Item = (&Path, &FileIndex)> {
        self.files.iter().map(|(p, f)| (p.as_path(), f))
    }

    pub fn modules(&self) -> impl Iterator<Item = (&Path, &ModuleDef)> {
        self.files
            .iter()
            .flat_map(|(p, f)| f.modules.iter().map(move |m| (p.as_path(), m)))
    }

    /// The module named `name` (`"KV.Calc"`, or `"Elixir.KV.Calc"`). If several files define
    /// it, the first by path wins.
    pub fn find_module(&self, name: &str) -> Option<(PathBuf, &ModuleDef)> {
        let name = name.strip_prefix("Elixir.").unwrap_or(name);
        self.modules()
            .find(|(_, m)| m.name == name)
            .map(|(p, m)| (p.to_path_buf(), m))
    }

    /// Definitions of `module.name`; with an arity, those callable with that many arguments
    /// (default arguments considered).
    pub fn find_function(
        &self,
        module: &str,
        name: &str,
        arity: Option<u32>,
    ) -> Vec<(PathBuf, &FunctionDef)> {
        let module = module.strip_prefix("Elixir.").unwrap_or(module);
        self.modules()
            .filter(|(_, m)| m.name == module)
            .flat_map(|(p, m)| m.functions.iter().map(move |f| (p, f)))
            .filter(|(_, f)| f.name == name && arity.is_none_or(|a| f.accepts(a)))
            .map(|(p, f)| (p.to_path_buf(), f))
            .collect()
    }

    /// Workspace symbols matching `query` (case-insensitive subsequence; empty matches all):
    /// `(path, "KV.Calc" or "KV.Calc.add/2", name range, is_module)`, best matches first
    /// (exact name, then prefix, then substring, then subsequence; shorter names first).
    pub fn symbols(&self, query: &str) -> Vec<(PathBuf, String, Range, bool)> {
        let query = query.to_lowercase();
        let mut found: Vec<(u8, PathBuf, String, Range, bool)> = Vec::new();
        for (path, module) in self.modules() {
            if let Some(score) =
                fuzzy_score(&query, &module.name, syntax::last_segment(&module.name))
            {
                found.push((
                    score,
                    path.to_path_buf(),
                    module.name.clone(),
                    module.name_range,
                    true,
                ));
            }
            for f in &module.functions {
                let full = format!("{}.{}/{}", module.name, f.name, f.arity);
                if let Some(score) = fuzzy_score(&query, &full, &f.name) {
                    found.push((score, path.to_path_buf(), full, f.name_range, false));
                }
            }
        }
        found.sort_by(|a, b| (a.0, a.2.len(), &a.2, &a.1).cmp(&(b.0, b.2.len(), &b.2, &b.1)));
        found
            .into_iter()
            .map(|(_, p, n, r, m)| (p, n, r, m))
            .collect()
    }
}

/// Lower is better; `None` if `query` (already lower-case) is not a subsequence of `full`.
fn fuzzy_score(query: &str, full: &str, short: &str) -> Option<u8> {
    let full_l = full.to_lowercase();
    let short_l = short.to_lowercase();
    if query.is_empty() {
        return Some(4);
    }
    if short_l == query || full_l == query {
        return Some(0);
    }
    if short_l.starts_with(query) || full_l.starts_with(query) {
        return Some(1);
    }
    if full_l.contains(query) {
        return Some(2);
    }
    let mut chars = full_l.chars();
    query.chars().all(|q| chars.any(|c| c == q)).then_some(3)
}

fn collect_elixir_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let name = entry.file_name();
        if kind.is_dir() {
            if !SKIP_DIRS.iter().any(|s| name == *s) {
                collect_elixir_files(&path, out);
            }
            continue;
        }
        let is_file = kind.is_file() || (kind.is_symlink() && path.is_file());
        if is_file && is_elixir(&path) {
            out.push(path);
        }
    }
}

/// Whether the index reads this file: Elixir sources (`.ex`, `.exs`) only.
pub fn is_elixir(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("ex" | "exs")
    )
}
