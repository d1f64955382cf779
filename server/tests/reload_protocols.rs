//! Protocols stay consolidated across saves, over the orchard fixture (a protocol with
//! impls in other files, a file with defprotocol and defimpl, impls of Elixir's own
//! protocols): an unchanged save is mix's consolidated build, an edited protocol is
//! swapped consolidated, a new impl gets its protocol consolidated again, and after
//! `mix compile` catches up the node runs exactly mix's build.

mod support;

use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;
use support::check::changed_modules;
use support::check::{assert_healthy, eval_text, health, wait_pristine};
use support::dap::DapClient;
use support::lsp::{save_and_wait, start_attached, LspClient};
use support::{edit_file as edit, wait_until};

const LONG: Duration = Duration::from_secs(90);
const APPS: &[&str] = &["Elixir.Store", "Elixir.Web", "store_"];

fn consolidated(node: &support::TestNode, protocols: &[&str]) {
    for p in protocols {
        assert_eq!(
            eval_text(node, &format!("Protocol.consolidated?({p})")),
            "true",
            "{p} is not consolidated on the node"
        );
    }
}

/// Save `path` (didSave) that does not compile: the first non-empty diagnostics
/// published for it after the save.
fn save_failing(c: &mut LspClient, path: &Path) -> Value {
    let n = c.seen.len();
    let uri = format!("file://{}", path.display());
    c.notify(
        "textDocument/didSave",
        json!({"textDocument": {"uri": uri}}),
    );
    wait_until(LONG, "error diagnostics", || {
        let _ = c.call("orrery/status", Value::Null);
        c.seen[n..]
            .iter()
            .rev()
            .find(|v| v["method"] == "textDocument/publishDiagnostics" && v["params"]["uri"] == uri)
            .map(|v| v["params"]["diagnostics"].clone())
            .filter(|d| d.as_array().is_some_and(|a| !a.is_empty()))
    })
}

const BASKET: &str = "870";
const LABELS: &str = r#"["plum: 500 c", "3", "[%Store.Fruit{name: \"pear\", kg: 1}]"]"#;

