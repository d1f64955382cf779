//! "Debug test" lenses in ExUnit files (`*_test.exs`): above each `test "…"` and
//! `describe "…"`, and above the test module for the whole file. Each carries a ready DAP
//! launch configuration (`mix test <file>:<line>` under `orrery dap`) that the editor
//! package starts with its debugger (command `orrery.debugTest`, handled by the client).

use super::convert::range;
use crate::core::Core;
use serde_json::{json, Value};
use std::path::Path;
use tower_lsp_server::ls_types::*;

/// The client-side command the lenses use.
pub const DEBUG_TEST: &str = "orrery.debugTest";

/// Whether `path` is an ExUnit test file.
pub fn is_test_file(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with("_test.exs"))
}

/// The launch configuration that debugs `rel` (relative to `root`), at `line` or whole.
pub fn launch_config(root: &Path, rel: &str, line: Option<u32>, what: &str) -> Value {
    let target = match line {
        Some(l) => format!("{rel}:{l}"),
        None => rel.to_string(),
    };
    json!({
        "type": "orrery",
        "request": "launch",
        "name": format!("Debug {what}"),
        "cwd": root,
        "task": "test",
        "taskArgs": [target],
    })
}

/// `test "name"` / `describe "name"` at the start of a line: (kind, name, 0-based line).
fn test_lines(text: &str) -> Vec<(&'static str, String, u32)> {
    let mut out = vec![];
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        for kind in ["test", "describe"] {
            let Some(rest) = t.strip_prefix(kind) else {
                continue;
            };
            let rest = rest.trim_start_matches([' ', '(']);
            if let Some(q) = rest.strip_prefix('"') {
                let name: String = q.chars().take_while(|c| *c != '"').collect();
                out.push((kind, name, i as u32));
            }
        }
    }
    out
}

fn lens(line: u32, title: String, config: Value) -> CodeLens {
    CodeLens {
        range: Range::new(Position::new(line, 0), Position::new(line, 0)),
        command: Some(Command {
            title,
            command: DEBUG_TEST.into(),
            arguments: Some(vec![config]),
        }),
        data: None,
    }
}

/// The lenses of a test file (empty for other files).
pub fn lenses(core: &Core, path: &Path) -> Vec<CodeLens> {
    if !is_test_file(path) {
        return vec![];
    }
    let Some(root) = core.mix_root() else {
        return vec![];
    };
    let Ok(rel) = path.strip_prefix(&root) else {
        return vec![];
    };
    let rel = rel.to_string_lossy().into_owned();
    let text = core
        .docs
        .read()
        .ok()
        .and_then(|d| d.get(path).map(|d| d.text()))
        .or_else(|| std::fs::read_to_string(path).ok())
        .unwrap_or_default();
    let mut out = vec![];
    let modules: Vec<Range> = core
        .index
        .read()
        .ok()
        .and_then(|i| {
            i.file(path)
                .map(|f| f.modules.iter().map(|m| range(m.name_range)).collect())
        })
        .unwrap_or_default();
    for r in modules {
        let mut l = lens(
            0,
            "Debug tests in file".into(),
            launch_config(&root, &rel, None, &rel),
        );
        l.range = r;
        out.push(l);
    }
    for (kind, name, line) in test_lines(&text) {
        let title = if kind == "test" {
            "Debug test"
        } else {
            "Debug describe"
        };
        out.push(lens(
            line,
            title.into(),
            launch_config(&root, &rel, Some(line + 1), &format!("{kind} \"{name}\"")),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_tests_and_describes() {
        let src = "defmodule ATest do\n  use ExUnit.Case\n  describe \"put\" do\n    test \"stores\", %{b: b} do\n    end\n  end\n  test(\"plain\") do\n  end\n  # test \"not code\"\nend\n";
        let found = test_lines(src);
        assert_eq!(
            found,
            vec![
                ("describe", "put".to_string(), 2),
                ("test", "stores".to_string(), 3),
                ("test", "plain".to_string(), 6),
            ]
        );
    }

    #[test]
    fn launch_config_names_the_line() {
        let c = launch_config(Path::new("/p"), "test/a_test.exs", Some(4), "test \"x\"");
        assert_eq!(c["taskArgs"], json!(["test/a_test.exs:4"]));
        assert_eq!(c["task"], "test");
        assert_eq!(c["request"], "launch");
    }
}
