//! Dependents of a saved file: workspace modules that use its macros or structs at compile
//! time, so they must be recompiled against the new code to see the change (a struct's
//! defaults and keys, a macro's expansion, are baked into the modules that use them).
//!
//! Found through the workspace index: a module *provides* compile-time code when it
//! defines public macros or guards (`defmacro`, `defguard`) or a struct (`defstruct`,
//! `defexception`); a file *uses* a module when it names it (full name as a whole word,
//! `alias`/`use` as the index resolved them). The walk goes breadth-first: stage 1 uses
//! the saved file, stage 2 uses stage 1's providers, and so on (capped).

use crate::workspace::index::{FileIndex, FunKind, Position, WorkspaceIndex};
use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

/// Most dependent files recompiled for one save.
const MAX_FILES: usize = 200;

/// Modules of `file` that provide compile-time code to their users.
pub fn providers(file: &FileIndex, text: &str) -> Vec<String> {
    let mut out: BTreeSet<String> = BTreeSet::new();
    for m in &file.modules {
        if m.functions
            .iter()
            .any(|f| matches!(f.kind, FunKind::Defmacro | FunKind::Defguard))
        {
            out.insert(m.name.clone());
        }
    }
    // `defstruct`/`defexception` belong to the innermost module around them.
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        let is_struct = ["defstruct", "defexception"].iter().any(|k| {
            t.strip_prefix(k)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '(', '[']))
        });
        if is_struct {
            let col = (line.len() - t.len()) as u32;
            if let Some(m) = file.module_at(Position::new(i as u32, col)) {
                out.insert(m.name.clone());
            }
        }
    }
    out.into_iter().collect()
}

/// Whether `text` names `module` as a whole word (`KV.Shape` in `%KV.Shape{}` or
/// `KV.Shape.label()`, not in `KV.Shapes` or the nested `KV.Shape.Sub`).
pub fn mentions(text: &str, module: &str) -> bool {
    let bytes = text.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    text.match_indices(module).any(|(i, _)| {
        let before_ok = i == 0 || !(word(bytes[i - 1]) || bytes[i - 1] == b'.');
        let after = i + module.len();
        let after_ok = match bytes.get(after) {
            None => true,
            Some(b) if word(*b) => false,
            Some(b'.') => !bytes.get(after + 1).is_some_and(|c| c.is_ascii_uppercase()),
            Some(_) => true,
        };
        before_ok && after_ok
    })
}

/// Whether `file` (with `text`) uses any of `modules`.
fn uses_any(file: &FileIndex, text: &str, modules: &[String]) -> bool {
    modules.iter().any(|name| {
        mentions(text, name)
            || file.modules.iter().any(|m| {
                m.uses.iter().any(|u| u == name) || m.aliases.iter().any(|(_, full)| full == name)
            })
    })
}

/// Whether a file can be recompiled as part of the app: an `.ex` file under the mix root,
/// not in a `test` directory (test support is compiled only in the test env).
fn compilable(root: &Path, path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "ex")
        && path
            .strip_prefix(root)
            .is_ok_and(|rel| !rel.components().any(|c| c.as_os_str() == "test"))
}

/// The dependents of `saved`, in stages (see the module docs). `text_of` gives a file's
/// current text (the open document, else what is on disk). Paths are canonical.
pub fn stages(
    index: &WorkspaceIndex,
    root: &Path,
    saved: &Path,
    text_of: impl Fn(&Path) -> Option<String>,
) -> Vec<Vec<PathBuf>> {
    let root = crate::core::normalize(root);
    let files: Vec<(PathBuf, &FileIndex)> = index
        .files()
        .map(|(p, f)| (crate::core::normalize(p), f))
        .filter(|(p, _)| compilable(&root, p))
        .collect();
    let saved = crate::core::normalize(saved);
    let text = |p: &Path| text_of(p).or_else(|| std::fs::read_to_string(p).ok());
    let mut seen: HashSet<PathBuf> = HashSet::from([saved.clone()]);
    let mut frontier = vec![saved];
    let mut out: Vec<Vec<PathBuf>> = vec![];
    let mut total = 0;
    while !frontier.is_empty() && total < MAX_FILES {
        let provided: Vec<String> = frontier
            .iter()
            .filter_map(|p| {
                let f = files.iter().find(|(q, _)| q == p).map(|(_, f)| *f)?;
                Some(providers(f, &text(p)?))
            })
            .flatten()
            .collect();
        if provided.is_empty() {
            break;
        }
        let mut next = vec![];
        for (p, f) in &files {
            if total >= MAX_FILES || seen.contains(p) {
                continue;
            }
            if text(p).is_some_and(|t| uses_any(f, &t, &provided)) {
                seen.insert(p.clone());
                next.push(p.clone());
                total += 1;
            }
        }
        if next.is_empty() {
            break;
        }
        out.push(next.clone());
        frontier = next;
    }
    out
}

