//! Live completion: after `Mod.` the functions the node exports (with arity, spec and
//! docs), and submodules; module names while typing an alias; Erlang modules after `:`.
//! Names come from the live node (loaded modules and the modules of loaded applications)
//! and from the workspace index, so completion still works detached (index only) and for
//! modules not compiled yet. Aliases resolve through the index. Bounded to [`MAX_ITEMS`].

use super::convert::to_path;
use crate::attach::Status;
use crate::core::{normalize, Core};
use crate::live::docs::{self, Kind};
use crate::workspace::index::{self, FileIndex};
use std::collections::BTreeMap;
use tower_lsp_server::ls_types::*;

/// Most items in one answer; past it the list is marked incomplete.
pub const MAX_ITEMS: usize = 200;
/// Chars of doc summary per completion item.
const SUMMARY_CHARS: usize = 800;

/// What is being completed, from the text before the cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ctx {
    /// `Mod.par|`: the functions and submodules of `module` (as written).
    Dot { module: String, partial: String },
    /// `:par|`: Erlang modules.
    Erlang { partial: String },
    /// `Par|`: an alias.
    Alias { partial: String },
}

impl Ctx {
    fn partial(&self) -> &str {
        match self {
            Ctx::Dot { partial, .. } | Ctx::Erlang { partial } | Ctx::Alias { partial } => partial,
        }
    }
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '?' || c == '!'
}

fn is_alias_chain(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').enumerate().all(|(i, seg)| {
            (i == 0 && seg == "__MODULE__")
                || (seg.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                    && seg.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        })
}

/// The completion context of a line's text before the cursor.
pub fn context(before: &str) -> Option<Ctx> {
    let c: Vec<char> = before.chars().collect();
    let mut i = c.len();
    while i > 0 && is_ident(c[i - 1]) {
        i -= 1;
    }
    let partial: String = c[i..].iter().collect();
    if partial.chars().next().is_some_and(|f| f.is_ascii_digit()) {
        return None;
    }
    let ident_before = |k: usize| k > 0 && (is_ident(c[k - 1]) || c[k - 1] == ':');
    if i > 0 && c[i - 1] == '.' {
        let j = i - 1;
        let mut k = j;
        while k > 0 && (c[k - 1].is_alphanumeric() || c[k - 1] == '_' || c[k - 1] == '.') {
            k -= 1;
        }
        let expr: String = c[k..j].iter().collect();
        if k > 0 && c[k - 1] == ':' && !ident_before(k - 1) {
            let ok = expr.chars().next().is_some_and(|f| f.is_ascii_lowercase())
                && expr.chars().all(|x| x.is_alphanumeric() || x == '_');
            return ok.then(|| Ctx::Dot {
                module: format!(":{expr}"),
                partial,
            });
        }
        return is_alias_chain(&expr).then_some(Ctx::Dot {
            module: expr,
            partial,
        });
    }
    if i > 0 && c[i - 1] == ':' && !ident_before(i - 1) {
        let lower = partial
            .chars()
            .next()
            .is_none_or(|f| f.is_ascii_lowercase());
        return lower.then_some(Ctx::Erlang { partial });
    }
    if partial
        .chars()
        .next()
        .is_some_and(|f| f.is_ascii_uppercase())
    {
        return Some(Ctx::Alias { partial });
    }
    None
}

/// Aliases in scope at `pos` (outer modules first, so later ones shadow) and the innermost
/// module's name.
fn scope(file: Option<&FileIndex>, pos: index::Position) -> (Vec<(String, String)>, String) {
    let Some(file) = file else {
        return (vec![], String::new());
    };
    let mut mods: Vec<_> = file
        .modules
        .iter()
        .filter(|m| m.range.contains(pos))
        .collect();
    mods.sort_by_key(|m| m.range.start);
    let current = mods.last().map(|m| m.name.clone()).unwrap_or_default();
    let aliases = mods
        .iter()
        .flat_map(|m| m.aliases.iter().cloned())
        .collect();
    (aliases, current)
}

/// `Calc.Helpers` with `alias KV.Calc` → `KV.Calc.Helpers`; `__MODULE__` → the module.
pub fn resolve(module: &str, aliases: &[(String, String)], current: &str) -> String {
    if module.starts_with(':') {
        return module.to_string();
    }
    let (first, rest) = match module.split_once('.') {
        Some((f, r)) => (f, Some(r)),
        None => (module, None),
    };
    let head = if first == "__MODULE__" && !current.is_empty() {
        current.to_string()
    } else {
        match aliases.iter().rev().find(|(s, _)| s == first) {
            Some((_, full)) => full.clone(),
            None => first.to_string(),
        }
    };
    match rest {
        Some(r) => format!("{head}.{r}"),
        None => head,
    }
}

