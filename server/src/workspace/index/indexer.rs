//! Builds a [`FileIndex`] from a syntax tree: modules (nested names joined), their
//! functions (clauses merged), aliases, `use`s and `:ets.new` tables.

use tree_sitter::{Node, Tree};

use super::names::{self, Cx, Helper, NameUse};
use super::syntax::{
    alias_entries, atom_name, call_args, call_name, detached_body, do_block, keyword_arg, kids,
    module_expr, operator, pair_key, parse_head, text, Aliases,
};
use super::text::LineIndex;
use super::{FileIndex, FunKind, FunctionDef, Lit, ModuleDef, NameDef};

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
    /// Per module: `@attr value` literals so far, for `:ets.new(@attr, ..)` and names
    /// written with attributes (`{:via, Registry, {@registry, key}}`).
    attrs: Vec<Vec<(String, Lit)>>,
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
                    self.attribute(node, m, env);
                }
                self.descend(node, module, env, level.deeper());
            }
            "pair" => {
                if let Some(m) = module {
                    self.name_use(node, m, env);
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
                            if matches!(kind, FunKind::Def | FunKind::Defp) {
                                self.helper(node, *head, m, env);
                            }
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
            helpers: Vec::new(),
            name_uses: Vec::new(),
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

    /// What literals in module `m` are read against.
    fn cx<'s>(&'s self, m: usize, env: &'s Aliases) -> Cx<'s> {
        Cx {
            src: self.src,
            env,
            current: &self.modules[m].name,
            attrs: &self.attrs[m],
        }
    }

    /// `@name value` at module level, when the value is a literal.
    fn attribute(&mut self, node: Node, m: usize, env: &Aliases) {
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
            if let Some(lit) = names::literal(*value, &self.cx(m, env)) {
                self.attrs[m].push((name.to_string(), lit));
            }
        }
    }

    /// A `{:global, ..}` / `{:via, ..}` tuple: record it as a process name.
    fn proc_name(&mut self, tuple: Node, m: usize, env: &Aliases) {
        let Some(name) = names::proc_name_of(tuple, &self.cx(m, env)) else {
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

    /// `name: value` among the options of a start function (`GenServer.start_link(..,
    /// name: via_tuple(name))`), the value not a tuple written there: resolved later.
    fn name_use(&mut self, pair: Node, m: usize, env: &Aliases) {
        let src = self.src;
        let Some(value) = pair.child_by_field_name("value") else {
            return;
        };
        if pair_key(pair, src) != "name" || value.kind() == "tuple" {
            return;
        }
        let call = pair
            .parent()
            .filter(|k| k.kind() == "keywords")
            .and_then(|k| k.parent())
            .filter(|a| a.kind() == "arguments")
            .and_then(|a| a.parent());
        let starts = call
            .and_then(|c| names::called_name(c, src))
            .is_some_and(|f| matches!(f, "start_link" | "start" | "start_monitor"));
        if !starts {
            return;
        }
        let value_t = names::template(value, &self.cx(m, env), &[]);
        let range = self.lines.range(value.byte_range());
        self.modules[m].name_uses.push(NameUse {
            value: value_t,
            range,
        });
    }

    /// A one-expression `def`/`defp` whose result may be a process name (or a call that
    /// makes one): kept so that `name:` options calling it can be resolved.
    fn helper(&mut self, def: Node, head: Node, m: usize, env: &Aliases) {
        let src = self.src;
        let Some(params) = names::params(head, src) else {
            return;
        };
        let name = match head.kind() {
            "call" => head.child_by_field_name("target").map(|t| text(t, src)),
            "identifier" => Some(text(head, src)),
            _ => None,
        };
        let Some(name) = name.map(str::to_string) else {
            return;
        };
        let arity = params.len() as u32;
        if self.modules[m]
            .helpers
            .iter()
            .any(|h| h.name == name && h.arity == arity)
        {
            return;
        }
        let last = match keyword_arg(def, src, "do") {
            Some(v) => Some(v),
            None => do_block(def).and_then(|b| {
                let stmts = kids(b);
                let plain = stmts.iter().all(|s| !s.kind().ends_with("_block"));
                plain.then(|| stmts.last().copied()).flatten()
            }),
        };
        let Some(last) = last else {
            return;
        };
        let body = names::template(last, &self.cx(m, env), &params);
        if names::may_name(&body) {
            self.modules[m].helpers.push(Helper { name, arity, body });
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
                match names::literal(first, &self.cx(m, env)) {
                    Some(Lit::Atom(a)) => Some(a),
                    _ => None,
                }
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
