//! Go to definition beyond the workspace, real `orrery lsp`: into a path dependency
//! (through the node, and with no node through the workspace's `mix.exs`), into Elixir's
//! standard library and into Erlang/OTP. Whether those sources are on this machine
//! depends on how Erlang and Elixir were installed (Debian ships Elixir's beams without
//! sources, and Erlang's sources only with `erlang-src`): where a source is here, the
//! answer points at the line that defines the function (checked in the file itself);
//! where it is not, there is no location and the user is told why.

mod support;

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::lsp::{after, start_attached, LspClient};
use support::{repo, rpc, TestNode};

const LONG: Duration = Duration::from_secs(90);

/// A workspace with a copy of the shapes fixture's `lib/shapes` (and, with `mix`, its
/// `mix.exs` with the path dependency pointing at the fixture's `shapes_dep`).
fn shapes_workspace(mix: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib/shapes");
    std::fs::create_dir_all(&lib).unwrap();
    let fixture = repo().join("tests/fixtures/shapes");
    for e in std::fs::read_dir(fixture.join("lib/shapes"))
        .unwrap()
        .flatten()
    {
        std::fs::copy(e.path(), lib.join(e.file_name())).unwrap();
    }
    if mix {
        let dep = repo().join("tests/fixtures/shapes_dep");
        let text = std::fs::read_to_string(fixture.join("mix.exs"))
            .unwrap()
            .replace(
                "\"../shapes_dep\"",
                &format!("{:?}", dep.display().to_string()),
            );
        std::fs::write(dir.path().join("mix.exs"), text).unwrap();
    }
    dir
}

/// textDocument/definition at just after `needle` in `path` (open in the editor).
fn definition(c: &mut LspClient, path: &Path, needle: &str) -> Value {
    let src = std::fs::read_to_string(path).unwrap();
    let (line, character) = after(&src, needle);
    c.call(
        "textDocument/definition",
        json!({"textDocument": {"uri": format!("file://{}", path.display())},
               "position": {"line": line, "character": character}}),
    )
}

/// The file and the text of the line a definition answer points at.
fn target_line(loc: &Value) -> (PathBuf, String) {
    let loc = if loc.is_array() { &loc[0] } else { loc };
    let uri = loc["uri"]
        .as_str()
        .unwrap_or_else(|| panic!("no location: {loc}"));
    let path = PathBuf::from(uri.strip_prefix("file://").unwrap());
    let line = loc["range"]["start"]["line"].as_u64().unwrap() as usize;
    let text = std::fs::read_to_string(&path).unwrap();
    (
        path.clone(),
        text.lines().nth(line).unwrap_or("").to_string(),
    )
}

/// Evaluate Elixir `code` on the node; the string it returns.
fn eval_string(node: &TestNode, code: &str) -> String {
    let r = rpc(
        node,
        "Elixir.Code",
        "eval_string",
        vec![orrery::beam::term::binary(code)],
    )
    .unwrap();
    orrery::beam::term::as_tuple(&r)
        .and_then(|t| orrery::beam::term::as_string(&t[0]))
        .unwrap()
}

