//! Builds a [`FileIndex`] from a syntax tree: modules (nested names joined), their
//! functions (clauses merged), aliases, `use`s and `:ets.new` tables.

use tree_sitter::{Node, Tree};

use super::syntax::{
    alias_entries, atom_name, call_args, call_name, detached_body, do_block, keyword_arg, kids,
    module_expr, operator, pair_key, parse_head, text, Aliases,
};
use super::text::LineIndex;
use super::{FileIndex, FunKind, FunctionDef, Lit, ModuleDef, NameDef, ProcName};

/// Where in a module a node sits.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    /// Directly in a module body: definitions, aliases, `use` and attributes count.
    Body,
    /// Nested in module code (`if`, `for`, a function body): definitions still count. A `def`
    /// inside a function body is invalid Elixir, so one found there is the parser's recovery
    /// from a syntax error (`x +` before `end` swallows the following definitions).
    Nested,
    /// Inside `quote`, or outside any module: definitions do not count.
    Inner,
}

impl Level {
    fn deeper(self) -> Level {
        match self {
            Level::Body | Level::Nested => Level::Nested,
            Level::Inner => Level::Inner,
        }
    }
}

pub(crate) fn index_tree(tree: &Tree, src: &str) -> FileIndex {
    let mut ix = Indexer {
        src,
        lines: LineIndex::new(src),
        modules: Vec::new(),
        attrs: Vec::new(),
    };
    let mut env = Aliases::default();
    ix.container(tree.root_node(), None, &mut env, Level::Inner);
    FileIndex {
        modules: ix.modules,
    }
}

struct Indexer<'a> {
    src: &'a str,
    lines: LineIndex<'a>,
    modules: Vec<ModuleDef>,
    /// Per module: `@attr :atom` values, to name ETS tables created with `:ets.new(@attr, ..)`.
    attrs: Vec<Vec<(String, String)>>,
}

