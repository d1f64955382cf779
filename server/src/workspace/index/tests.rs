//! Tests of the indexer and of `WorkspaceIndex`.

use super::*;

pub(super) const CALC: &str = r#"defmodule KV.Calc do
  @moduledoc "Arithmetic."
  alias KV.Bucket
  alias KV.Bucket, as: B
  alias KV.{Registry, Supervisor.Child}
  alias __MODULE__.Helpers
  use GenServer

  @table :kv_table

  def add(a, b \\ 1) when is_integer(a), do: a + b

  def zero, do: 0

  def sign(x) when x > 0, do: :pos
  def sign(x) when x < 0, do: :neg
  def sign(0), do: :zero

  defp helper do
    :ets.new(:kv_cache, [:named_table])
    :ets.new(@table, [])
  end

  defmodule Inner do
    def inner_fun(x), do: x
  end

  def after_inner, do: Inner.inner_fun(1)
end
"#;

pub(super) fn pos(line: u32, character: u32) -> Position {
    Position { line, character }
}

fn module<'a>(file: &'a FileIndex, name: &str) -> &'a ModuleDef {
    file.modules
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| {
            panic!(
                "no module {name} in {:?}",
                file.modules.iter().map(|m| &m.name).collect::<Vec<_>>()
            )
        })
}

fn fun<'a>(m: &'a ModuleDef, name: &str) -> &'a FunctionDef {
    m.functions
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no function {name} in {}", m.name))
}

fn names(m: &ModuleDef) -> Vec<String> {
    m.functions
        .iter()
        .map(|f| format!("{}/{}", f.name, f.arity))
        .collect()
}

#[test]
fn nested_modules_get_full_names_and_own_functions() {
    let file = index_source(CALC);
    let mods: Vec<&str> = file.modules.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(mods, ["KV.Calc", "KV.Calc.Inner"]);
    let calc = module(&file, "KV.Calc");
    assert_eq!(
        names(calc),
        ["add/2", "zero/0", "sign/1", "helper/0", "after_inner/0"]
    );
    let inner = module(&file, "KV.Calc.Inner");
    assert_eq!(names(inner), ["inner_fun/1"]);
    assert_eq!(calc.range.start, pos(0, 0));
    assert_eq!(calc.range.end, pos(28, 3));
    assert_eq!(
        calc.name_range,
        Range {
            start: pos(0, 10),
            end: pos(0, 17)
        }
    );
    assert_eq!(
        inner.range,
        Range {
            start: pos(23, 2),
            end: pos(25, 5)
        }
    );
    assert_eq!(inner.name_range.start, pos(23, 12));
}

#[test]
fn deeper_nesting_and_dotted_nested_names() {
    let src = "defmodule A do\n  defmodule B.C do\n    defmodule D do\n      def d, do: 1\n    end\n  end\n  defmodule __MODULE__.E do\n  end\nend\ndefmodule Top do\nend\n";
    let file = index_source(src);
    let mods: Vec<&str> = file.modules.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(mods, ["A", "A.B.C", "A.B.C.D", "A.E", "Top"]);
    assert_eq!(names(module(&file, "A.B.C.D")), ["d/0"]);
    assert!(module(&file, "A").functions.is_empty());
}

