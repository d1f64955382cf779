//! Tests of `reference_at`.

use super::tests::CALC;
use super::*;

/// Position of the `^` in `marked`, found (without the `|`) in `src`; UTF-16 columns computed
/// independently of the code under test.
fn at(src: &str, marked: &str) -> Position {
    let cursor = marked.find('^').expect("marker needs a ^");
    let needle = marked.replace('^', "");
    let start = src
        .find(&needle)
        .unwrap_or_else(|| panic!("{needle:?} not in source"));
    let offset = start + cursor;
    let line_start = src[..offset].rfind('\n').map_or(0, |i| i + 1);
    Position {
        line: src[..offset].matches('\n').count() as u32,
        character: src[line_start..offset].encode_utf16().count() as u32,
    }
}

fn refer(src: &str, marked: &str) -> Option<Reference> {
    reference_at(src, at(src, marked))
}

fn module(name: &str, range: Range) -> Reference {
    Reference::Module {
        name: name.into(),
        range,
    }
}

fn remote(module: &str, function: &str, arity: Option<u32>) -> (String, String, Option<u32>) {
    (module.into(), function.into(), arity)
}

fn as_remote(r: Option<Reference>) -> (String, String, Option<u32>) {
    match r {
        Some(Reference::RemoteCall {
            module,
            function,
            arity,
            ..
        }) => (module, function, arity),
        other => panic!("expected a remote call, got {other:?}"),
    }
}

fn as_local(r: Option<Reference>) -> (String, String, Option<u32>) {
    match r {
        Some(Reference::LocalCall {
            module,
            function,
            arity,
            ..
        }) => (module, function, arity),
        other => panic!("expected a local call, got {other:?}"),
    }
}

fn module_name(r: Option<Reference>) -> String {
    match r {
        Some(Reference::Module { name, .. }) => name,
        other => panic!("expected a module, got {other:?}"),
    }
}

const USER: &str = r#"defmodule KV.User do
  alias KV.Calc
  alias KV.Bucket, as: B
  alias KV.{Registry, Supervisor.Child}

  def run(x) do
    Calc.add(1, 2)
    B.get(:x)
    B.get :y
    Registry.lookup(x)
    Child.start()
    __MODULE__.helper(1, 2)
    helper(1, 2)
    x |> helper(2)
    f = &helper/2
    g = &B.put/3
    zero
    :ets.new(:kv_table, [:named_table])
    :"quoted atom"
    KV.Bucket.Deep.call()
    x.field
    if x, do: :ok
    [name: 1]
  end

  defp helper(a, b), do: {a, b}
  defp zero, do: 0
end
"#;

#[test]
fn module_alias_under_cursor() {
    let src = USER;
    let r = refer(src, "alias KV.Ca^lc").unwrap();
    assert_eq!(
        r,
        module(
            "KV.Calc",
            Range {
                start: Position::new(1, 8),
                end: Position::new(1, 15)
            }
        )
    );
    // first segment of a dotted alias: just that prefix
    let r = refer(src, "alias K^V.Calc").unwrap();
    assert_eq!(
        r,
        module(
            "KV",
            Range {
                start: Position::new(1, 8),
                end: Position::new(1, 10)
            }
        )
    );
    assert_eq!(module_name(refer(src, "^Calc.add")), "KV.Calc");
    assert_eq!(module_name(refer(src, "^B.get(:x)")), "KV.Bucket");
    assert_eq!(module_name(refer(src, "as: ^B")), "KV.Bucket");
    assert_eq!(module_name(refer(src, "KV.{Regi^stry")), "KV.Registry");
    assert_eq!(
        module_name(refer(src, "Supervisor.Chi^ld}")),
        "KV.Supervisor.Child"
    );
    assert_eq!(module_name(refer(src, "^Registry.lookup")), "KV.Registry");
    assert_eq!(
        module_name(refer(src, "^Child.start")),
        "KV.Supervisor.Child"
    );
    assert_eq!(
        module_name(refer(src, "KV.Bucket.De^ep.call")),
        "KV.Bucket.Deep"
    );
    assert_eq!(module_name(refer(src, "defmodule KV.Us^er")), "KV.User");
    assert_eq!(module_name(refer(src, "^__MODULE__.helper")), "KV.User");
}