impl Indexer<'_> {
    /// Visit the statements (named children) of `node` in order.
    fn container(&mut self, node: Node, module: Option<usize>, env: &mut Aliases, level: Level) {
        let children = kids(node);
        let mut i = 0;
        while i < children.len() {
            let child = children[i];
            let next = children.get(i + 1).copied();
            if super::syntax::is_module_call(child, self.src) {
                if let Some(body) = detached_body(child, next) {
                    self.module(child, Some(body), module, env);
                    i += 2;
                    continue;
                }
            }
            // Recovery: `def` left as a bare identifier, its head in the next sibling.
            let recover = level != Level::Inner && node.kind() == "ERROR";
            if let (Some(m), Some(args), true) = (module, next, recover) {
                let kind = (child.kind() == "identifier")
                    .then(|| FunKind::from_keyword(text(child, self.src)))
                    .flatten();
                if let Some(kind) = kind.filter(|_| args.kind() == "arguments") {
                    if let Some(head) = kids(args).first() {
                        self.function(kind, *head, child.start_byte()..args.end_byte(), m);
                    }
                    self.descend(args, module, env, Level::Nested);
                    i += 2;
                    continue;
                }
            }
            self.node(child, module, env, level);
            i += 1;
        }
    }

    fn node(&mut self, node: Node, module: Option<usize>, env: &mut Aliases, level: Level) {
        match node.kind() {
            "call" => self.call(node, module, env, level),
            // Parse errors and `(a; b)` blocks keep the level of their surroundings.
            "ERROR" | "block" => self.container(node, module, env, level),
            "tuple" => {
                if let Some(m) = module {
                    self.proc_name(node, m, env);
                }
                self.descend(node, module, env, level.deeper());
            }
            "unary_operator" => {
                if let (Level::Body, Some(m)) = (level, module) {
                    self.attribute(node, m);
                }
                self.descend(node, module, env, level.deeper());
            }
            _ => self.descend(node, module, env, level.deeper()),
        }
    }

    /// Visit children in a nested lexical scope: aliases made there do not leak out.
    fn descend(&mut self, node: Node, module: Option<usize>, env: &mut Aliases, level: Level) {
        let mark = env.len();
        self.container(node, module, env, level);
        env.truncate(mark);
    }

    fn call(&mut self, node: Node, module: Option<usize>, env: &mut Aliases, level: Level) {
        let name = call_name(node, self.src);
        match name {
            Some("defmodule" | "defprotocol" | "defimpl") => {
                self.module(node, do_block(node), module, env);
                return;
            }
            Some("quote") => {
                self.descend(node, module, env, Level::Inner);
                return;
            }
            Some("alias") => {
                let current = module
                    .map(|m| self.modules[m].name.clone())
                    .unwrap_or_default();
                let entries = alias_entries(node, self.src, env, &current);
                if let (Level::Body, Some(m)) = (level, module) {
                    self.modules[m].aliases.extend(entries.iter().cloned());
                }
                env.0.extend(entries);
                return;
            }
            Some("use") => {
                if let (Level::Body, Some(m)) = (level, module) {
                    self.use_call(node, m, env);
                }
            }
            Some(k) => {
                if let (Some(kind), Some(m)) = (FunKind::from_keyword(k), module) {
                    if level != Level::Inner {
                        if let Some(head) = call_args(node).first() {
                            self.function(kind, *head, node.byte_range(), m);
                        }
                        self.descend(node, module, env, Level::Nested);
                        return;
                    }
                }
            }
            None => {}
        }
        if let Some(m) = module {
            self.ets_new(node, m, env);
        }
        self.descend(node, module, env, level.deeper());
    }

    fn module(&mut self, call: Node, body: Option<Node>, parent: Option<usize>, env: &mut Aliases) {
        let src = self.src;
        let parent_name = parent.map(|p| self.modules[p].name.clone());
        let current = parent_name.clone().unwrap_or_default();
        let first = call_args(call).into_iter().next();
        let named = first.and_then(|first| {
            let name = if call_name(call, src) == Some("defimpl") {
                let proto = module_expr(first, src, env, &current)?;
                let target = keyword_arg(call, src, "for")
                    .and_then(|f| module_expr(f, src, env, &current))
                    .or_else(|| parent_name.clone());
                match target {
                    Some(t) => format!("{proto}.{t}"),
                    None => proto,
                }
            } else if first.kind() == "alias" {
                let raw: String = text(first, src).split_whitespace().collect();
                match &parent_name {
                    Some(p) if !env.knows(&raw) && !raw.starts_with("Elixir.") => {
                        // `defmodule Inner` inside `P` is `P.Inner`, and aliases `Inner`.
                        let seg = raw.split('.').next().unwrap_or(&raw).to_string();
                        env.push(seg.clone(), format!("{p}.{seg}"));
                        format!("{p}.{raw}")
                    }
                    _ => env.resolve(&raw),
                }
            } else {
                module_expr(first, src, env, &current)?
            };
            Some((name, first))
        });
        let Some((name, name_node)) = named else {
            // Unnamed (e.g. `defmodule unquote(x)`): still look inside.
            if let Some(body) = body {
                self.descend(body, parent, env, Level::Inner);
            }
            return;
        };
        let end = body.map_or(call.end_byte(), |b| b.end_byte().max(call.end_byte()));
        self.modules.push(ModuleDef {
            name,
            range: self.lines.range(call.start_byte()..end),
            name_range: self.lines.range(name_node.byte_range()),
            functions: Vec::new(),
            aliases: Vec::new(),
            uses: Vec::new(),
            line_of_use: None,
            ets_tables: Vec::new(),
            names: Vec::new(),
        });
        self.attrs.push(Vec::new());
        let idx = self.modules.len() - 1;
        if let Some(body) = body {
            let mut inner = env.clone();
            self.container(body, Some(idx), &mut inner, Level::Body);
        }
    }

    /// A definition whose head is `head_node`, spanning `bytes`.
    fn function(
        &mut self,
        kind: FunKind,
        head_node: Node,
        bytes: std::ops::Range<usize>,
        m: usize,
    ) {
        let src = self.src;
        let Some(head) = parse_head(head_node, src) else {
            return;
        };
        let range = self.lines.range(bytes);
        let guard = head.guard.map(|g| text(g, src).to_string());
        let functions = &mut self.modules[m].functions;
        if let Some(last) = functions.last_mut() {
            if last.name == head.name && last.arity == head.arity && last.kind == kind {
                last.clauses += 1;
                last.range.end = range.end;
                last.guards.extend(guard);
                last.defaults = last.defaults.max(head.defaults);
                return;
            }
        }
        functions.push(FunctionDef {
            name: head.name,
            arity: head.arity,
            kind,
            range,
            name_range: self.lines.range(head.name_node.byte_range()),
            clauses: 1,
            guards: guard.into_iter().collect(),
            head_end: self.lines.position(head_node.end_byte()),
            defaults: head.defaults,
        });
    }

    fn use_call(&mut self, call: Node, m: usize, env: &Aliases) {
        let current = self.modules[m].name.clone();
        let Some(first) = call_args(call).into_iter().next() else {
            return;
        };
        if let Some(name) = module_expr(first, self.src, env, &current) {
            let line = self.lines.position(call.start_byte()).line;
            let module = &mut self.modules[m];
            module.uses.push(name);
            module.line_of_use.get_or_insert(line);
        }
    }

    /// `@name :atom` at module level.
    fn attribute(&mut self, node: Node, m: usize) {
        if operator(node, self.src) != "@" {
            return;
        }
        let Some(operand) = node.child_by_field_name("operand") else {
            return;
        };
        let Some(name) = call_name(operand, self.src) else {
            return;
        };
        let args = call_args(operand);
        if let [value] = args.as_slice() {
            if let Some(atom) = atom_name(*value, self.src) {
                self.attrs[m].push((name.to_string(), atom));
            }
        }
    }

    /// A `{:global, ..}` / `{:via, ..}` tuple: record it as a process name.
    fn proc_name(&mut self, tuple: Node, m: usize, env: &Aliases) {
        let current = self.modules[m].name.clone();
        let Some(name) = proc_name_of(tuple, self.src, env, &current) else {
            return;
        };
        let registers = tuple
            .parent()
            .filter(|p| p.kind() == "pair")
            .is_some_and(|p| pair_key(p, self.src) == "name");
        let range = self.lines.range(tuple.byte_range());
        let names = &mut self.modules[m].names;
        if let Some(same) = names.iter_mut().find(|n| n.name == name) {
            same.registers |= registers;
        } else {
            names.push(NameDef {
                name,
                registers,
                range,
            });
        }
    }

    /// `:ets.new(name, opts)`: record the table's atom name.
    fn ets_new(&mut self, call: Node, m: usize, env: &Aliases) {
        let src = self.src;
        let Some(target) = call
            .child_by_field_name("target")
            .filter(|t| t.kind() == "dot")
        else {
            return;
        };
        let is_ets_new = target
            .child_by_field_name("left")
            .is_some_and(|l| text(l, src) == ":ets")
            && target
                .child_by_field_name("right")
                .is_some_and(|r| text(r, src) == "new");
        if !is_ets_new {
            return;
        }
        let Some(first) = call_args(call).into_iter().next() else {
            return;
        };
        let name = match first.kind() {
            "atom" | "quoted_atom" => atom_name(first, src),
            "unary_operator" if operator(first, src) == "@" => {
                let attr = first.child_by_field_name("operand").map(|o| text(o, src));
                attr.and_then(|a| {
                    self.attrs[m]
                        .iter()
                        .rev()
                        .find(|(n, _)| n == a)
                        .map(|(_, v)| v.clone())
                })
            }
            _ => {
                let current = self.modules[m].name.clone();
                module_expr(first, src, env, &current)
                    .filter(|n| !n.starts_with(':'))
                    .map(|n| format!("Elixir.{n}"))
            }
        };
        if let Some(name) = name {
            let range = self.lines.range(call.byte_range());
            self.modules[m].ets_tables.push((name, range));
        }
    }
}

