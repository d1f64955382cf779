//! `reference_at`: what the token under the cursor refers to, with aliases resolved.

use tree_sitter::Node;

use super::indexer::index_tree;
use super::syntax::{
    alias_entries, atom_name, call_arity, call_name, capture_arity, is_module_call, kids,
    module_expr, pair_key, parse, parse_head, text, Aliases,
};
use super::text::LineIndex;
use super::{FileIndex, FunKind, Position, Reference};

/// Names that are language constructs rather than calls to user functions.
const RESERVED: &[&str] = &[
    "defmodule",
    "def",
    "defp",
    "defmacro",
    "defmacrop",
    "defguard",
    "defguardp",
    "defdelegate",
    "defstruct",
    "defexception",
    "defprotocol",
    "defimpl",
    "defoverridable",
    "alias",
    "import",
    "require",
    "use",
    "quote",
    "unquote",
    "unquote_splicing",
    "if",
    "unless",
    "case",
    "cond",
    "with",
    "for",
    "try",
    "receive",
    "fn",
    "super",
    "__MODULE__",
    "__ENV__",
    "__CALLER__",
    "__DIR__",
    "__STACKTRACE__",
    "and",
    "or",
    "not",
    "in",
    "when",
];

pub(crate) fn reference_at(src: &str, pos: Position) -> Option<Reference> {
    let tree = parse(src)?;
    let lines = LineIndex::new(src);
    let byte = lines.offset(pos)?;
    let file = index_tree(&tree, src);
    let cx = Cx {
        src,
        lines: &lines,
        file: &file,
    };
    let root = tree.root_node();
    // The cursor may sit just after the token (`add|(`): try the byte before too.
    let mut tries = vec![byte];
    if byte > 0 {
        tries.push(byte - 1);
    }
    tries.into_iter().find_map(|b| {
        let node = root.descendant_for_byte_range(b, b)?;
        cx.classify(node, b)
    })
}

struct Cx<'a> {
    src: &'a str,
    lines: &'a LineIndex<'a>,
    file: &'a FileIndex,
}