#[test]
fn remote_call_through_alias() {
    let src = USER;
    assert_eq!(
        as_remote(refer(src, "Calc.a^dd(1, 2)")),
        remote("KV.Calc", "add", Some(2))
    );
    let r = refer(src, "Calc.^add(1, 2)").unwrap();
    assert_eq!(
        r.range(),
        Range {
            start: Position::new(6, 9),
            end: Position::new(6, 12)
        }
    );
    // cursor right after the name still counts
    assert_eq!(
        as_remote(refer(src, "Calc.add^(1, 2)")),
        remote("KV.Calc", "add", Some(2))
    );
    assert_eq!(
        as_remote(refer(src, "B.g^et(:x)")),
        remote("KV.Bucket", "get", Some(1))
    );
    assert_eq!(
        as_remote(refer(src, "B.g^et :y")),
        remote("KV.Bucket", "get", Some(1))
    );
    assert_eq!(
        as_remote(refer(src, "&B.p^ut/3")),
        remote("KV.Bucket", "put", Some(3))
    );
    assert_eq!(
        as_remote(refer(src, "Deep.ca^ll()")),
        remote("KV.Bucket.Deep", "call", Some(0))
    );
    assert_eq!(
        as_remote(refer(src, "__MODULE__.hel^per(1, 2)")),
        remote("KV.User", "helper", Some(2))
    );
    assert_eq!(
        as_remote(refer(src, ":ets.n^ew(")),
        remote(":ets", "new", Some(2))
    );
    // field access on a variable is not a module call
    assert_eq!(refer(src, "x.fi^eld"), None);
}

#[test]
fn local_calls() {
    let src = USER;
    assert_eq!(
        as_local(refer(src, "    hel^per(1, 2)")),
        remote("KV.User", "helper", Some(2))
    );
    assert_eq!(
        as_local(refer(src, "x |> hel^per(2)")),
        remote("KV.User", "helper", Some(2))
    );
    assert_eq!(
        as_local(refer(src, "&hel^per/2")),
        remote("KV.User", "helper", Some(2))
    );
    assert_eq!(
        as_local(refer(src, "    ze^ro\n")),
        remote("KV.User", "zero", Some(0))
    );
    // definition heads
    assert_eq!(
        as_local(refer(src, "defp hel^per(a, b)")),
        remote("KV.User", "helper", Some(2))
    );
    assert_eq!(
        as_local(refer(src, "defp ze^ro,")),
        remote("KV.User", "zero", Some(0))
    );
    assert_eq!(
        as_local(refer(src, "def r^un(x)")),
        remote("KV.User", "run", Some(1))
    );
    // variables, keywords of the language
    assert_eq!(refer(src, "def run(^x)"), None);
    assert_eq!(refer(src, "  de^f run"), None);
    assert_eq!(refer(src, "    i^f x,"), None);
    assert_eq!(refer(src, "  alia^s KV.Calc"), None);
}

#[test]
fn atoms() {
    let src = USER;
    let r = refer(src, ":kv_t^able").unwrap();
    assert_eq!(
        r,
        Reference::Atom {
            name: "kv_table".into(),
            range: Range {
                start: Position::new(17, 13),
                end: Position::new(17, 22)
            }
        }
    );
    let r = refer(src, ":^ets.new").unwrap();
    assert_eq!(
        r,
        module(
            ":ets",
            Range {
                start: Position::new(17, 4),
                end: Position::new(17, 8)
            }
        )
    );
    assert!(matches!(refer(src, "B.get(:^x)"), Some(Reference::Atom { name, .. }) if name == "x"));
    assert!(
        matches!(refer(src, ":\"quoted a^tom\""), Some(Reference::Atom { name, .. }) if name == "quoted atom")
    );
    assert!(
        matches!(refer(src, "[na^me: 1]"), Some(Reference::Atom { name, .. }) if name == "name")
    );
}

#[test]
fn nested_modules_and_module_keyword() {
    let src = CALC;
    assert_eq!(module_name(refer(src, "defmodule In^ner")), "KV.Calc.Inner");
    assert_eq!(
        as_remote(refer(src, "Inner.inner_f^un(1)")),
        remote("KV.Calc.Inner", "inner_fun", Some(1))
    );
    assert_eq!(
        module_name(refer(src, "^Inner.inner_fun(1)")),
        "KV.Calc.Inner"
    );
    assert_eq!(
        as_local(refer(src, "def inner_f^un(x)")),
        remote("KV.Calc.Inner", "inner_fun", Some(1))
    );
    assert_eq!(
        module_name(refer(src, "alias __MODULE__.Hel^pers")),
        "KV.Calc.Helpers"
    );
    assert_eq!(
        module_name(refer(src, "alias __MOD^ULE__.Helpers")),
        "KV.Calc"
    );
    assert_eq!(module_name(refer(src, "use Gen^Server")), "GenServer");
    // the outer module's aliases are visible in the nested one
    let src = "defmodule Outer do\n  alias KV.Calc\n  defmodule In do\n    def f, do: Calc.add(1)\n  end\nend\n";
    assert_eq!(
        as_remote(refer(src, "Calc.a^dd(1)")),
        remote("KV.Calc", "add", Some(1))
    );
    assert_eq!(
        as_local(refer(src, "def ^f,")),
        remote("Outer.In", "f", Some(0))
    );
}

