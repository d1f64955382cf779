//! Process names in the code, as far as the index can tell them statically: tuples
//! written as `{:global, ..}` / `{:via, Mod, ..}` (module attributes such as
//! `{:via, Registry, {@registry, key}}` resolved), and `name:` options of start functions
//! that call helpers (`name: via_tuple(name)`, `Todo.ProcessRegistry.via_tuple(key)`),
//! followed through the workspace with their arguments substituted. A name that cannot
//! be told (`name: opts[:name]`, a helper outside the workspace) becomes
//! [`ProcName::Runtime`]: the agent finds those processes on the node.

use tree_sitter::{Node, Tree};

use super::syntax::{atom_name, call_args, kids, module_expr, operator, text, Aliases};
use super::{Lit, ModuleDef, NameDef, ProcName, WorkspaceIndex};
use serde::{Deserialize, Serialize};

/// How deep helpers calling helpers are followed.
const MAX_HOPS: u8 = 6;

/// A value built from literal parts, parameters of the enclosing helper, calls of
/// functions, and parts that are not known statically.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tmpl {
    Lit(Lit),
    Param(usize),
    Unknown,
    Tuple(Vec<Tmpl>),
    /// `f(args)` (`module: None`, the module the call is written in) or `Mod.f(args)`.
    Call {
        module: Option<String>,
        function: String,
        args: Vec<Tmpl>,
    },
}

/// A function whose result may be a process name: its (first clause's) result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Helper {
    pub name: String,
    pub arity: u32,
    pub body: Tmpl,
}

/// A `name:` option given to a start function whose value is not a tuple written there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameUse {
    pub value: Tmpl,
    pub range: super::Range,
}

/// What literals and templates are read against.
pub(super) struct Cx<'a> {
    pub src: &'a str,
    pub env: &'a Aliases,
    /// The enclosing module (`""` outside any).
    pub current: &'a str,
    /// The module's attributes so far: `@name value`, literal values only.
    pub attrs: &'a [(String, Lit)],
}

/// `@name` → the attribute's literal value.
fn attribute(node: Node, cx: &Cx) -> Option<Lit> {
    if node.kind() != "unary_operator" || operator(node, cx.src) != "@" {
        return None;
    }
    let name = text(node.child_by_field_name("operand")?, cx.src);
    let (_, v) = cx.attrs.iter().rev().find(|(n, _)| n == name)?;
    Some(v.clone())
}

/// A literal term: atoms, aliases and `__MODULE__` (as atoms), strings without
/// interpolation, integers, module attributes with such values, and tuples of those.
pub(super) fn literal(node: Node, cx: &Cx) -> Option<Lit> {
    let src = cx.src;
    match node.kind() {
        "atom" | "quoted_atom" => atom_name(node, src).map(Lit::Atom),
        "alias" | "identifier" | "dot" => module_expr(node, src, cx.env, cx.current)
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
            .map(|k| literal(k, cx))
            .collect::<Option<Vec<_>>>()
            .map(Lit::Tuple),
        "unary_operator" => attribute(node, cx),
        _ => None,
    }
}

/// `{:global, name}`, `{:via, Mod, name}` with literal parts; `{:via, Registry, {Reg, key}}`
/// with a non-literal key is `RegistryAny`.
pub(super) fn proc_name_of(tuple: Node, cx: &Cx) -> Option<ProcName> {
    let items = kids(tuple);
    let tag = atom_name(*items.first()?, cx.src)?;
    if !matches!(tag.as_str(), "global" | "via") {
        return None;
    }
    to_proc_name(&template(tuple, cx, &[]))
}

/// The value of `node` as a template; identifiers named in `params` are parameters.
pub(super) fn template(node: Node, cx: &Cx, params: &[Option<String>]) -> Tmpl {
    if node.kind() == "identifier" {
        let name = text(node, cx.src);
        if let Some(i) = params.iter().position(|p| p.as_deref() == Some(name)) {
            return Tmpl::Param(i);
        }
    }
    if node.kind() == "tuple" {
        return Tmpl::Tuple(
            kids(node)
                .into_iter()
                .map(|k| template(k, cx, params))
                .collect(),
        );
    }
    if let Some(l) = literal(node, cx) {
        return Tmpl::Lit(l);
    }
    if node.kind() == "call" {
        if let Some((module, function)) = callee(node, cx) {
            let args = call_args(node);
            if args.iter().all(|a| a.kind() != "keywords") {
                return Tmpl::Call {
                    module,
                    function,
                    args: args.into_iter().map(|a| template(a, cx, params)).collect(),
                };
            }
        }
    }
    Tmpl::Unknown
}

