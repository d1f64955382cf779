//! Standard LSP features mapped onto the core: hover, definition, symbols, inlay hints,
//! code lenses.

use super::convert::{from_pos, range, to_path, uri_of};
use crate::core::{normalize, Core, Definition};
use crate::live::{docs, render, Interest, LiveModel};
use crate::workspace::index::{self, Reference};
use tower_lsp_server::ls_types::*;

fn markdown(value: String) -> Hover {
    Hover {
        contents: HoverContents::Markup(MarkupContent {
            kind: MarkupKind::Markdown,
            value,
        }),
        range: None,
    }
}

fn not_attached_note(core: &Core) -> Option<String> {
    let session = core.session()?;
    match session.status() {
        crate::attach::Status::Attached => None,
        crate::attach::Status::Attaching => Some("_Orrery: attaching…_".into()),
        crate::attach::Status::Detached { reason } => {
            Some(format!("_Orrery: not attached ({reason})_"))
        }
    }
}

/// The function whose name is under `pos`, as (module, "fun/arity").
fn def_at(core: &Core, path: &std::path::Path, pos: index::Position) -> Option<(String, String)> {
    let idx = core.index()?;
    let file = idx.file(path)?;
    for m in &file.modules {
        for f in &m.functions {
            let r = f.name_range;
            if r.start.line == pos.line
                && r.start.character <= pos.character
                && pos.character <= r.end.character
            {
                return Some((m.name.clone(), format!("{}/{}", f.name, f.arity)));
            }
        }
    }
    None
}

/// `name` is no module of the workspace but modules of it are under it (`KV` of
/// `defmodule KV.Bucket`): a namespace, shown with what is in it.
fn namespace_hover(core: &Core, name: &str) -> Option<String> {
    let idx = core.index()?;
    if idx.find_module(name).is_some() {
        return None;
    }
    let prefix = format!("{name}.");
    let mut inside: Vec<String> = idx
        .modules()
        .filter(|(_, m)| m.name.starts_with(&prefix))
        .map(|(_, m)| m.name.clone())
        .collect();
    if inside.is_empty() {
        return None;
    }
    inside.sort();
    inside.dedup();
    let shown: Vec<String> = inside.iter().take(12).map(|m| format!("`{m}`")).collect();
    let more = inside.len().saturating_sub(shown.len());
    Some(format!(
        "**{name}** · namespace (no module `{name}` is defined): {}{}",
        shown.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    ))
}

/// Hover: what is live (state, processes, calls, tables). With `staticFeatures: "off"`
/// only that, so that a client merging it with a static server's hover shows no part
/// twice: no docs (the other server has them), no namespace list, and nothing at all
/// (not even "not attached") where there is no live value.
pub async fn hover(core: &Core, p: HoverParams) -> Option<Hover> {
    let statics = core.settings().static_features();
    let note = |core: &Core| statics.then(|| not_attached_note(core)).flatten();
    let path = normalize(&to_path(
        &p.text_document_position_params.text_document.uri,
    )?);
    let pos = from_pos(p.text_document_position_params.position);
    if let Some((module, fa)) = def_at(core, &path, pos) {
        let snap = core.live.snapshot();
        let key = format!("{module}.{fa}");
        let traced = core
            .last_calls
            .lock()
            .ok()
            .and_then(|l| l.get(&key).cloned());
        let fun = fa.split('/').next().unwrap_or("").to_string();
        let text = match (render::function_hover(&snap, &module, &fa), traced) {
            (Some(h), Some(t)) => Some(h + &crate::live::trace::render(&fun, &t)),
            (None, Some(t)) => Some(format!("**{key}**{}", crate::live::trace::render(&fun, &t))),
            (h, None) => h,
        };
        return text.or_else(|| note(core)).map(markdown);
    }
    let reference = core.reference_at(&path, pos)?;
    let snap = core.live.snapshot();
    let text = match &reference {
        Reference::Module { name, .. } => {
            if let Some(ns) = namespace_hover(core, name).filter(|_| statics) {
                return Some(markdown(ns));
            }
            let live = match render::module_hover(name, &snap) {
                Some(t) => Some(t),
                None => {
                    // Not in an open document: ask the node now.
                    let session = core.session()?;
                    let interest = Interest {
                        modules: [name.clone()].into(),
                        names: core.names_of(name).into_iter().collect(),
                        ..Default::default()
                    };
                    let one = LiveModel::fetch(&session, &interest, false).await;
                    render::module_hover(name, &one)
                }
            };
            // Versions Orrery swapped in this session: which one runs, since when.
            if let Some(s) = core.session() {
                core.sync_incarnations(&s);
            }
            let history = core.reloader.history(&crate::beam::term::module_atom(name));
            match (live, history.last()) {
                (Some(t), Some((md5, time))) if history.len() > 1 => Some(format!(
                    "{t}\nLoaded version {} swapped in at {time} ({} versions kept for rollback)\n",
                    &md5[..md5.len().min(8)],
                    history.len()
                )),
                (t, _) => t,
            }
        }
        Reference::RemoteCall {
            module,
            function,
            arity,
            ..
        } => {
            let live = render::function_hover(
                &snap,
                module,
                &format!("{function}/{}", arity.unwrap_or(0)),
            );
            // Docs and specs from the node (cached per module md5).
            let docs = match core.session().filter(|_| statics) {
                Some(s) => docs::hover(&s, module, function, *arity).await,
                None => None,
            };
            match (docs, live) {
                (Some(d), Some(l)) => Some(format!("{d}\n\n---\n\n{l}")),
                (d, l) => d.or(l),
            }
        }
        Reference::LocalCall {
            module,
            function,
            arity,
            ..
        } => {
            let arity = arity.unwrap_or(0);
            render::function_hover(&snap, module, &format!("{function}/{arity}"))
        }
        Reference::Atom { name, .. } => {
            let key = format!(":{}", name.trim_start_matches(':'));
            match snap.tables.get(&key) {
                Some(t) => Some(render::table_hover(&key, t)),
                None => {
                    let session = core.session()?;
                    let interest = Interest {
                        tables: [key.clone()].into(),
                        ..Default::default()
                    };
                    let one = LiveModel::fetch(&session, &interest, false).await;
                    one.tables.get(&key).map(|t| render::table_hover(&key, t))
                }
            }
        }
    };
    text.or_else(|| note(core)).map(markdown)
}

