//! Small helpers over the tree-sitter-elixir syntax tree, shared by the indexer and by
//! `reference_at`: parsing, call shapes, alias environments and module expressions.

use tree_sitter::{Node, Parser, Tree};

/// Parse Elixir source. `None` only if the grammar cannot be loaded (never in practice).
pub(crate) fn parse(src: &str) -> Option<Tree> {
    let mut parser = Parser::new();
    parser
        .set_language(&tree_sitter_elixir::LANGUAGE.into())
        .ok()?;
    parser.parse(src, None)
}

/// Source text of a node (empty if the range is somehow not valid UTF-8 boundaries).
pub(crate) fn text<'s>(node: Node, src: &'s str) -> &'s str {
    src.get(node.byte_range()).unwrap_or("")
}

/// Named children without comments.
pub(crate) fn kids(node: Node) -> Vec<Node> {
    let mut cursor = node.walk();
    node.named_children(&mut cursor)
        .filter(|n| n.kind() != "comment")
        .collect()
}

/// `foo(...)` / `foo ...` / `foo do ... end`: the identifier name of the call target.
pub(crate) fn call_name<'s>(node: Node, src: &'s str) -> Option<&'s str> {
    if node.kind() != "call" {
        return None;
    }
    let target = node.child_by_field_name("target")?;
    (target.kind() == "identifier").then(|| text(target, src))
}

fn child_of_kind<'t>(node: Node<'t>, kind: &str) -> Option<Node<'t>> {
    let mut cursor = node.walk();
    let found = node.children(&mut cursor).find(|c| c.kind() == kind);
    found
}

pub(crate) fn call_args(node: Node) -> Vec<Node> {
    child_of_kind(node, "arguments")
        .map(kids)
        .unwrap_or_default()
}

pub(crate) fn do_block(node: Node) -> Option<Node> {
    child_of_kind(node, "do_block")
}

/// Operator text of a `binary_operator` / `unary_operator`.
pub(crate) fn operator<'s>(node: Node, src: &'s str) -> &'s str {
    node.child_by_field_name("operator")
        .map(|o| text(o, src))
        .unwrap_or("")
}

pub(crate) fn is_binop(node: Node, src: &str, op: &str) -> bool {
    node.kind() == "binary_operator" && operator(node, src) == op
}

/// `key` of a keyword pair, without the trailing `: `.
pub(crate) fn pair_key<'s>(pair: Node, src: &'s str) -> &'s str {
    pair.child_by_field_name("key")
        .map(|k| text(k, src).trim_end().trim_end_matches(':'))
        .unwrap_or("")
}

/// Value of the keyword `key:` among a call's trailing keyword arguments.
pub(crate) fn keyword_arg<'t>(call: Node<'t>, src: &str, key: &str) -> Option<Node<'t>> {
    let args = call_args(call);
    let keywords = args.iter().rev().find(|a| a.kind() == "keywords")?;
    kids(*keywords)
        .into_iter()
        .find(|p| p.kind() == "pair" && pair_key(*p, src) == key)
        .and_then(|p| p.child_by_field_name("value"))
}

/// Number of arguments a call passes: explicit arguments, plus the `do` block (a keyword
/// argument), plus one when it is the right side of `|>`, or the `/N` of a capture.
pub(crate) fn call_arity(call: Node, src: &str) -> Option<u32> {
    let has_args = child_of_kind(call, "arguments").is_some();
    let parent = call.parent();
    if !has_args {
        if let Some(p) = parent {
            if let Some(n) = capture_arity(call, p, src) {
                return Some(n);
            }
        }
    }
    let mut n = call_args(call).len() as u32;
    if do_block(call).is_some() {
        n += 1;
    }
    if let Some(p) = parent {
        if is_binop(p, src, "|>") && p.child_by_field_name("right") == Some(call) {
            n += 1;
        }
    }
    Some(n)
}

/// `&name/2` or `&Mod.name/2`: `node` is the left side of the `/` under `&`.
pub(crate) fn capture_arity(node: Node, parent: Node, src: &str) -> Option<u32> {
    if !is_binop(parent, src, "/") || parent.child_by_field_name("left") != Some(node) {
        return None;
    }
    let amp = parent.parent()?;
    if amp.kind() != "unary_operator" || operator(amp, src) != "&" {
        return None;
    }
    let right = parent.child_by_field_name("right")?;
    text(right, src).trim().parse().ok()
}

/// Lexical alias environment: `(short, full)` pairs, later entries shadow earlier ones.
#[derive(Debug, Clone, Default)]
pub(crate) struct Aliases(pub(crate) Vec<(String, String)>);

impl Aliases {
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
    pub(crate) fn truncate(&mut self, n: usize) {
        self.0.truncate(n);
    }
    pub(crate) fn push(&mut self, short: String, full: String) {
        self.0.push((short, full));
    }
    /// Whether the first segment of `name` is an alias.
    pub(crate) fn knows(&self, name: &str) -> bool {
        let first = name.split('.').next().unwrap_or(name);
        self.0.iter().any(|(s, _)| s == first)
    }
    /// Expand the first segment of `name` through the aliases; strip an `Elixir.` prefix.
    pub(crate) fn resolve(&self, name: &str) -> String {
        let name: String = name.chars().filter(|c| !c.is_whitespace()).collect();
        if let Some(rest) = name.strip_prefix("Elixir.") {
            return rest.to_string();
        }
        let (first, rest) = match name.split_once('.') {
            Some((f, r)) => (f, Some(r)),
            None => (name.as_str(), None),
        };
        match self.0.iter().rev().find(|(s, _)| s == first) {
            Some((_, full)) => match rest {
                Some(r) => format!("{full}.{r}"),
                None => full.clone(),
            },
            None => name,
        }
    }
}