#[test]
fn aliases_in_all_forms() {
    let file = index_source(CALC);
    let calc = module(&file, "KV.Calc");
    let expected = [
        ("Bucket", "KV.Bucket"),
        ("B", "KV.Bucket"),
        ("Registry", "KV.Registry"),
        ("Child", "KV.Supervisor.Child"),
        ("Helpers", "KV.Calc.Helpers"),
    ];
    let got: Vec<(&str, &str)> = calc
        .aliases
        .iter()
        .map(|(s, f)| (s.as_str(), f.as_str()))
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn aliases_resolve_through_earlier_aliases_and_stay_in_scope() {
    let src = "defmodule M do\n  alias App.Deep\n  alias Deep.Er\n  alias :ets, as: Ets\n  def f do\n    alias Not.Module\n  end\n  use Deep.Thing\nend\n";
    let file = index_source(src);
    let m = module(&file, "M");
    let got: Vec<(&str, &str)> = m
        .aliases
        .iter()
        .map(|(s, f)| (s.as_str(), f.as_str()))
        .collect();
    assert_eq!(
        got,
        [("Deep", "App.Deep"), ("Er", "App.Deep.Er"), ("Ets", ":ets")]
    );
    assert_eq!(m.uses, ["App.Deep.Thing"]);
    assert_eq!(m.line_of_use, Some(7));
}

#[test]
fn uses_and_line_of_use() {
    let file = index_source(CALC);
    let calc = module(&file, "KV.Calc");
    assert_eq!(calc.uses, ["GenServer"]);
    assert_eq!(calc.line_of_use, Some(6));
    assert!(module(&file, "KV.Calc.Inner").uses.is_empty());
}

#[test]
fn multi_clause_functions_with_guards() {
    let file = index_source(CALC);
    let calc = module(&file, "KV.Calc");
    let sign = fun(calc, "sign");
    assert_eq!(sign.clauses, 3);
    assert_eq!(sign.guards, ["x > 0", "x < 0"]);
    assert_eq!(sign.range.start, pos(14, 2));
    assert_eq!(sign.range.end, pos(16, 24));
    assert_eq!(
        sign.name_range,
        Range {
            start: pos(14, 6),
            end: pos(14, 10)
        }
    );
    assert_eq!(sign.head_end, pos(14, 24));
    assert_eq!(sign.kind, FunKind::Def);
}

#[test]
fn default_args_count_full_arity() {
    let file = index_source(CALC);
    let add = fun(module(&file, "KV.Calc"), "add");
    assert_eq!(add.arity, 2);
    assert_eq!(add.defaults, 1);
    assert!(add.accepts(1) && add.accepts(2) && !add.accepts(0) && !add.accepts(3));
    assert_eq!(add.guards, ["is_integer(a)"]);
    assert_eq!(add.clauses, 1);
    assert_eq!(
        add.name_range,
        Range {
            start: pos(10, 6),
            end: pos(10, 9)
        }
    );
    // after `is_integer(a)`
    assert_eq!(add.head_end, pos(10, 39));
    assert_eq!(
        add.range,
        Range {
            start: pos(10, 2),
            end: pos(10, 50)
        }
    );
}

#[test]
fn bodiless_head_then_clauses() {
    let src = "defmodule H do\n  def f(a, b \\\\ 0)\n  def f(a, 0), do: a\n  def f(a, b), do: a + b\nend\n";
    let file = index_source(src);
    let f = fun(module(&file, "H"), "f");
    assert_eq!((f.arity, f.defaults, f.clauses), (2, 1, 3));
    assert!(f.guards.is_empty());
}

#[test]
fn zero_arity_forms_and_kinds() {
    let src = r#"defmodule K do
  def a, do: 1
  def b do
    2
  end
  def c(), do: 3
  defp d, do: 4
  defmacro m(x), do: x
  defmacrop mp(x), do: x
  defguard is_ok(x) when x == :ok
  defguardp is_err(x) when x == :error
  defdelegate get(bucket, key), to: KV.Bucket
  def left <~> right, do: {left, right}
  def unquote(:dynamic)(x), do: x
end
"#;
    let file = index_source(src);
    let k = module(&file, "K");
    let got: Vec<(String, u32, FunKind)> = k
        .functions
        .iter()
        .map(|f| (f.name.clone(), f.arity, f.kind))
        .collect();
    let expected = [
        ("a", 0, FunKind::Def),
        ("b", 0, FunKind::Def),
        ("c", 0, FunKind::Def),
        ("d", 0, FunKind::Defp),
        ("m", 1, FunKind::Defmacro),
        ("mp", 1, FunKind::Defmacrop),
        ("is_ok", 1, FunKind::Defguard),
        ("is_err", 1, FunKind::Defguardp),
        ("get", 2, FunKind::Defdelegate),
        ("<~>", 2, FunKind::Def),
    ];
    let expected: Vec<(String, u32, FunKind)> = expected
        .iter()
        .map(|(n, a, k)| (n.to_string(), *a, *k))
        .collect();
    assert_eq!(got, expected);
    let b = fun(k, "b");
    assert_eq!(
        b.range,
        Range {
            start: pos(2, 2),
            end: pos(4, 5)
        }
    );
    assert_eq!(b.head_end, pos(2, 7));
    assert_eq!(fun(k, "a").head_end, pos(1, 7));
}

#[test]
fn same_name_different_arity_or_kind_are_separate() {
    let src = "defmodule S do\n  def f(x), do: x\n  def f(x, y), do: y\n  def f(x), do: x\n  defp g(x), do: x\nend\n";
    let file = index_source(src);
    assert_eq!(names(module(&file, "S")), ["f/1", "f/2", "f/1", "g/1"]);
}

#[test]
fn attributes_and_comments_between_clauses_keep_them_together() {
    let src = "defmodule S do\n  @impl true\n  def handle_call(:a, _f, s), do: {:reply, 1, s}\n  # comment\n  @doc false\n  def handle_call(:b, _f, s), do: {:reply, 2, s}\nend\n";
    let file = index_source(src);
    let f = fun(module(&file, "S"), "handle_call");
    assert_eq!((f.arity, f.clauses), (3, 2));
}

#[test]
fn ets_tables_by_atom_and_attribute() {
    let file = index_source(CALC);
    let calc = module(&file, "KV.Calc");
    let tables: Vec<&str> = calc.ets_tables.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(tables, ["kv_cache", "kv_table"]);
    assert_eq!(
        calc.ets_tables[0].1,
        Range {
            start: pos(19, 4),
            end: pos(19, 39)
        }
    );
    let src = "defmodule T do\n  def init(_), do: :ets.new(__MODULE__, [:named_table])\n  def q, do: :ets.new(:\"quoted name\", [])\nend\n";
    let file = index_source(src);
    let tables: Vec<&str> = module(&file, "T")
        .ets_tables
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(tables, ["Elixir.T", "quoted name"]);
}

#[test]
fn defs_in_quote_do_not_count_but_conditional_defs_do() {
    let src = r#"defmodule Q do
  defmacro __using__(_) do
    quote do
      def injected, do: 1
    end
  end
  if Mix.env() == :test do
    def test_only, do: 1
  end
  def outer do
    fn -> 1 end
  end
end
"#;
    let file = index_source(src);
    assert_eq!(
        names(module(&file, "Q")),
        ["__using__/1", "test_only/0", "outer/0"]
    );
}

#[test]
fn protocols_and_impls() {
    let src = "defprotocol Size do\n  def size(data)\nend\ndefimpl Size, for: Map do\n  def size(m), do: map_size(m)\nend\ndefmodule User do\n  defstruct [:name]\n  defimpl String.Chars do\n    def to_string(u), do: u.name\n  end\nend\n";
    let file = index_source(src);
    let mods: Vec<&str> = file.modules.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(mods, ["Size", "Size.Map", "User", "String.Chars.User"]);
    assert_eq!(names(module(&file, "Size")), ["size/1"]);
    assert_eq!(names(module(&file, "String.Chars.User")), ["to_string/1"]);
}

#[test]
fn unicode_before_a_name_uses_utf16_columns() {
    let src = "defmodule U do\n  @a \"é😀\"; def smile(x), do: x\n  def café(x), do: x\nend\n";
    let file = index_source(src);
    let m = module(&file, "U");
    assert_eq!(
        m.name_range,
        Range {
            start: pos(0, 10),
            end: pos(0, 11)
        }
    );
    let smile = fun(m, "smile");
    // `  @a "é😀"; def ` = 2 + 3 + 1 + 1 (é) + 2 (😀) + 1 + 2 + 4 = 16 UTF-16 units
    assert_eq!(
        smile.name_range,
        Range {
            start: pos(1, 16),
            end: pos(1, 21)
        }
    );
    assert_eq!(smile.head_end, pos(1, 24));
    let cafe = fun(m, "café");
    assert_eq!(
        cafe.name_range,
        Range {
            start: pos(2, 6),
            end: pos(2, 10)
        }
    );
    assert_eq!(cafe.range.end, pos(2, 20));
}

#[test]
fn broken_source_keeps_what_it_can() {
    let src = "defmodule A do\n  alias KV.Bucket\n  def ok(x), do: x\n  def broken(\n  def later(y), do: y\nend\n";
    let file = index_source(src);
    let a = module(&file, "A");
    assert_eq!(names(a), ["ok/1", "later/1"]);
    assert_eq!(
        fun(a, "later").name_range,
        Range {
            start: pos(4, 6),
            end: pos(4, 11)
        }
    );
    assert_eq!(a.aliases, [("Bucket".to_string(), "KV.Bucket".to_string())]);
    assert_eq!(a.range.start, pos(0, 0));
    assert!(a.range.end.line >= 4);

    let src = "defmodule B do\n  def first(x), do: x\n  def missing_end(x) do\n    case x do\n      1 -> :a\n  end\n  def after_err(y), do: y\nend\ndefmodule C do\n  def c1, do: 1\nend\n";
    let file = index_source(src);
    // The missing `end` makes the rest of the file part of `missing_end`, as for Elixir itself;
    // the definitions swallowed into its body are still found.
    assert_eq!(
        names(module(&file, "B")),
        ["first/1", "missing_end/1", "after_err/1"]
    );

    // `x +` takes the following `end` as its operand.
    let src =
        "defmodule C do\n  def c1, do: 1\n  def c2(x) do\n    x +\n  end\n  def c3, do: 3\nend\n";
    let file = index_source(src);
    assert_eq!(names(module(&file, "C")), ["c1/0", "c2/1", "c3/0"]);
    let src = "defmodule D do\n  def a(x), do: x\n  def b(x) do\n    %{x | \n  end\n  def c, do: 1\nend\n";
    let file = index_source(src);
    assert!(names(module(&file, "D")).contains(&"a/1".to_string()));
    assert!(names(module(&file, "D")).contains(&"c/0".to_string()));
}

#[test]
fn never_panics_on_any_prefix_or_garbage() {
    let garbage = [
        "",
        "defmodule",
        "defmodule do end",
        "def",
        "def f(",
        "end end end",
        "alias",
        "alias ,",
        "alias A.{",
        "use",
        "defmodule A do def unquote(",
        ":ets.new(",
        "&/1",
        "defimpl for: X do end",
        "\u{feff}défmodule 😀 do",
        "%{",
        "\"unterminated",
        "defmodule A do\r\n  def f(x) when, do: x\r\nend",
    ];
    for src in garbage {
        let _ = index_source(src);
        for b in 0..=src.len() {
            let li = text::LineIndex::new(src);
            let _ = reference_at(src, li.position(b));
        }
    }
    for end in (0..=CALC.len()).filter(|e| CALC.is_char_boundary(*e)) {
        let prefix = &CALC[..end];
        let file = index_source(prefix);
        for m in &file.modules {
            assert!(m.range.start <= m.range.end);
        }
        if end % 7 == 0 {
            let _ = reference_at(prefix, pos(10, 30));
            let _ = reference_at(prefix, pos(prefix.lines().count() as u32, 0));
        }
    }
    assert_eq!(reference_at(CALC, pos(1000, 0)), None);
    assert_eq!(reference_at(CALC, pos(0, 1000)), None);
}

#[test]
fn module_at_and_function_at() {
    let file = index_source(CALC);
    assert_eq!(
        file.module_at(pos(24, 10)).map(|m| m.name.as_str()),
        Some("KV.Calc.Inner")
    );
    assert_eq!(
        file.module_at(pos(3, 0)).map(|m| m.name.as_str()),
        Some("KV.Calc")
    );
    let (m, f) = file.function_at(pos(19, 5)).unwrap();
    assert_eq!((m.name.as_str(), f.name.as_str()), ("KV.Calc", "helper"));
    assert!(file.function_at(pos(1, 3)).is_none());
    assert!(file.module_at(pos(31, 0)).is_none());
}

#[test]
fn serializes_to_json() {
    let file = index_source("defmodule J do\n  defp f(x), do: x\nend\n");
    let json = serde_json::to_value(&file).unwrap();
    assert_eq!(json["modules"][0]["name"], "J");
    assert_eq!(json["modules"][0]["functions"][0]["kind"], "defp");
    assert_eq!(
        json["modules"][0]["functions"][0]["name_range"]["start"]["character"],
        7
    );
    let back: FileIndex = serde_json::from_value(json).unwrap();
    assert_eq!(back, file);
}

fn workspace() -> WorkspaceIndex {
    let mut ws = WorkspaceIndex::new();
    ws.update(PathBuf::from("/p/lib/calc.ex"), CALC);
    ws.update(
        PathBuf::from("/p/lib/bucket.ex"),
        "defmodule KV.Bucket do\n  def get(b, k), do: Map.get(b, k)\n  def put(b, k, v \\\\ nil), do: Map.put(b, k, v)\nend\n",
    );
    ws
}

#[test]
fn workspace_find_module_and_function() {
    let ws = workspace();
    let (path, m) = ws.find_module("KV.Bucket").unwrap();
    assert_eq!(path, PathBuf::from("/p/lib/bucket.ex"));
    assert_eq!(m.functions.len(), 2);
    assert!(ws.find_module("Elixir.KV.Calc.Inner").is_some());
    assert!(ws.find_module("KV.Nope").is_none());
    assert_eq!(ws.find_function("KV.Bucket", "get", Some(2)).len(), 1);
    assert!(ws.find_function("KV.Bucket", "get", Some(1)).is_empty());
    assert_eq!(ws.find_function("KV.Bucket", "put", Some(2)).len(), 1);
    assert_eq!(ws.find_function("KV.Bucket", "put", Some(3)).len(), 1);
    assert_eq!(ws.find_function("KV.Bucket", "put", None).len(), 1);
    assert_eq!(ws.find_function("KV.Calc", "add", Some(1))[0].1.arity, 2);
    assert!(ws.find_function("KV.Calc", "inner_fun", None).is_empty());
    assert_eq!(
        ws.find_function("KV.Calc.Inner", "inner_fun", None).len(),
        1
    );
    assert_eq!(ws.modules().count(), 3);
    assert!(ws.file(Path::new("/p/lib/calc.ex")).is_some());
}

#[test]
fn workspace_update_and_remove() {
    let mut ws = workspace();
    ws.update(
        PathBuf::from("/p/lib/bucket.ex"),
        "defmodule KV.Bucket2 do\nend\n",
    );
    assert!(ws.find_module("KV.Bucket").is_none());
    assert!(ws.find_module("KV.Bucket2").is_some());
    ws.remove(Path::new("/p/lib/bucket.ex"));
    assert!(ws.find_module("KV.Bucket2").is_none());
    assert!(ws.file(Path::new("/p/lib/bucket.ex")).is_none());
    assert_eq!(ws.files().count(), 1);
}

#[test]
fn workspace_symbols_fuzzy() {
    let ws = workspace();
    let all = ws.symbols("");
    assert_eq!(all.len(), 3 + 5 + 1 + 2);
    let hits = ws.symbols("kvcadd");
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].1, "KV.Calc.add/2");
    assert!(!hits[0].3);
    assert_eq!(
        hits[0].2,
        Range {
            start: pos(10, 6),
            end: pos(10, 9)
        }
    );
    let hits = ws.symbols("BUCKET");
    assert_eq!(hits[0].1, "KV.Bucket");
    assert!(hits[0].3);
    assert!(hits.iter().any(|h| h.1 == "KV.Bucket.get/2"));
    let hits = ws.symbols("get");
    assert_eq!(hits[0].1, "KV.Bucket.get/2");
    assert!(ws.symbols("zzz").is_empty());
}