#[test]
fn protocols_stay_consolidated_and_dispatch_to_impls_in_other_files() {
    let (dir, node) = support::orchard();
    let before = health(&node);
    let mut c = start_attached(&node, dir.path(), json!({}));
    let lib = dir.path().join("apps/store/lib/store");
    let (priced, label, fruit) = (
        lib.join("priced.ex"),
        lib.join("label.ex"),
        lib.join("fruit.ex"),
    );
    for f in [&priced, &label, &fruit] {
        c.open(f);
    }
    let (priced_src, label_src) = (
        std::fs::read_to_string(&priced).unwrap(),
        std::fs::read_to_string(&label).unwrap(),
    );
    let total = || eval_text(&node, "Store.Till.total()");
    let labels = || eval_text(&node, "Store.Till.labels()");
    consolidated(&node, &["Store.Priced", "Store.Label", "String.Chars"]);
    assert_eq!(total(), BASKET);

    // Unchanged saves: mix's consolidated protocols, nothing to swap.
    for f in [&priced, &label, &fruit] {
        let msg = save_and_wait(&mut c, f);
        assert!(
            msg.contains("already runs this code"),
            "{}: {msg}",
            f.display()
        );
    }

    // An edited protocol (a new function) is swapped consolidated; dispatch to the impls
    // in other files goes on.
    edit(
        &priced,
        "  def price(item)\n",
        "  def price(item)\n\n  @doc \"The price of one unit.\"\n  def unit_price(item)\n",
    );
    let msg = save_and_wait(&mut c, &priced);
    assert!(msg.contains("Store.Priced swapped on 1 node"), "{msg}");
    consolidated(&node, &["Store.Priced"]);
    assert!(
        eval_text(&node, "Store.Priced.__protocol__(:functions)").contains("unit_price: 1"),
        "the new function is not there"
    );
    assert_eq!(total(), BASKET);

    // A protocol that does not compile: a diagnostic, the node unchanged.
    edit(&priced, "def unit_price(item)", "def unit_price()");
    let diags = save_failing(&mut c, &priced);
    assert_eq!(diags[0]["severity"], 1, "{diags}");
    consolidated(&node, &["Store.Priced"]);
    assert_eq!(total(), BASKET);

    // Back to the source: mix's consolidated build again.
    std::fs::write(&priced, &priced_src).unwrap();
    let msg = save_and_wait(&mut c, &priced);
    assert!(msg.contains("Store.Priced swapped on 1 node"), "{msg}");
    assert_eq!(
        changed_modules(&node, &["Elixir.Store.Priced"]),
        Vec::<String>::new()
    );

    // defprotocol and defimpl in one file: the protocol gains a function and an impl
    // changes; both swapped, the protocol consolidated, the other impls dispatched to.
    edit(
        &label,
        "  def label(item)\n",
        "  def label(item)\n\n  def short(item)\n",
    );
    edit(
        &label,
        "def label(other), do: inspect(other)",
        "def label(other), do: \"item \" <> inspect(other)\n  def short(_), do: \"?\"",
    );
    let msg = save_and_wait(&mut c, &label);
    assert!(msg.contains("swapped on 1 node"), "{msg}");
    let swapped: Vec<&str> = msg.split(" swapped").next().unwrap().split(", ").collect();
    // (Store.Label.Any, loaded by nobody yet, comes from `_build` at its first dispatch.)
    assert!(swapped.contains(&"Store.Label"), "{msg}");
    consolidated(&node, &["Store.Label"]);
    assert_eq!(
        labels(),
        r#"["plum: 500 c", "item 3", "item [%Store.Fruit{name: \"pear\", kg: 1}]"]"#
    );
    std::fs::write(&label, &label_src).unwrap();
    let msg = save_and_wait(&mut c, &label);
    assert!(msg.contains("swapped on 1 node"), "{msg}");
    assert_eq!(labels(), LABELS);
    assert_eq!(
        changed_modules(&node, &["Elixir.Store.Label", "Elixir.Store.Label.Any"]),
        Vec::<String>::new()
    );

    // A new file with new impls (of this app's protocols, of Elixir's String.Chars, for
    // a new struct and for a built-in type): each protocol is consolidated again with
    // them and swapped along; the impls in other files still dispatch.
    let veg = lib.join("veg.ex");
    let veg_src = r##"defmodule Store.Veg do
  @moduledoc "Vegetables, sold by the piece."
  defstruct name: "leek", count: 1

  defimpl Store.Priced do
    def price(%{count: n}), do: n * 90
  end

  defimpl String.Chars do
    def to_string(%{name: name, count: n}), do: "#{n} #{name}s"
  end
end

defimpl Store.Label, for: Integer do
  def label(n), do: "#{n} loose"
end
"##;
    c.open_text(&veg, veg_src);
    std::fs::write(&veg, veg_src).unwrap();
    let msg = save_and_wait(&mut c, &veg);
    // (Store.Veg itself, loaded by nobody yet, comes from `_build` when first used.)
    for m in ["Store.Priced", "String.Chars", "Store.Label"] {
        assert!(
            msg.contains(&format!("{m}, ")) || msg.contains(&format!("{m} swapped")),
            "{m}: {msg}"
        );
    }
    consolidated(&node, &["Store.Priced", "Store.Label", "String.Chars"]);
    assert_eq!(
        eval_text(&node, "Store.Priced.price(%Store.Veg{count: 2})"),
        "180"
    );
    assert_eq!(
        eval_text(&node, "to_string(%Store.Veg{count: 2})"),
        "\"2 leeks\""
    );
    assert_eq!(
        labels(),
        r#"["plum: 500 c", "3 loose", "[%Store.Fruit{name: \"pear\", kg: 1}]"]"#
    );
    assert_eq!(total(), BASKET);
    assert_eq!(
        eval_text(&node, "Enum.map([:a, 1.5, %Store.Fruit{}], &to_string/1)"),
        r#"["a", "1.5", "1 kg of plums"]"#
    );
    // Saved again unchanged: the node already dispatches to them.
    let msg = save_and_wait(&mut c, &veg);
    assert!(msg.contains("already runs this code"), "{msg}");

    assert_healthy(&node, &before);
    assert!(c.shutdown().success());

    // A breakpoint in an impl of a file with defprotocol and defimpl: the impl is
    // instrumented, the protocol keeps running consolidated.
    let mut d = DapClient::start();
    d.ok(
        "initialize",
        json!({"adapterID": "orrery", "linesStartAt1": true}),
    );
    d.ok(
        "attach",
        json!({"node": node.node, "cookie": node.cookie, "cwd": dir.path()}),
    );
    d.wait_event("initialized", LONG);
    let line = 1 + std::fs::read_to_string(&label)
        .unwrap()
        .lines()
        .position(|l| l.contains("cents = "))
        .unwrap();
    let r = d.ok(
        "setBreakpoints",
        json!({"source": {"path": label}, "breakpoints": [{"line": line}]}),
    );
    assert_eq!(r["breakpoints"][0]["verified"], json!(true), "{r}");
    consolidated(&node, &["Store.Label"]);
    assert_eq!(
        eval_text(&node, "Enum.map([3, :x], &Store.Label.label/1)"),
        r#"["3 loose", ":x"]"#
    );
    d.ok("disconnect", json!({}));

    // Once mix has built the new file, the node runs exactly mix's build, consolidated
    // protocols included.
    mix_compile(dir.path());
    wait_pristine(&node, APPS, LONG);
    assert_eq!(
        changed_modules(
            &node,
            &["Elixir.String.Chars", "Elixir.String.Chars.Store.Veg"]
        ),
        Vec::<String>::new()
    );
    assert_healthy(&node, &before);
}

