//! Process names through module attributes and helper functions (`names.rs`).

use super::*;
use std::path::PathBuf;

fn workspace(files: &[(&str, &str)]) -> WorkspaceIndex {
    let mut idx = WorkspaceIndex::new();
    for (path, src) in files {
        idx.update(PathBuf::from(path), src);
    }
    idx
}

/// `(name in Elixir syntax, registers)` of `module`, resolved through the workspace.
fn resolved(idx: &WorkspaceIndex, module: &str) -> Vec<(String, bool)> {
    let (_, m) = idx.find_module(module).expect("module");
    idx.names_of(m)
        .iter()
        .map(|n| (n.name.elixir(), n.registers))
        .collect()
}

const REGISTRY: &str = r#"defmodule Todo.ProcessRegistry do
  def start_link, do: Registry.start_link(keys: :unique, name: __MODULE__)

  def via_tuple(key) do
    {:via, Registry, {__MODULE__, key}}
  end
end
"#;

const SERVER: &str = r#"defmodule Todo.Server do
  use GenServer, restart: :temporary

  def start_link(name) do
    GenServer.start_link(Todo.Server, name, name: via_tuple(name))
  end

  defp via_tuple(name) do
    Todo.ProcessRegistry.via_tuple({__MODULE__, name})
  end
end
"#;

#[test]
fn module_attributes_in_names() {
    let src = r#"defmodule Life.Cell do
  use GenServer
  @registry Life.CellRegistry
  @global_name {:global, :life}

  def start_link(pos), do: GenServer.start_link(__MODULE__, pos, name: {:via, Registry, {@registry, pos}})
  def start_tagged(pos), do: GenServer.start_link(__MODULE__, pos, name: {:via, Registry, {@registry, {:cell, pos}}})
  def start_global, do: GenServer.start_link(__MODULE__, 0, name: @global_name)
end
"#;
    let idx = workspace(&[("lib/cell.ex", src)]);
    assert_eq!(
        resolved(&idx, "Life.Cell"),
        [
            // The attribute's tuple is a name written in the module; `name: @global_name`
            // registers it.
            ("{:global, :life}".to_string(), true),
            ("{:via, Registry, {Life.CellRegistry, _}}".to_string(), true),
            (
                "{:via, Registry, {Life.CellRegistry, {:cell, _}}}".to_string(),
                true
            ),
        ]
    );
}

#[test]
fn helpers_local_and_in_other_modules_with_arguments_substituted() {
    let idx = workspace(&[
        ("lib/todo/process_registry.ex", REGISTRY),
        ("lib/todo/server.ex", SERVER),
    ]);
    assert_eq!(
        resolved(&idx, "Todo.Server"),
        [(
            "{:via, Registry, {Todo.ProcessRegistry, {Todo.Server, _}}}".to_string(),
            true
        )]
    );
    // The registry's own helper: a name with a wholly computed key, not registered there.
    assert_eq!(
        resolved(&idx, "Todo.ProcessRegistry"),
        [(
            "{:via, Registry, {Todo.ProcessRegistry, _}}".to_string(),
            false
        )]
    );
    // Without the registry module in the workspace: found at run time.
    let alone = workspace(&[("lib/todo/server.ex", SERVER)]);
    assert_eq!(
        resolved(&alone, "Todo.Server"),
        [("names found on the node".to_string(), true)]
    );
}

#[test]
fn names_not_told_by_the_code_or_other_atoms_are_found_at_run_time() {
    let src = r#"defmodule P do
  def start_link(opts), do: GenServer.start_link(__MODULE__, opts, name: Keyword.fetch!(opts, :name))
  def start_named, do: GenServer.start_link(__MODULE__, 1, name: __MODULE__)
  def start_plain, do: Agent.start_link(fn -> 1 end, name: :plain)
  def loop(x), do: loop(x)
  def start_loop(x), do: GenServer.start(__MODULE__, x, name: loop(x))
  def not_a_start(x), do: User.new(name: via(x))
end
"#;
    let idx = workspace(&[("lib/p.ex", src)]);
    assert_eq!(
        resolved(&idx, "P"),
        [("names found on the node".to_string(), true)]
    );
    let (_, m) = idx.find_module("P").unwrap();
    assert_eq!(m.name_uses.len(), 4, "{:?}", m.name_uses);
    // `name: __MODULE__` alone is no name to look up.
    let own = r#"defmodule Q do
  def start_link(_), do: GenServer.start_link(__MODULE__, 1, name: __MODULE__)
end
"#;
    let idx = workspace(&[("lib/q.ex", own)]);
    assert!(resolved(&idx, "Q").is_empty());
}

#[test]
fn literals_typed_by_users() {
    assert_eq!(
        parse_literal("{1, 2}"),
        Some(Lit::Tuple(vec![Lit::Int(1), Lit::Int(2)]))
    );
    assert_eq!(parse_literal("\"bob\""), Some(Lit::Str("bob".into())));
    assert_eq!(
        parse_literal("Todo.Server"),
        Some(Lit::Atom("Elixir.Todo.Server".into()))
    );
    assert_eq!(parse_literal(":a"), Some(Lit::Atom("a".into())));
    assert_eq!(parse_literal("x + 1"), None);
    assert_eq!(parse_literal("1 2"), None);
}