/// `f(..)` → `(None, "f")`, `Mod.f(..)` → `(Some("Mod"), "f")` (aliases resolved).
fn callee(call: Node, cx: &Cx) -> Option<(Option<String>, String)> {
    let target = call.child_by_field_name("target")?;
    match target.kind() {
        "identifier" => Some((None, text(target, cx.src).to_string())),
        "dot" => {
            let left = target.child_by_field_name("left")?;
            let right = target.child_by_field_name("right")?;
            let module = module_expr(left, cx.src, cx.env, cx.current)?;
            (right.kind() == "identifier").then(|| (Some(module), text(right, cx.src).to_string()))
        }
        _ => None,
    }
}

/// The function name of a call (`start_link` in `GenServer.start_link(..)`).
pub(super) fn called_name<'s>(call: Node, src: &'s str) -> Option<&'s str> {
    let target = call.child_by_field_name("target")?;
    let name = match target.kind() {
        "identifier" => target,
        "dot" => target.child_by_field_name("right")?,
        _ => return None,
    };
    Some(text(name, src))
}

/// The parameters of a `def` head: plain variables by name, patterns as `None`.
pub(super) fn params(head: Node, src: &str) -> Option<Vec<Option<String>>> {
    match head.kind() {
        "call" => Some(
            call_args(head)
                .into_iter()
                .map(|a| (a.kind() == "identifier").then(|| text(a, src).to_string()))
                .collect(),
        ),
        "identifier" => Some(Vec::new()),
        _ => None,
    }
}

/// Whether a helper with this result is worth keeping: a name tuple, or a call.
pub(super) fn may_name(t: &Tmpl) -> bool {
    match t {
        Tmpl::Tuple(items) => matches!(
            items.first(),
            Some(Tmpl::Lit(Lit::Atom(a))) if a == "via" || a == "global"
        ),
        Tmpl::Call { .. } => true,
        _ => false,
    }
}

/// Tuple items of a template (a literal tuple included).
fn items(t: &Tmpl) -> Option<Vec<Tmpl>> {
    match t {
        Tmpl::Tuple(items) => Some(items.clone()),
        Tmpl::Lit(Lit::Tuple(items)) => Some(items.iter().cloned().map(Tmpl::Lit).collect()),
        _ => None,
    }
}

/// A template with no unknown part as a literal.
fn to_lit(t: &Tmpl) -> Option<Lit> {
    match t {
        Tmpl::Lit(l) => Some(l.clone()),
        Tmpl::Tuple(items) => items
            .iter()
            .map(to_lit)
            .collect::<Option<_>>()
            .map(Lit::Tuple),
        _ => None,
    }
}

/// A Registry key with unknown parts: a tuple whose literal items stay and whose other
/// items become `_` (`Lit::Atom("_")`); `None` when no part is literal.
fn key_pattern(t: &Tmpl) -> Option<Lit> {
    let items = items(t)?;
    let pat: Vec<Lit> = items
        .iter()
        .map(|i| {
            to_lit(i)
                .or_else(|| key_pattern(i))
                .unwrap_or_else(|| Lit::Atom("_".into()))
        })
        .collect();
    pat.iter()
        .any(|i| !matches!(i, Lit::Atom(a) if a == "_"))
        .then_some(Lit::Tuple(pat))
}

/// A process name, when the template is one.
pub fn to_proc_name(t: &Tmpl) -> Option<ProcName> {
    let items = items(t)?;
    let atom = |t: &Tmpl| match t {
        Tmpl::Lit(Lit::Atom(a)) => Some(a.clone()),
        _ => None,
    };
    match items.as_slice() {
        [tag, name] if atom(tag)? == "global" => Some(ProcName::Global(to_lit(name)?)),
        [tag, module, name] if atom(tag)? == "via" => {
            let module = atom(module)?;
            if let Some(name) = to_lit(name) {
                return Some(ProcName::Via { module, name });
            }
            match (module.as_str(), items_of_two(name)) {
                ("Elixir.Registry", Some((reg, key))) => Some(ProcName::RegistryAny {
                    registry: atom(&reg)?,
                    key: key_pattern(&key),
                }),
                _ => None,
            }
        }
        _ => None,
    }
}