impl Cx<'_> {
    fn current_module(&self, node: Node) -> String {
        let pos = self.lines.position(node.start_byte());
        self.file
            .module_at(pos)
            .map(|m| m.name.clone())
            .unwrap_or_default()
    }

    fn range(&self, node: Node) -> super::Range {
        self.lines.range(node.byte_range())
    }

    fn classify(&self, node: Node, byte: usize) -> Option<Reference> {
        let node = match node.parent() {
            Some(p) if p.kind() == "quoted_atom" => p,
            _ => node,
        };
        match node.kind() {
            "identifier" => self.identifier(node),
            "alias" => self.alias(node, byte),
            "atom" | "quoted_atom" => {
                let parent = node.parent();
                if parent.is_some_and(|p| {
                    p.kind() == "dot" && p.child_by_field_name("left") == Some(node)
                }) {
                    let name = module_expr(node, self.src, &Aliases::default(), "")?;
                    return Some(Reference::Module {
                        name,
                        range: self.range(node),
                    });
                }
                Some(Reference::Atom {
                    name: atom_name(node, self.src)?,
                    range: self.range(node),
                })
            }
            "keyword" => {
                let raw = text(node, self.src);
                let name = raw.trim_end().trim_end_matches(':');
                let start = node.start_byte();
                Some(Reference::Atom {
                    name: name.to_string(),
                    range: self.lines.range(start..start + name.len()),
                })
            }
            _ => None,
        }
    }

    fn identifier(&self, node: Node) -> Option<Reference> {
        let src = self.src;
        let name = text(node, src);
        let current = self.current_module(node);
        if name == "__MODULE__" {
            return (!current.is_empty()).then(|| Reference::Module {
                name: current,
                range: self.range(node),
            });
        }
        let range = self.range(node);
        let parent = node.parent()?;
        let function = name.to_string();
        // Remote call: `Mod.fun(...)`, `Mod.fun`, `&Mod.fun/2`, `:ets.new(...)`.
        if parent.kind() == "dot" && parent.child_by_field_name("right") == Some(node) {
            let env = self.aliases_at(node);
            let module = module_expr(parent.child_by_field_name("left")?, src, &env, &current)?;
            let call = parent
                .parent()
                .filter(|c| c.kind() == "call" && c.child_by_field_name("target") == Some(parent));
            let arity = call.and_then(|c| call_arity(c, src));
            return Some(Reference::RemoteCall {
                module,
                function,
                arity,
                range,
            });
        }
        let local = |arity| Reference::LocalCall {
            module: current.clone(),
            function: function.clone(),
            arity,
            range,
        };
        // Local call `fun(...)`, or the name in a definition head.
        if parent.kind() == "call" && parent.child_by_field_name("target") == Some(node) {
            if RESERVED.contains(&name) {
                return None;
            }
            if let Some(arity) = self.def_head_arity(parent) {
                return Some(local(Some(arity)));
            }
            return Some(local(call_arity(parent, src)));
        }
        if let Some(arity) = capture_arity(node, parent, src) {
            return Some(local(Some(arity)));
        }
        if RESERVED.contains(&name) {
            return None;
        }
        // Bare name: a zero-arity definition head, or a call of a known zero-arity function.
        if let Some(arity) = self.def_head_arity(node) {
            return Some(local(Some(arity)));
        }
        let known = self
            .file
            .modules
            .iter()
            .filter(|m| m.name == current)
            .flat_map(|m| &m.functions)
            .any(|f| f.name == name && f.arity == 0);
        known.then(|| local(Some(0)))
    }

    /// If `head` (a call or identifier) is the head of a `def`-like call, its arity.
    fn def_head_arity(&self, head: Node) -> Option<u32> {
        let mut top = head;
        let mut parent = head.parent()?;
        if parent.kind() == "binary_operator" && parent.child_by_field_name("left") == Some(head) {
            top = parent;
            parent = parent.parent()?;
        }
        if parent.kind() != "arguments" || kids(parent).first() != Some(&top) {
            return None;
        }
        let def = parent.parent()?;
        FunKind::from_keyword(call_name(def, self.src)?)?;
        parse_head(top, self.src).map(|h| h.arity)
    }

    fn alias(&self, node: Node, byte: usize) -> Option<Reference> {
        let src = self.src;
        let raw = text(node, src);
        // Segment under the cursor: `KV.Ca|lc` → `KV.Calc`, `K|V.Calc` → `KV`.
        let rel = byte.saturating_sub(node.start_byte()).min(raw.len());
        let cut = if raw.contains(char::is_whitespace) {
            raw.len()
        } else {
            raw[rel..].find('.').map_or(raw.len(), |i| rel + i)
        };
        let prefix = &raw[..cut];
        let range = self.lines.range(node.start_byte()..node.start_byte() + cut);
        let current = self.current_module(node);
        let parent = node.parent()?;
        let module = |name: String| Some(Reference::Module { name, range });

        // The name in `defmodule X`: the module being defined (nesting applied).
        if parent.kind() == "arguments" && kids(parent).first() == Some(&node) {
            if let Some(def) = parent.parent().filter(|c| is_module_call(*c, src)) {
                if call_name(def, src) != Some("defimpl") {
                    let start = self.lines.position(node.start_byte());
                    if let Some(m) = self
                        .file
                        .modules
                        .iter()
                        .find(|m| m.name_range.start == start)
                    {
                        let outer = m.name.strip_suffix(raw).unwrap_or("");
                        return module(format!("{outer}{prefix}"));
                    }
                }
            }
        }
        // `alias A.B, as: C`: `C` means `A.B`.
        if parent.kind() == "pair" && pair_key(parent, src) == "as" {
            let call = parent
                .parent()
                .and_then(|k| k.parent())
                .and_then(|a| a.parent());
            if let Some(call) = call.filter(|c| call_name(*c, src) == Some("alias")) {
                let env = self.aliases_at(call);
                let entries = alias_entries(call, src, &env, &current);
                if let Some((_, full)) = entries.into_iter().next() {
                    return module(full);
                }
            }
        }
        let env = self.aliases_at(node);
        // `alias A.{B, C}`: `B` means `A.B`.
        if parent.kind() == "tuple" {
            if let Some(dot) = parent.parent().filter(|d| d.kind() == "dot") {
                let base = module_expr(dot.child_by_field_name("left")?, src, &env, &current)?;
                return module(format!("{base}.{prefix}"));
            }
        }
        // `__MODULE__.Sub`, `:mod.Sub`: relative to the left side.
        if parent.kind() == "dot" && parent.child_by_field_name("right") == Some(node) {
            let base = module_expr(parent.child_by_field_name("left")?, src, &env, &current)?;
            return module(format!("{base}.{prefix}"));
        }
        module(env.resolve(prefix))
    }

    /// Aliases in effect at `node`: every `alias` statement (and nested `defmodule`, which
    /// aliases its first segment) that precedes `node` in an enclosing scope.
    fn aliases_at(&self, node: Node) -> Aliases {
        let mut path = vec![node];
        let mut cur = node;
        while let Some(p) = cur.parent() {
            path.push(p);
            cur = p;
        }
        path.reverse();
        let mut env = Aliases::default();
        for pair in path.windows(2) {
            let (scope, on_path) = (pair[0], pair[1]);
            for sibling in kids(scope) {
                if sibling.start_byte() >= on_path.start_byte() {
                    if sibling == on_path && is_module_call(sibling, self.src) {
                        self.module_alias(sibling, &mut env);
                    }
                    break;
                }
                if call_name(sibling, self.src) == Some("alias") {
                    let current = self.current_module(sibling);
                    let entries = alias_entries(sibling, self.src, &env, &current);
                    env.0.extend(entries);
                } else if is_module_call(sibling, self.src) {
                    self.module_alias(sibling, &mut env);
                }
            }
        }
        env
    }

    /// `defmodule Inner` inside `Outer` aliases `Inner` to `Outer.Inner`.
    fn module_alias(&self, call: Node, env: &mut Aliases) {
        if call_name(call, self.src) == Some("defimpl") {
            return;
        }
        let Some(first) = kids(call).into_iter().find(|k| k.kind() == "arguments") else {
            return;
        };
        let Some(name) = kids(first)
            .into_iter()
            .next()
            .filter(|n| n.kind() == "alias")
        else {
            return;
        };
        let raw = text(name, self.src);
        let start = self.lines.position(name.start_byte());
        let Some(m) = self
            .file
            .modules
            .iter()
            .find(|m| m.name_range.start == start)
        else {
            return;
        };
        if let Some(outer) = m.name.strip_suffix(raw).filter(|o| o.ends_with('.')) {
            let seg = raw.split('.').next().unwrap_or(raw);
            env.push(seg.to_string(), format!("{outer}{seg}"));
        }
    }
}