/// A literal term: atoms, aliases and `__MODULE__` (as atoms), strings without
/// interpolation, integers, and tuples of those.
fn literal(node: Node, src: &str, env: &Aliases, current: &str) -> Option<Lit> {
    match node.kind() {
        "atom" | "quoted_atom" => atom_name(node, src).map(Lit::Atom),
        "alias" | "identifier" | "dot" => module_expr(node, src, env, current)
            .filter(|m| !m.starts_with(':'))
            .map(|m| Lit::Atom(format!("Elixir.{m}"))),
        "integer" => text(node, src).replace('_', "").parse().ok().map(Lit::Int),
        "string" => {
            let parts = kids(node);
            if parts.iter().any(|p| p.kind() != "quoted_content") {
                return None;
            }
            Some(Lit::Str(
                parts.iter().map(|p| text(*p, src)).collect::<String>(),
            ))
        }
        "tuple" => kids(node)
            .into_iter()
            .map(|k| literal(k, src, env, current))
            .collect::<Option<Vec<_>>>()
            .map(Lit::Tuple),
        _ => None,
    }
}

/// `{:global, name}`, `{:via, Mod, name}` with literal parts; `{:via, Registry, {Reg, key}}`
/// with a non-literal key is `RegistryAny`.
fn proc_name_of(tuple: Node, src: &str, env: &Aliases, current: &str) -> Option<ProcName> {
    let items = kids(tuple);
    let tag = atom_name(*items.first()?, src)?;
    match (tag.as_str(), items.as_slice()) {
        ("global", [_, name]) => Some(ProcName::Global(literal(*name, src, env, current)?)),
        ("via", [_, module, name]) => {
            let module = match literal(*module, src, env, current)? {
                Lit::Atom(a) => a,
                _ => return None,
            };
            if let Some(name) = literal(*name, src, env, current) {
                return Some(ProcName::Via { module, name });
            }
            // A Registry with a literal registry name and a computed key.
            let pair = kids(*name);
            match (module.as_str(), name.kind(), pair.as_slice()) {
                ("Elixir.Registry", "tuple", [reg, key]) => {
                    match literal(*reg, src, env, current)? {
                        Lit::Atom(registry) => Some(ProcName::RegistryAny {
                            registry,
                            key: key_pattern(*key, src, env, current),
                        }),
                        _ => None,
                    }
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// A Registry key with computed parts: a tuple whose literal items stay and whose other
/// items become `_` (`Lit::Atom("_")`); `None` when no part is literal.
fn key_pattern(node: Node, src: &str, env: &Aliases, current: &str) -> Option<Lit> {
    if node.kind() != "tuple" {
        return None;
    }
    let items: Vec<Lit> = kids(node)
        .into_iter()
        .map(|k| {
            literal(k, src, env, current)
                .or_else(|| key_pattern(k, src, env, current))
                .unwrap_or_else(|| Lit::Atom("_".into()))
        })
        .collect();
    items
        .iter()
        .any(|i| !matches!(i, Lit::Atom(a) if a == "_"))
        .then_some(Lit::Tuple(items))
}

/// The first process name in a parsed snippet (for `orrery/state` targets).
pub(crate) fn proc_name_in(tree: &Tree, src: &str) -> Option<ProcName> {
    fn find<'t>(n: Node<'t>) -> Option<Node<'t>> {
        if n.kind() == "tuple" {
            return Some(n);
        }
        kids(n).into_iter().find_map(find)
    }
    let tuple = find(tree.root_node())?;
    proc_name_of(tuple, src, &Aliases::default(), "")
}