/// Go to definition, and a note for the user when the definition's source is not on
/// this machine.
pub async fn definition(
    core: &Core,
    p: GotoDefinitionParams,
) -> (Option<GotoDefinitionResponse>, Option<String>) {
    let Some(path) = to_path(&p.text_document_position_params.text_document.uri) else {
        return (None, None);
    };
    let pos = from_pos(p.text_document_position_params.position);
    match core.definition(&normalize(&path), pos).await {
        Definition::At(places) => {
            let mut locs: Vec<Location> = places
                .into_iter()
                .filter_map(|(p, r)| Some(Location::new(uri_of(&p)?, range(r))))
                .collect();
            let resp = match locs.len() {
                0 => None,
                1 => locs.pop().map(GotoDefinitionResponse::Scalar),
                _ => Some(GotoDefinitionResponse::Array(locs)),
            };
            (resp, None)
        }
        Definition::NoSource { module, recorded } => {
            let recorded = recorded
                .map(|r| format!(" (its beam names `{}`)", r.display()))
                .unwrap_or_default();
            (
                None,
                Some(format!(
                    "Orrery: the source of {module} is not on this machine{recorded}"
                )),
            )
        }
        Definition::Unknown => (None, None),
    }
}

#[allow(deprecated)]
pub fn document_symbols(core: &Core, uri: &Uri) -> Option<DocumentSymbolResponse> {
    let path = normalize(&to_path(uri)?);
    let idx = core.index()?;
    let file = idx.file(&path)?;
    let symbols = file
        .modules
        .iter()
        .map(|m| DocumentSymbol {
            name: m.name.clone(),
            detail: None,
            kind: SymbolKind::MODULE,
            tags: None,
            deprecated: None,
            range: range(m.range),
            selection_range: range(m.name_range),
            children: Some(
                m.functions
                    .iter()
                    .map(|f| DocumentSymbol {
                        name: format!("{}/{}", f.name, f.arity),
                        detail: Some(format!("{:?}", f.kind).to_lowercase()),
                        kind: if matches!(
                            f.kind,
                            index::FunKind::Defmacro | index::FunKind::Defmacrop
                        ) {
                            SymbolKind::OPERATOR
                        } else {
                            SymbolKind::FUNCTION
                        },
                        tags: None,
                        deprecated: None,
                        range: range(f.range),
                        selection_range: range(f.name_range),
                        children: None,
                    })
                    .collect(),
            ),
        })
        .collect();
    Some(DocumentSymbolResponse::Nested(symbols))
}

#[allow(deprecated)]
pub fn workspace_symbols(core: &Core, query: &str) -> Option<WorkspaceSymbolResponse> {
    let idx = core.index()?;
    let syms = idx
        .symbols(query)
        .into_iter()
        .take(200)
        .filter_map(|(path, name, r, is_module)| {
            Some(SymbolInformation {
                name,
                kind: if is_module {
                    SymbolKind::MODULE
                } else {
                    SymbolKind::FUNCTION
                },
                tags: None,
                deprecated: None,
                location: Location::new(uri_of(&path)?, range(r)),
                container_name: None,
            })
        })
        .collect();
    Some(WorkspaceSymbolResponse::Flat(syms))
}

fn hint(position: index::Position, label: String, tooltip: Option<String>) -> InlayHint {
    InlayHint {
        position: super::convert::pos(position),
        label: InlayHintLabel::String(label),
        kind: None,
        text_edits: None,
        tooltip: tooltip.map(InlayHintTooltip::String),
        padding_left: Some(true),
        padding_right: None,
        data: None,
    }
}