/// Items keyed by sort text, so live and index items merge without duplicates.
type Items = BTreeMap<String, CompletionItem>;

fn edit(range: Range, text: &str) -> Option<CompletionTextEdit> {
    Some(CompletionTextEdit::Edit(TextEdit {
        range,
        new_text: text.to_string(),
    }))
}

fn module_item(items: &mut Items, range: Range, segment: &str, full: &str) {
    items
        .entry(format!("1 {segment}"))
        .or_insert_with(|| CompletionItem {
            label: segment.to_string(),
            kind: Some(CompletionItemKind::MODULE),
            detail: Some(full.to_string()),
            sort_text: Some(format!("1 {segment}")),
            filter_text: Some(segment.to_string()),
            text_edit: edit(range, segment),
            ..Default::default()
        });
}

fn function_item(items: &mut Items, range: Range, module: &str, f: &docs::FunDoc) {
    let label = format!("{}/{}", f.name, f.arity);
    let mut doc = docs::code_block(module, f);
    if let Some(d) = f.doc.as_deref().filter(|d| !d.trim().is_empty()) {
        doc.push_str("\n\n");
        doc.push_str(&docs::summary(d, SUMMARY_CHARS));
    }
    let detail = f
        .specs
        .first()
        .map(|s| format!("@spec {s}"))
        .or_else(|| (!f.signature.is_empty()).then(|| f.signature.clone()))
        .unwrap_or_else(|| label.clone());
    let key = format!("0 {}/{:03}", f.name, f.arity);
    items.insert(
        key.clone(),
        CompletionItem {
            label,
            kind: Some(if f.kind == Kind::Macro {
                CompletionItemKind::KEYWORD
            } else {
                CompletionItemKind::FUNCTION
            }),
            detail: Some(detail),
            documentation: Some(Documentation::MarkupContent(MarkupContent {
                kind: MarkupKind::Markdown,
                value: doc,
            })),
            deprecated: f.deprecated.as_ref().map(|_| true),
            sort_text: Some(key),
            filter_text: Some(f.name.clone()),
            text_edit: edit(range, &f.name),
            ..Default::default()
        },
    );
}

/// Next segment of `name` under `base.` (or top level when `base` is empty).
fn next_segment<'a>(name: &'a str, base: &str) -> Option<&'a str> {
    let rest = if base.is_empty() {
        name
    } else {
        name.strip_prefix(base)?.strip_prefix('.')?
    };
    rest.split('.').next().filter(|s| !s.is_empty())
}