#[test]
fn alias_scoping_is_lexical() {
    let src = r#"defmodule S do
  def early, do: Later.x()
  alias App.Later
  def late, do: Later.x()
  def f do
    alias Foo.Bar
    Bar.x()
  end
  def g, do: Bar.y()
  def h do
    alias Foo.Baz, as: Bar
    Bar.z()
  end
end
"#;
    assert_eq!(
        as_remote(refer(src, "early, do: Later.^x()")),
        remote("Later", "x", Some(0))
    );
    assert_eq!(
        as_remote(refer(src, "late, do: Later.^x()")),
        remote("App.Later", "x", Some(0))
    );
    assert_eq!(
        as_remote(refer(src, "Bar.^x()")),
        remote("Foo.Bar", "x", Some(0))
    );
    assert_eq!(
        as_remote(refer(src, "Bar.^y()")),
        remote("Bar", "y", Some(0))
    );
    assert_eq!(
        as_remote(refer(src, "Bar.^z()")),
        remote("Foo.Baz", "z", Some(0))
    );
    let src = "defmodule E do\n  alias :ets, as: Ets\n  def t, do: Ets.new(:t, [])\nend\n";
    assert_eq!(
        as_remote(refer(src, "Ets.n^ew")),
        remote(":ets", "new", Some(2))
    );
    assert_eq!(module_name(refer(src, "^Ets.new")), ":ets");
}

#[test]
fn utf16_columns_in_references() {
    let src = "defmodule U do\n  alias KV.Calc\n  def f, do: {\"é😀\", Calc.add(1, 2)}\nend\n";
    let p = at(src, "Calc.a^dd");
    assert_eq!(p, Position::new(2, 27));
    let r = reference_at(src, p).unwrap();
    assert_eq!(
        r.range(),
        Range {
            start: Position::new(2, 26),
            end: Position::new(2, 29)
        }
    );
    assert_eq!(as_remote(Some(r)), remote("KV.Calc", "add", Some(2)));
    // The byte column of `add` (29) would land on `(1, 2)` with the wrong conversion.
    assert_eq!(module_name(refer(src, "^Calc.add")), "KV.Calc");
}

#[test]
fn references_in_broken_source() {
    let src =
        "defmodule A do\n  alias KV.Bucket, as: B\n  def ok(x), do: B.get(x)\n  def broken(\nend\n";
    assert_eq!(
        as_remote(refer(src, "B.g^et(x)")),
        remote("KV.Bucket", "get", Some(1))
    );
    assert_eq!(module_name(refer(src, "^B.get(x)")), "KV.Bucket");
    let src =
        "defmodule Outer do\n  defmodule Inner do\n  end\n  def f(x) do\n    Inner.go(x\n  end\n";
    let (module, function, _) = as_remote(refer(src, "Inner.g^o(x"));
    assert_eq!((module.as_str(), function.as_str()), ("Outer.Inner", "go"));
}

#[test]
fn nothing_under_cursor() {
    let src = USER;
    assert_eq!(reference_at(src, Position::new(4, 0)), None); // blank line
    assert_eq!(refer("# a comment Foo.bar\n", "Foo.b^ar"), None);
    assert_eq!(refer("x = \"Foo.bar\"\n", "Foo.b^ar"), None);
    assert_eq!(reference_at("", Position::new(0, 0)), None);
    // outside any module, local calls have an empty module
    assert_eq!(
        as_local(refer("IO.puts(run(1))\n", "r^un(1)")),
        remote("", "run", Some(1))
    );
    assert_eq!(
        as_remote(refer("IO.puts(run(1))\n", "IO.pu^ts")),
        remote("IO", "puts", Some(1))
    );
}

#[test]
fn reference_serializes_with_kind_tag() {
    let r = refer(USER, "Calc.a^dd(1, 2)").unwrap();
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["kind"], "remoteCall");
    assert_eq!(json["module"], "KV.Calc");
    assert_eq!(json["arity"], 2);
}