#[test]
fn index_dir_walks_mix_layout() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let write = |rel: &str, body: &str| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    };
    write("lib/kv.ex", "defmodule KV do\nend\n");
    write(
        "lib/kv/bucket.ex",
        "defmodule KV.Bucket do\n  def get(b), do: b\nend\n",
    );
    write("test/kv_test.exs", "defmodule KVTest do\nend\n");
    write("apps/web/lib/web.ex", "defmodule Web do\nend\n");
    write("apps/web/test/web_test.exs", "defmodule WebTest do\nend\n");
    write("lib/deps/skip.ex", "defmodule SkipDeps do\nend\n");
    write("lib/_build/skip.ex", "defmodule SkipBuild do\nend\n");
    write("lib/node_modules/skip.ex", "defmodule SkipNode do\nend\n");
    write("lib/.git/skip.ex", "defmodule SkipGit do\nend\n");
    write("deps/dep/lib/dep.ex", "defmodule Dep do\nend\n");
    write("_build/dev/lib/x.ex", "defmodule Built do\nend\n");
    write("lib/notes.md", "defmodule NotElixir do\nend\n");
    write("mix.exs", "defmodule Mixfile do\nend\n");
    let mut ws = WorkspaceIndex::new();
    assert_eq!(ws.index_dir(root), 5);
    let mut mods: Vec<&str> = ws.modules().map(|(_, m)| m.name.as_str()).collect();
    mods.sort();
    assert_eq!(mods, ["KV", "KV.Bucket", "KVTest", "Web", "WebTest"]);
    let (path, _) = ws.find_module("KV.Bucket").unwrap();
    assert_eq!(path, root.join("lib/kv/bucket.ex"));
    assert_eq!(WorkspaceIndex::new().index_dir(&root.join("missing")), 0);
}