fn mix_compile(dir: &Path) {
    let st = std::process::Command::new("mix")
        .arg("compile")
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn a_new_impl_is_refused_when_its_protocol_cannot_be_consolidated_again() {
    let (dir, node) = support::orchard();
    let before = health(&node);
    assert_eq!(eval_text(&node, "Store.Till.total()"), BASKET);
    // The build moves on under the node (a protocol edited and `mix compile` run
    // elsewhere): the consolidated protocol the node runs is no longer on disk.
    let lib = dir.path().join("apps/store/lib/store");
    let priced = lib.join("priced.ex");
    let priced_src = std::fs::read_to_string(&priced).unwrap();
    edit(
        &priced,
        "  def price(item)\n",
        "  def price(item)\n  def weight(item)\n",
    );
    mix_compile(dir.path());
    let mut c = start_attached(&node, dir.path(), json!({}));
    let nut = lib.join("nut.ex");
    let nut_src = "defmodule Store.Nut do\n  defstruct grams: 100\n\n  defimpl Store.Priced do\n    def price(%{grams: g}), do: div(g, 10)\n    def weight(%{grams: g}), do: g\n  end\nend\n";
    c.open_text(&nut, nut_src);
    std::fs::write(&nut, nut_src).unwrap();
    let msg = save_and_wait(&mut c, &nut);
    assert!(
        msg.contains("Store.Priced runs consolidated on the node, but neither as the build on disk nor as code Orrery loaded")
            && msg.contains("Nothing was loaded"),
        "{msg}"
    );
    assert_eq!(eval_text(&node, ":code.is_loaded(Store.Nut)"), "false");
    consolidated(&node, &["Store.Priced"]);
    assert_eq!(eval_text(&node, "Store.Till.total()"), BASKET);
    assert!(c.shutdown().success());
    // The build back where the node is.
    std::fs::write(&priced, &priced_src).unwrap();
    std::fs::remove_file(&nut).unwrap();
    mix_compile(dir.path());
    wait_pristine(&node, APPS, LONG);
    assert_healthy(&node, &before);
}