/// Last `.`-separated segment.
pub(crate) fn last_segment(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name)
}

/// Name of an atom node's atom: `:ok` → `ok`, `:"a b"` → `a b`.
pub(crate) fn atom_name(node: Node, src: &str) -> Option<String> {
    match node.kind() {
        "atom" => Some(text(node, src).trim_start_matches(':').to_string()),
        "quoted_atom" => Some(
            child_of_kind(node, "quoted_content")
                .map(|c| text(c, src).to_string())
                .unwrap_or_default(),
        ),
        _ => None,
    }
}

/// The module an expression names: an alias (resolved), `__MODULE__` (the enclosing module
/// `current`), an Erlang module atom (`:ets` → `":ets"`), or `X.Y` built from those.
pub(crate) fn module_expr(node: Node, src: &str, env: &Aliases, current: &str) -> Option<String> {
    match node.kind() {
        "alias" => Some(env.resolve(text(node, src))),
        "atom" | "quoted_atom" => {
            let name = atom_name(node, src)?;
            match name.strip_prefix("Elixir.") {
                Some(rest) => Some(rest.to_string()),
                None => Some(format!(":{name}")),
            }
        }
        "identifier" if text(node, src) == "__MODULE__" && !current.is_empty() => {
            Some(current.to_string())
        }
        "dot" => {
            let left = module_expr(node.child_by_field_name("left")?, src, env, current)?;
            let right = node.child_by_field_name("right")?;
            if right.kind() != "alias" {
                return None;
            }
            let right: String = text(right, src).split_whitespace().collect();
            Some(format!("{left}.{right}"))
        }
        _ => None,
    }
}

/// The `(short, full)` pairs an `alias ...` call introduces. Forms: `alias A.B`,
/// `alias A.B, as: C`, `alias A.{B, C.D}`, `alias __MODULE__.X`, `alias :mod, as: M`.
pub(crate) fn alias_entries(
    call: Node,
    src: &str,
    env: &Aliases,
    current: &str,
) -> Vec<(String, String)> {
    let Some(first) = call_args(call).into_iter().next() else {
        return Vec::new();
    };
    if first.kind() == "dot" {
        if let Some(tuple) = first
            .child_by_field_name("right")
            .filter(|r| r.kind() == "tuple")
        {
            let Some(base) = first
                .child_by_field_name("left")
                .and_then(|l| module_expr(l, src, env, current))
            else {
                return Vec::new();
            };
            return kids(tuple)
                .into_iter()
                .filter(|k| k.kind() == "alias")
                .map(|k| {
                    let rel: String = text(k, src).split_whitespace().collect();
                    (last_segment(&rel).to_string(), format!("{base}.{rel}"))
                })
                .collect();
        }
    }
    let Some(full) = module_expr(first, src, env, current) else {
        return Vec::new();
    };
    let short = match keyword_arg(call, src, "as") {
        Some(v) if v.kind() == "alias" => text(v, src).trim().to_string(),
        Some(_) => return Vec::new(),
        None if full.starts_with(':') => return Vec::new(),
        None => last_segment(&full).to_string(),
    };
    vec![(short, full)]
}

/// A parsed function head.
pub(crate) struct Head<'t> {
    pub(crate) name: String,
    pub(crate) name_node: Node<'t>,
    pub(crate) arity: u32,
    pub(crate) defaults: u32,
    pub(crate) guard: Option<Node<'t>>,
}

/// Parse the head of a `def`-like call (its first argument): `f(a, b \\ 1)`, `f`,
/// `f(x) when guard`, operator definitions `a + b`. `unquote(...)` heads give `None`.
pub(crate) fn parse_head<'t>(node: Node<'t>, src: &str) -> Option<Head<'t>> {
    match node.kind() {
        "binary_operator" if operator(node, src) == "when" => {
            let mut head = parse_head(node.child_by_field_name("left")?, src)?;
            head.guard = node.child_by_field_name("right");
            Some(head)
        }
        "binary_operator" | "unary_operator" => {
            let op = node.child_by_field_name("operator")?;
            let arity = if node.kind() == "binary_operator" {
                2
            } else {
                1
            };
            Some(Head {
                name: text(op, src).to_string(),
                name_node: op,
                arity,
                defaults: 0,
                guard: None,
            })
        }
        "call" => {
            let target = node.child_by_field_name("target")?;
            if target.kind() != "identifier" {
                return None;
            }
            let args = call_args(node);
            let defaults = args.iter().filter(|a| is_binop(**a, src, "\\\\")).count() as u32;
            Some(Head {
                name: text(target, src).to_string(),
                name_node: target,
                arity: args.len() as u32,
                defaults,
                guard: None,
            })
        }
        "identifier" => Some(Head {
            name: text(node, src).to_string(),
            name_node: node,
            arity: 0,
            defaults: 0,
            guard: None,
        }),
        _ => None,
    }
}

/// Is this a `defmodule`-like call (`defmodule`, `defprotocol`, `defimpl`)?
pub(crate) fn is_module_call(node: Node, src: &str) -> bool {
    matches!(
        call_name(node, src),
        Some("defmodule" | "defprotocol" | "defimpl")
    )
}

/// For a `defmodule X` call whose body the parser could not attach (syntax error later in
/// the module), the body is the following `ERROR` sibling that starts with `do`.
pub(crate) fn detached_body<'t>(call: Node<'t>, next: Option<Node<'t>>) -> Option<Node<'t>> {
    if do_block(call).is_some() {
        return None;
    }
    let next = next?;
    let starts_with_do = next.child(0).is_some_and(|c| c.kind() == "do");
    (next.kind() == "ERROR" && starts_with_do).then_some(next)
}