#[test]
fn process_names_with_literal_parts() {
    let src = r#"defmodule KV.Named do
  alias KV.Names, as: N
  def start_link(_), do: GenServer.start_link(__MODULE__, 1, name: {:via, Registry, {N, "main"}})
  def g, do: GenServer.start_link(__MODULE__, 1, name: {:global, {:kv, 1}})
  def w(id), do: GenServer.start_link(__MODULE__, id, name: {:via, Registry, {KV.Names, id}})
  def call, do: GenServer.call({:via, :my_reg, :"a b"}, :x)
  def skip(id), do: {:global, id}
  def interp(id), do: {:global, "x#{id}"}
end
"#;
    let file = index_source(src);
    let names: Vec<(String, bool)> = module(&file, "KV.Named")
        .names
        .iter()
        .map(|n| (n.name.elixir(), n.registers))
        .collect();
    assert_eq!(
        names,
        [
            (r#"{:via, Registry, {KV.Names, "main"}}"#.to_string(), true),
            ("{:global, {:kv, 1}}".to_string(), true),
            ("{:via, Registry, {KV.Names, _}}".to_string(), true),
            (r#"{:via, :my_reg, :"a b"}"#.to_string(), false),
        ]
    );
    assert_eq!(
        parse_proc_name(r#"{:via, Registry, {KV.Names, "main"}}"#),
        Some(ProcName::Via {
            module: "Elixir.Registry".into(),
            name: Lit::Tuple(vec![
                Lit::Atom("Elixir.KV.Names".into()),
                Lit::Str("main".into())
            ])
        })
    );
    assert_eq!(parse_proc_name("KV.Bucket"), None);
}
