//! Go to definition: the workspace index first, then the sources of the dependencies
//! (`deps/*/lib` and path dependencies, indexed once, no node needed), then the attached
//! node for anything else it runs (Elixir's standard library, Erlang/OTP, dependencies
//! configured otherwise). A location is given only for a source file that is on this
//! machine: when the node's record of a module's source names no file here, the answer
//! says so instead of pointing somewhere wrong.

use super::Core;
use crate::attach::Status;
use crate::live::sources::{self, NodeSource};
use crate::workspace::deps;
use crate::workspace::index::{self, Position, Range, Reference, WorkspaceIndex};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a reference is defined.
#[derive(Debug, Clone, PartialEq)]
pub enum Definition {
    /// These places (several: clauses in several files, or several modules).
    At(Vec<(PathBuf, Range)>),
    /// The node knows the module, but its source is not on this machine.
    NoSource {
        module: String,
        /// The path the module's compiler recorded, if any.
        recorded: Option<PathBuf>,
    },
    /// Nothing known.
    Unknown,
}

/// What a reference asks for: module, and a function with its arity when it is a call.
fn target(reference: Reference) -> Option<(String, Option<String>, Option<u32>, bool)> {
    match reference {
        Reference::Module { name, .. } => Some((name, None, None, false)),
        Reference::RemoteCall {
            module,
            function,
            arity,
            ..
        } => Some((module, Some(function), arity, false)),
        Reference::LocalCall {
            module,
            function,
            arity,
            ..
        } => Some((module, Some(function), arity, true)),
        Reference::Atom { .. } => None,
    }
}

/// The definitions of `module` (and `function/arity`) in an index: a function's clauses
/// callable with that arity (else any arity), or the module.
fn in_index(
    idx: &WorkspaceIndex,
    module: &str,
    function: Option<&str>,
    arity: Option<u32>,
) -> Vec<(PathBuf, Range)> {
    match function {
        None => idx
            .find_module(module)
            .map(|(p, m)| (p, m.name_range))
            .into_iter()
            .collect(),
        Some(f) => {
            let mut found = idx.find_function(module, f, arity);
            if found.is_empty() && arity.is_some() {
                found = idx.find_function(module, f, None);
            }
            found.into_iter().map(|(p, f)| (p, f.name_range)).collect()
        }
    }
}

/// A range on 0-based `line` of `text`: over `name` when the line starts with it (an
/// Erlang function head), else at the line's first character.
fn line_range(text: &str, line: u32, name: Option<&str>) -> Range {
    let l = text.lines().nth(line as usize).unwrap_or("");
    let indent = l.len() - l.trim_start().len();
    let start = l[..indent].encode_utf16().count() as u32;
    let len = match name {
        Some(n) if l.trim_start().starts_with(n) => n.encode_utf16().count() as u32,
        _ => 0,
    };
    Range {
        start: Position::new(line, start),
        end: Position::new(line, start + len),
    }
}

/// The place in source file `file` (on this machine): for Elixir, found by the index in
/// the file; else (or when the index does not find it) at the line the node gave.
fn in_file(
    file: &Path,
    module: &str,
    function: Option<&str>,
    arity: Option<u32>,
    node: &NodeSource,
) -> Option<(PathBuf, Range)> {
    let text = std::fs::read_to_string(file).ok()?;
    if index::is_elixir(file) {
        let mut idx = WorkspaceIndex::new();
        idx.update(file.to_path_buf(), &text);
        if let Some(hit) = in_index(&idx, module, function, arity).into_iter().next() {
            return Some(hit);
        }
    }
    let line = match function {
        Some(_) => node.line.or(node.module_line),
        None => node.module_line,
    }
    .unwrap_or(1);
    let name = match function {
        Some(f) => Some(f),
        None => module.strip_prefix(':').map(|_| "-module"),
    };
    Some((file.to_path_buf(), line_range(&text, line - 1, name)))
}

impl Core {
    /// The dependencies' sources, indexed the first time they are needed.
    fn deps_index(&self) -> Option<Arc<WorkspaceIndex>> {
        if let Some(i) = self.deps.read().ok()?.as_ref() {
            return Some(i.clone());
        }
        let root = self.mix_root()?;
        let mut idx = WorkspaceIndex::new();
        for dir in deps::source_dirs(&root) {
            idx.index_tree(&dir);
        }
        let idx = Arc::new(idx);
        if let Ok(mut d) = self.deps.write() {
            *d = Some(idx.clone());
        }
        Some(idx)
    }

    /// Where what is under the cursor at `pos` of `path` is defined.
    pub async fn definition(&self, path: &Path, pos: Position) -> Definition {
        let Some((module, function, arity, local)) = self.reference_at(path, pos).and_then(target)
        else {
            return Definition::Unknown;
        };
        let function = function.as_deref();
        if let Some(idx) = self.index() {
            let found = in_index(&idx, &module, function, arity);
            if !found.is_empty() {
                return Definition::At(found);
            }
        }
        if let Some(idx) = self.deps_index() {
            let found = in_index(&idx, &module, function, arity);
            if !found.is_empty() {
                return Definition::At(found);
            }
        }
        // A local call the workspace does not define (an import, a macro of Kernel) is
        // not asked of the node: which module it comes from is not known here.
        if local {
            return Definition::Unknown;
        }
        let Some(session) = self.session().filter(|s| s.status() == Status::Attached) else {
            return Definition::Unknown;
        };
        let Some(node) = sources::locate(&session, &module, function, arity).await else {
            return Definition::Unknown;
        };
        match node.sources.iter().find(|p| p.is_file()) {
            Some(file) => match in_file(file, &module, function, arity, &node) {
                Some(hit) => Definition::At(vec![hit]),
                None => Definition::Unknown,
            },
            None => Definition::NoSource {
                module,
                recorded: node.sources.first().cloned(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_range_covers_an_erlang_head() {
        let text = "-module(lists).\n\nreverse([] = L) ->\n    L.\n";
        let r = line_range(text, 2, Some("reverse"));
        assert_eq!((r.start, r.end), (Position::new(2, 0), Position::new(2, 7)));
        let r = line_range(text, 3, Some("reverse"));
        assert_eq!((r.start, r.end), (Position::new(3, 4), Position::new(3, 4)));
    }
}