fn in_range(p: index::Position, r: &Range) -> bool {
    p.line >= r.start.line && p.line <= r.end.line
}

pub fn inlay_hints(core: &Core, uri: &Uri, visible: Range) -> Option<Vec<InlayHint>> {
    let path = normalize(&to_path(uri)?);
    let cfg = core.settings().inlay_hints();
    let snap = core.live.snapshot();
    let idx = core.index()?;
    let file = idx.file(&path)?;
    let text = core.text(&path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let eol = |line: u32| index::Position {
        line,
        character: lines
            .get(line as usize)
            .map(|l| l.encode_utf16().count() as u32)
            .unwrap_or(0),
    };
    let mut out = vec![];
    for m in &file.modules {
        if cfg.processes {
            if let Some(label) = render::module_hint(&snap, &m.name) {
                let at = eol(m.line_of_use.unwrap_or(m.name_range.start.line));
                if in_range(at, &visible) {
                    out.push(hint(
                        at,
                        label,
                        Some(format!("live processes running {}", m.name)),
                    ));
                }
            }
        }
        if cfg.calls {
            for f in &m.functions {
                let fa = format!("{}/{}", f.name, f.arity);
                if let Some(label) = render::function_hint(&snap, &m.name, &fa) {
                    let at = eol(f.head_end.line);
                    if in_range(at, &visible) {
                        out.push(hint(
                            at,
                            label,
                            Some(format!(
                                "calls of {}.{fa} {}",
                                m.name,
                                render::since_text(render::calls_since(&snap, &m.name))
                            )),
                        ));
                    }
                }
            }
        }
        if cfg.ets {
            for (t, r) in &m.ets_tables {
                let key = format!(":{}", t.trim_start_matches(':'));
                if let Some(label) = render::table_hint(&snap, &key) {
                    let at = eol(r.end.line);
                    if in_range(at, &visible) {
                        out.push(hint(at, label, Some(format!("ETS table {key}"))));
                    }
                }
            }
        }
    }
    Some(out)
}

pub fn code_lenses(core: &Core, uri: &Uri) -> Option<Vec<CodeLens>> {
    let path = normalize(&to_path(uri)?);
    let snap = core.live.snapshot();
    let idx = core.index()?;
    let file = idx.file(&path)?;
    let mut out = vec![];
    for m in &file.modules {
        let r = range(m.name_range);
        if let Some(title) = render::module_lens(&snap, &m.name) {
            out.push(CodeLens {
                range: r,
                command: Some(Command {
                    title,
                    command: String::new(),
                    arguments: None,
                }),
                data: None,
            });
        }
        let history = core
            .reloader
            .history(&crate::beam::term::module_atom(&m.name));
        if history.len() > 1 {
            let prev = &history[history.len() - 2].0;
            out.push(CodeLens {
                range: r,
                command: Some(Command {
                    title: format!("Roll back to {}", &prev[..prev.len().min(8)]),
                    command: "orrery.rollback".into(),
                    arguments: Some(vec![serde_json::json!(m.name)]),
                }),
                data: None,
            });
        }
        // A LiveView: its connected views' assigns (`orrery/state` by module).
        let views = snap.phoenix.view_count(&m.name).unwrap_or(0);
        let own = snap
            .procs
            .get(&m.name)
            .and_then(|p| p.iter().find(|p| p.is_own()));
        if views > 0 && own.is_none() {
            out.push(CodeLens {
                range: r,
                command: Some(Command {
                    title: "Inspect state".into(),
                    command: "orrery.inspectState".into(),
                    arguments: Some(vec![serde_json::json!(m.name)]),
                }),
                data: None,
            });
        }
        if let Some(p) = own {
            // A process found under another name is inspected by that name.
            let target = p.label.clone().unwrap_or_else(|| m.name.clone());
            out.push(CodeLens {
                range: r,
                command: Some(Command {
                    title: "Inspect state".into(),
                    command: "orrery.inspectState".into(),
                    arguments: Some(vec![serde_json::json!(target)]),
                }),
                data: None,
            });
        }
        for f in &m.functions {
            let fa = format!("{}/{}", f.name, f.arity);
            if let Some(title) = render::calls_lens(&snap, &m.name, &fa) {
                out.push(CodeLens {
                    range: range(f.name_range),
                    command: Some(Command {
                        title,
                        command: String::new(),
                        arguments: None,
                    }),
                    data: None,
                });
                let key = format!("{}.{fa}", m.name);
                let traced = core
                    .traced
                    .lock()
                    .map(|t| t.contains(&key))
                    .unwrap_or(false);
                out.push(CodeLens {
                    range: range(f.name_range),
                    command: Some(Command {
                        title: if traced {
                            "Stop tracing".into()
                        } else {
                            "Trace calls".into()
                        },
                        command: "orrery.traceCalls".into(),
                        arguments: Some(vec![serde_json::json!(key)]),
                    }),
                    data: None,
                });
            }
        }
    }
    Some(out)
}