fn items_of_two(t: &Tmpl) -> Option<(Tmpl, Tmpl)> {
    match items(t)?.as_slice() {
        [a, b] => Some((a.clone(), b.clone())),
        _ => None,
    }
}

/// The first process name in a parsed snippet (for `orrery/state` targets).
pub(super) fn proc_name_in(tree: &Tree, src: &str) -> Option<ProcName> {
    fn find<'t>(n: Node<'t>) -> Option<Node<'t>> {
        if n.kind() == "tuple" {
            return Some(n);
        }
        kids(n).into_iter().find_map(find)
    }
    let tuple = find(tree.root_node())?;
    let env = Aliases::default();
    let cx = Cx {
        src,
        env: &env,
        current: "",
        attrs: &[],
    };
    proc_name_of(tuple, &cx)
}

/// The literal a snippet is (`{1, 2}`, `"bob"`, `Todo.Server`), for keys given by a user.
pub(super) fn literal_in(tree: &Tree, src: &str) -> Option<Lit> {
    let nodes = kids(tree.root_node());
    let [node] = nodes.as_slice() else {
        return None;
    };
    let env = Aliases::default();
    let cx = Cx {
        src,
        env: &env,
        current: "",
        attrs: &[],
    };
    literal(*node, &cx)
}

impl WorkspaceIndex {
    /// Evaluate `t` (written in `module`, `args` bound to its parameters), following
    /// calls of helpers defined in the workspace.
    fn eval(&self, t: &Tmpl, module: &str, args: &[Tmpl], hops: u8) -> Tmpl {
        match t {
            Tmpl::Param(i) => args.get(*i).cloned().unwrap_or(Tmpl::Unknown),
            Tmpl::Tuple(items) => Tmpl::Tuple(
                items
                    .iter()
                    .map(|i| self.eval(i, module, args, hops))
                    .collect(),
            ),
            Tmpl::Call {
                module: target,
                function,
                args: call_args,
            } => {
                if hops >= MAX_HOPS {
                    return Tmpl::Unknown;
                }
                let values: Vec<Tmpl> = call_args
                    .iter()
                    .map(|a| self.eval(a, module, args, hops))
                    .collect();
                let target = target.as_deref().unwrap_or(module);
                let Some((_, def)) = self.find_module(target) else {
                    return Tmpl::Unknown;
                };
                let helper = def
                    .helpers
                    .iter()
                    .find(|h| h.name == *function && h.arity as usize == values.len());
                match helper {
                    Some(h) => self.eval(&h.body, &def.name, &values, hops + 1),
                    None => Tmpl::Unknown,
                }
            }
            other => other.clone(),
        }
    }

    /// The process names of `m`: the tuples written in it, those its `name:` options get
    /// from helpers, and [`ProcName::Runtime`] when a `name:` cannot be told statically.
    pub fn names_of(&self, m: &ModuleDef) -> Vec<NameDef> {
        let mut out = m.names.clone();
        let mut add = |name: ProcName, range| {
            if let Some(same) = out.iter_mut().find(|n| n.name == name) {
                same.registers = true;
            } else {
                out.push(NameDef {
                    name,
                    registers: true,
                    range,
                });
            }
        };
        let own = format!("Elixir.{}", m.name);
        for u in &m.name_uses {
            let v = self.eval(&u.value, &m.name, &[], 0);
            match to_proc_name(&v) {
                Some(name) => add(name, u.range),
                // `name: __MODULE__`: the registered name every module is queried under.
                None if matches!(&v, Tmpl::Lit(Lit::Atom(a)) if *a == own) => {}
                // Another atom (`name: :cache`), or a name not known statically: the
                // module's processes and the names they have are found on the node.
                None => add(ProcName::Runtime, u.range),
            }
        }
        out
    }
}