pub async fn complete(core: &Core, p: CompletionParams) -> Option<CompletionResponse> {
    let path = normalize(&to_path(&p.text_document_position.text_document.uri)?);
    let at = p.text_document_position.position;
    let text = core.text(&path)?;
    let line = text.lines().nth(at.line as usize).unwrap_or("");
    let mut before = String::new();
    let mut units = 0u32;
    for ch in line.chars() {
        if units >= at.character {
            break;
        }
        units += ch.len_utf16() as u32;
        before.push(ch);
    }
    let ctx = context(&before)?;
    let partial = ctx.partial().to_string();
    let start = at.character - partial.encode_utf16().count() as u32;
    let range = Range::new(Position::new(at.line, start), at);
    let pos = index::Position::new(at.line, at.character);
    let (aliases, current, index_modules) = {
        let idx = core.index()?;
        let (aliases, current) = scope(idx.file(&path), pos);
        // The project definition in `mix.exs` (`X.MixProject`, `Mixfile`) is no module
        // code calls.
        let mods: Vec<(String, Vec<docs::FunDoc>)> = idx
            .modules()
            .filter(|(p, _)| p.file_name().is_none_or(|f| f != "mix.exs"))
            .map(|(_, m)| {
                let funs = m
                    .functions
                    .iter()
                    .filter(|f| f.kind.is_public())
                    .map(|f| docs::FunDoc {
                        kind: Kind::Function,
                        name: f.name.clone(),
                        arity: f.arity,
                        defaults: f.defaults,
                        signature: String::new(),
                        doc: None,
                        hidden: false,
                        deprecated: None,
                        specs: vec![],
                    })
                    .collect();
                (m.name.clone(), funs)
            })
            .collect();
        (aliases, current, mods)
    };
    let conn = core
        .session()
        .filter(|s| s.status() == Status::Attached)
        .and_then(|s| s.primary().ok());
    let mut items = Items::new();
    let mut incomplete = false;
    let upper = partial
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_uppercase());
    match &ctx {
        Ctx::Dot { module, .. } => {
            let module = resolve(module, &aliases, &current);
            if !upper {
                let live = match &conn {
                    Some(c) => docs::module_docs_on(c, &module).await.ok().flatten(),
                    None => None,
                };
                if let Some(d) = &live {
                    for f in d.completable().filter(|f| f.name.starts_with(&partial)) {
                        function_item(&mut items, range, &module, f);
                    }
                }
                // Modules the node does not have (yet): what the index knows.
                if live.is_none() {
                    for (_, funs) in index_modules.iter().filter(|(n, _)| *n == module) {
                        for f in funs.iter().filter(|f| f.name.starts_with(&partial)) {
                            function_item(&mut items, range, &module, f);
                        }
                    }
                }
            }
            if !module.starts_with(':') && (partial.is_empty() || upper) {
                if let Some(c) = &conn {
                    if let Ok((segs, total)) =
                        docs::complete_modules(c, &module, &partial, MAX_ITEMS).await
                    {
                        incomplete |= total > segs.len();
                        for (s, _) in segs {
                            module_item(&mut items, range, &s, &format!("{module}.{s}"));
                        }
                    }
                }
                for (name, _) in &index_modules {
                    if let Some(s) = next_segment(name, &module).filter(|s| s.starts_with(&partial))
                    {
                        module_item(&mut items, range, s, &format!("{module}.{s}"));
                    }
                }
            }
        }
        Ctx::Alias { .. } => {
            if let Some(c) = &conn {
                if let Ok((segs, total)) = docs::complete_modules(c, "", &partial, MAX_ITEMS).await
                {
                    incomplete |= total > segs.len();
                    for (s, _) in segs {
                        module_item(&mut items, range, &s, &s);
                    }
                }
            }
            for (name, _) in &index_modules {
                if let Some(s) = next_segment(name, "").filter(|s| s.starts_with(&partial)) {
                    module_item(&mut items, range, s, s);
                }
            }
            for (short, full) in &aliases {
                if short.starts_with(&partial) {
                    module_item(&mut items, range, short, full);
                }
            }
        }
        Ctx::Erlang { .. } => {
            if let Some(c) = &conn {
                if let Ok((segs, total)) = docs::complete_modules(c, ":", &partial, MAX_ITEMS).await
                {
                    incomplete |= total > segs.len();
                    for (s, _) in segs {
                        module_item(&mut items, range, &s, &format!(":{s}"));
                    }
                }
            }
        }
    }
    if items.len() > MAX_ITEMS {
        incomplete = true;
    }
    let items: Vec<CompletionItem> = items.into_values().take(MAX_ITEMS).collect();
    Some(CompletionResponse::List(CompletionList {
        is_incomplete: incomplete,
        items,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dot(m: &str, p: &str) -> Option<Ctx> {
        Some(Ctx::Dot {
            module: m.into(),
            partial: p.into(),
        })
    }

    #[test]
    fn contexts() {
        assert_eq!(context("    KV.Calc."), dot("KV.Calc", ""));
        assert_eq!(context("x = Enum.ma"), dot("Enum", "ma"));
        assert_eq!(context("  :ets.ne"), dot(":ets", "ne"));
        assert_eq!(context("&__MODULE__.f"), dot("__MODULE__", "f"));
        assert_eq!(context("  KV.Bu"), dot("KV", "Bu"));
        assert_eq!(
            context("  :et"),
            Some(Ctx::Erlang {
                partial: "et".into()
            })
        );
        assert_eq!(context("f(:"), Some(Ctx::Erlang { partial: "".into() }));
        assert_eq!(
            context("  En"),
            Some(Ctx::Alias {
                partial: "En".into()
            })
        );
        assert_eq!(context("  map.ke"), None, "field access");
        assert_eq!(context("  key: "), None);
        assert_eq!(context("  key:"), None, "keyword");
        assert_eq!(context("@spec f() :: "), None);
        assert_eq!(context("1.."), None);
        assert_eq!(context("  foo"), None);
    }

    #[test]
    fn resolves_aliases() {
        let aliases = vec![
            ("Calc".to_string(), "KV.Calc".to_string()),
            ("B".to_string(), "KV.Bucket".to_string()),
        ];
        assert_eq!(resolve("Calc", &aliases, "KV.Client"), "KV.Calc");
        assert_eq!(resolve("Calc.Helpers", &aliases, ""), "KV.Calc.Helpers");
        assert_eq!(resolve("B", &aliases, ""), "KV.Bucket");
        assert_eq!(resolve("__MODULE__", &aliases, "KV.Client"), "KV.Client");
        assert_eq!(resolve("Enum", &aliases, ""), "Enum");
        assert_eq!(resolve(":ets", &aliases, ""), ":ets");
        assert_eq!(next_segment("KV.Calc.Helpers", "KV"), Some("Calc"));
        assert_eq!(next_segment("KV.Calc", ""), Some("KV"));
        assert_eq!(next_segment("KVX", "KV"), None);
    }
}