#[test]
fn definition_into_a_path_dependency_through_the_node_and_through_mix_exs() {
    let node = TestNode::start("shapes");
    let dep_file =
        std::fs::canonicalize(repo().join("tests/fixtures/shapes_dep/lib/shapes_dep.ex")).unwrap();

    // No mix.exs in the workspace: the node says where ShapesDep's source is.
    let ws = shapes_workspace(false);
    let optional = ws.path().join("lib/shapes/optional.ex");
    let mut c = start_attached(&node, ws.path(), json!({}));
    c.open(&optional);
    let d = definition(&mut c, &optional, "ShapesDep.apply_tw");
    let (path, line) = target_line(&d);
    assert_eq!(std::fs::canonicalize(&path).unwrap(), dep_file, "{d}");
    assert!(
        line.trim_start().starts_with("def apply_twice("),
        "{line:?} {d}"
    );
    let d = definition(&mut c, &optional, "ShapesD");
    let (_, line) = target_line(&d);
    assert!(line.starts_with("defmodule ShapesDep do"), "{line:?} {d}");
    c.shutdown();

    // No node at all: the path dependency of mix.exs is indexed.
    let ws = shapes_workspace(true);
    let optional = ws.path().join("lib/shapes/optional.ex");
    let mut c = LspClient::start(&[]);
    c.initialize(
        ws.path(),
        json!({"node": format!("nobody{}@{}", std::process::id(), support::hostname()),
               "cookie": "none"}),
    );
    c.open(&optional);
    let d = definition(&mut c, &optional, "ShapesDep.apply_tw");
    let (path, line) = target_line(&d);
    assert_eq!(std::fs::canonicalize(&path).unwrap(), dep_file, "{d}");
    assert!(
        line.trim_start().starts_with("def apply_twice("),
        "{line:?} {d}"
    );
    let st = c.call("orrery/status", Value::Null);
    assert_eq!(st["attached"], json!(false), "{st}");
    c.shutdown();
}

/// A definition that must point at a line starting with `starts` in the module's source
/// when that source is on this machine (`candidates`), else give no location and say so.
fn check_library_definition(
    c: &mut LspClient,
    file: &Path,
    needle: &str,
    module: &str,
    candidates: &[String],
    starts: &str,
) {
    let n = c.count("window/showMessage");
    let d = definition(c, file, needle);
    let here: Vec<&String> = candidates
        .iter()
        .filter(|p| Path::new(p).is_file())
        .collect();
    if here.is_empty() {
        assert!(
            d.is_null(),
            "{module}: no source here {candidates:?}, yet {d}"
        );
        let m = c.wait_nth(LONG, "window/showMessage", n + 1);
        let text = m["params"]["message"].as_str().unwrap_or("");
        assert!(
            text.contains(&format!("the source of {module} is not on this machine")),
            "{m}"
        );
    } else {
        let (path, line) = target_line(&d);
        assert!(
            here.iter().any(|p| Path::new(p) == path),
            "{module}: {d} not in {here:?}"
        );
        assert!(
            line.trim_start().starts_with(starts),
            "{module}: {line:?} {d}"
        );
    }
}

#[test]
fn definition_into_the_standard_library_where_its_source_is_here() {
    let node = TestNode::start("kv");
    let ws = support::lib_copy(&node);
    let file = ws.path().join("lib/kv/uses_stdlib.ex");
    let src = "defmodule KV.UsesStdlib do\n  def go(list) do\n    \
               :lists.reverse(Enum.map(list, &(&1 + 1)))\n  end\n\n  \
               def ask(pid), do: GenServer.call(pid, :ask)\nend\n";
    std::fs::write(&file, src).unwrap();
    let mut c = start_attached(&node, ws.path(), json!({}));
    c.open(&file);

    // Where the node's modules say their sources are, and where they would be under
    // their applications' directories (what Orrery looks at too).
    let sources = |m: &str, app: &str, rel: &str| -> Vec<String> {
        vec![
            eval_string(
                &node,
                &format!("to_string({m}.module_info(:compile)[:source])"),
            ),
            eval_string(
                &node,
                &format!("Path.join(to_string(:code.lib_dir(:{app})), {rel:?})"),
            ),
        ]
    };
    let enum_src = sources("Enum", "elixir", "lib/enum.ex");
    check_library_definition(&mut c, &file, "Enum.ma", "Enum", &enum_src, "def map(");
    let gs_src = sources("GenServer", "elixir", "lib/gen_server.ex");
    check_library_definition(
        &mut c,
        &file,
        "GenServer.ca",
        "GenServer",
        &gs_src,
        "def call(",
    );
    let lists_src = sources(":lists", "stdlib", "src/lists.erl");
    check_library_definition(
        &mut c,
        &file,
        ":lists.rev",
        ":lists",
        &lists_src,
        "reverse(",
    );
    check_library_definition(
        &mut c,
        &file,
        ":lis",
        ":lists",
        &lists_src,
        "-module(lists)",
    );
    c.shutdown();
}