/// Module names (as written in source) of a file, from the index.
pub fn modules_of(index: &WorkspaceIndex, path: &Path) -> Vec<String> {
    let path = crate::core::normalize(path);
    index
        .files()
        .find(|(p, _)| crate::core::normalize(p) == path)
        .map(|(_, f)| f.modules.iter().map(|m| m.name.clone()).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::index::index_source;

    #[test]
    fn whole_module_names_only() {
        assert!(mentions("x = %KV.Shape{}", "KV.Shape"));
        assert!(mentions("KV.Shape.label()", "KV.Shape"));
        assert!(mentions("alias KV.Shape\n", "KV.Shape"));
        assert!(!mentions("KV.Shapes.x()", "KV.Shape"));
        assert!(!mentions("MyKV.Shape", "KV.Shape"));
        assert!(!mentions("Foo.KV.Shape", "KV.Shape"));
        assert!(!mentions("KV.Shape.Sub.x()", "KV.Shape"));
    }

    #[test]
    fn macros_and_structs_provide() {
        let src = "defmodule A do\n  defstruct x: 1\n  defmodule B do\n    defmacro m, do: 1\n  end\nend\ndefmodule C do\n  def f, do: 1\nend\n";
        let f = index_source(src);
        assert_eq!(providers(&f, src), vec!["A".to_string(), "A.B".to_string()]);
        let plain = "defmodule C do\n  def defstructure, do: 1\nend\n";
        assert!(providers(&index_source(plain), plain).is_empty());
    }

    #[test]
    fn stages_walk_users_breadth_first() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("lib");
        std::fs::create_dir_all(lib.join("x")).unwrap();
        std::fs::create_dir_all(dir.path().join("test")).unwrap();
        let files = [
            ("lib/shape.ex", "defmodule App.Shape do\n  defstruct sides: 3\nend\n"),
            // Uses Shape, and provides a macro itself.
            ("lib/x/geo.ex", "defmodule App.Geo do\n  alias App.Shape, as: S\n  defmacro tri, do: Macro.escape(%S{})\nend\n"),
            // Named only through a multi-alias: found through the index.
            ("lib/multi.ex", "defmodule App.Multi do\n  alias App.{Shape}\n  def f, do: %Shape{}\nend\n"),
            ("lib/user.ex", "defmodule App.User do\n  require App.Geo\n  def t, do: App.Geo.tri()\nend\n"),
            ("lib/other.ex", "defmodule App.Other do\n  def f, do: :shape\nend\n"),
            ("test/shape_test.ex", "defmodule App.ShapeTest do\n  def f, do: %App.Shape{}\nend\n"),
        ];
        for (rel, src) in files {
            std::fs::write(dir.path().join(rel), src).unwrap();
        }
        let mut idx = WorkspaceIndex::new();
        idx.index_dir(dir.path());
        let s = stages(&idx, dir.path(), &dir.path().join("lib/shape.ex"), |_| None);
        let names: Vec<Vec<String>> = s
            .iter()
            .map(|st| {
                st.iter()
                    .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                    .collect()
            })
            .collect();
        assert_eq!(
            names,
            vec![
                vec!["multi.ex".to_string(), "geo.ex".to_string()],
                vec!["user.ex".to_string()]
            ]
        );
        // A file providing nothing has no dependents.
        assert!(stages(&idx, dir.path(), &dir.path().join("lib/other.ex"), |_| None).is_empty());
    }
}
