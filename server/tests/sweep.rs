//! The sweep a new user's first hour amounts to, over a fixture shaped like real apps
//! (tests/fixtures/orchard: an umbrella with config read at compile time, Agents,
//! Registry via tuples, dynamic children, a TCP acceptor, ETS owners, a busy GenServer,
//! short-lived processes): attach, hover every module, save every file unchanged and with
//! a small edit and back, arm and disarm a breakpoint in every function while recording,
//! detach. Every named process found on the node shows in the hover of its module. No process crashes or restarts, and the node ends exactly as it was found.

mod support;

use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::check::{assert_healthy, health, wait_pristine};
use support::dap::DapClient;
use support::lsp::LspClient;

const LONG: Duration = Duration::from_secs(90);
const APPS: &[&str] = &["Elixir.Store", "Elixir.Web", "store_"];

fn sources(lib_dirs: &[PathBuf]) -> Vec<PathBuf> {
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "ex") {
                out.push(p);
            }
        }
    }
    let mut out = vec![];
    for dir in lib_dirs {
        walk(dir, &mut out);
    }
    out.sort();
    out
}

fn save(c: &mut LspClient, path: &Path) -> String {
    support::lsp::save_and_wait(c, path)
}

/// 1-based lines of the first body line of every `def`/`defp ... do` (multi-line bodies).
fn body_lines(src: &str) -> Vec<u32> {
    let lines: Vec<&str> = src.lines().collect();
    let mut out = vec![];
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim_start();
        if (t.starts_with("def ") || t.starts_with("defp ")) && t.ends_with(" do") {
            out.push(i as u32 + 2);
        }
    }
    out
}

/// `(module, pid)` of every process of the apps with a name on the node: registered, or
/// a key in `Store.Registry`.
fn named_processes(node: &support::TestNode) -> Vec<(String, String)> {
    const SCRIPT: &str = r##"
cb = fn p ->
  case Process.info(p, [:dictionary, :initial_call]) do
    [dictionary: d, initial_call: {im, _, _}] ->
      case d[:"$initial_call"] do
        {:supervisor, m, _} -> m
        {m, _, _} -> m
        _ -> im
      end
    _ -> nil
  end
end
regs = for n <- Process.registered(), p = Process.whereis(n), is_pid(p), do: p
keys = for {_, p} <- Registry.select(Store.Registry, [{{:"$1", :"$2", :_}, [], [{{:"$1", :"$2"}}]}]), do: p
for p <- Enum.uniq(regs ++ keys), m = cb.(p), is_atom(m),
    String.starts_with?(Atom.to_string(m), ["Elixir.Store.", "Elixir.Web."]),
    do: {inspect(m), inspect(p)}
"##;
    let r = support::rpc(
        node,
        "Elixir.Code",
        "eval_string",
        vec![orrery::beam::term::binary(SCRIPT)],
    )
    .unwrap();
    let Some([list, _]) = orrery::beam::term::as_tuple(&r) else {
        panic!("{r:?}")
    };
    orrery::beam::term::list_ref(list)
        .iter()
        .filter_map(|e| match orrery::beam::term::as_tuple(e) {
            Some([m, p]) => Some((
                orrery::beam::term::as_string(m)?,
                orrery::beam::term::as_string(p)?,
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn sweep_over_an_app_shaped_like_real_ones_leaves_it_as_found() {
    let (dir, node) = support::orchard();
    let root = dir.path();
    let files = sources(&[root.join("apps/store/lib"), root.join("apps/web/lib")]);
    assert!(files.len() >= 10, "{files:?}");
    sweep(root, &node, &files, APPS, true);
}

/// The same over the shapes real libraries have (a behaviour layer as GenStage's,
/// `defimpl` for `Any`, a module in a top-level `if`, generated defs, computed Registry
/// keys, a path dependency).
#[test]
fn sweep_over_the_shapes_of_real_libraries_leaves_the_node_as_found() {
    let dir = support::fixture_copy_with("shapes", &["shapes_dep"]);
    let root = dir.path().join("shapes");
    let node = support::TestNode::start_named(
        &root,
        &support::random_token("shp"),
        &support::random_token("c"),
    );
    let files = sources(&[root.join("lib")]);
    assert!(files.len() >= 8, "{files:?}");
    sweep(
        &root,
        &node,
        &files,
        &["Elixir.Shapes", "Elixir.String.Chars.Shapes", "shapes_"],
        false,
    );
}

/// `check_named`: the apps are orchard's, whose named processes must each show in a hover.
fn sweep(
    root: &Path,
    node: &support::TestNode,
    files: &[PathBuf],
    apps: &[&str],
    check_named: bool,
) {
    let before = health(node);
    let files = files.to_vec();

    // Language server: hovers, saves unchanged, edited, and back.
    let mut c = support::lsp::start_attached(node, root, json!({}));
    let mut uris = vec![];
    for f in &files {
        let uri = c.open(f);
        let src = std::fs::read_to_string(f).unwrap();
        // A file of protocols and impls starts with `defprotocol` or `defimpl`.
        let head = ["defmodule ", "defprotocol ", "defimpl "]
            .into_iter()
            .find(|h| src.contains(h))
            .unwrap();
        let h = support::lsp::hover(&mut c, &uri, support::lsp::after(&src, head));
        assert!(!h.is_empty(), "no hover on {}", f.display());
        uris.push((uri, src));
    }
    // Every named process of the apps (registered, or in the Registry under a name built
    // by a helper) shows in the hover of its module, with its state.
    let named = if check_named {
        named_processes(node)
    } else {
        vec![]
    };
    assert!(!check_named || named.len() >= 5, "{named:?}");
    for (module, pid) in &named {
        let head = format!("defmodule {module} do");
        let Some((uri, src)) = uris.iter().find(|(_, s)| s.contains(&head)) else {
            continue;
        };
        let at = support::lsp::after(src, &format!("defmodule {module}"));
        let deadline = std::time::Instant::now() + LONG;
        loop {
            let h = support::lsp::hover(&mut c, uri, at);
            // The pid with its state: a state block after it, or the state on its line.
            let shown = h.find(pid.as_str()).is_some_and(|i| {
                let rest = &h[i..];
                let line = rest.lines().next().unwrap_or("");
                rest.contains("```elixir") || line.contains(" · `")
            });
            if shown {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{pid} ({module}) with its state not in the hover: {h}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    for f in &files {
        let msg = save(&mut c, f);
        assert!(
            msg.contains("already runs this code") || msg.contains("from _build when first used"),
            "{}: an unchanged save must compile to mix's build: {msg}",
            f.display()
        );
    }
    for f in &files {
        let src = std::fs::read_to_string(f).unwrap();
        // Into the first module (it may sit inside a top-level `if`); in a file of
        // protocols and impls, before the last `end` (in a protocol, a def is a new
        // function of the protocol: it takes the value).
        let first_module = src
            .find("defmodule ")
            .and_then(|i| src[i..].find(" do\n").map(|j| i + j + 4));
        let edited = match first_module {
            Some(at) => format!("{}  def sweep_probe, do: :ok\n{}", &src[..at], &src[at..]),
            None => {
                let end = src.rfind("end").unwrap();
                let last_block = src.rfind("\ndef").map_or(0, |i| i + 1);
                let probe = if src[last_block..].starts_with("defprotocol") {
                    "  def sweep_probe(value)\n"
                } else {
                    "  def sweep_probe, do: :ok\n"
                };
                format!("{}{probe}{}", &src[..end], &src[end..])
            }
        };
        std::fs::write(f, edited).unwrap();
        // Swapped, refused with nothing changed (a module a process loops in), or left
        // to `_build` (loaded by nobody yet).
        let msg = save(&mut c, f);
        assert!(
            msg.contains(" swapped on ")
                || msg.contains("Nothing changed")
                || msg.contains("from _build when first used"),
            "{}: {msg}",
            f.display()
        );
        std::fs::write(f, &src).unwrap();
        let msg = save(&mut c, f);
        assert!(
            msg.contains(" swapped on ")
                || msg.contains("already runs this code")
                || msg.contains("from _build when first used"),
            "{} back: {msg}",
            f.display()
        );
    }
    assert_healthy(node, &before);
    c.shutdown();
    wait_pristine(node, apps, LONG);

    // Debugger: a breakpoint in every function, armed and disarmed, recording on.
    let mut d = DapClient::start();
    d.ok(
        "initialize",
        json!({"adapterID": "orrery", "linesStartAt1": true}),
    );
    d.ok(
        "attach",
        json!({"node": node.node, "cookie": node.cookie, "cwd": root, "record": true, "recordLimit": 5000}),
    );
    d.wait_event("initialized", LONG);
    let mut total_verified = 0;
    for f in &files {
        let src = std::fs::read_to_string(f).unwrap();
        let lines = body_lines(&src);
        if lines.is_empty() {
            continue;
        }
        let bps: Vec<_> = lines.iter().map(|l| json!({"line": l})).collect();
        let r = d.ok(
            "setBreakpoints",
            json!({"source": {"path": f}, "breakpoints": bps}),
        );
        let verified = r["breakpoints"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["verified"] == json!(true))
            .count();
        total_verified += verified;
        d.ok(
            "setBreakpoints",
            json!({"source": {"path": f}, "breakpoints": []}),
        );
        // Whoever stopped meanwhile goes on.
        let threads = d.ok("threads", json!({}));
        for t in threads["threads"].as_array().unwrap() {
            if !t["name"].as_str().unwrap_or("").contains("running") {
                let _ = d.request("continue", json!({"threadId": t["id"]}));
            }
        }
    }
    assert!(total_verified > 8, "{total_verified} breakpoints verified");
    let tl = d.request("orrery/timeline", json!({}));
    assert!(tl.get("success").is_some(), "{tl}");
    d.ok("disconnect", json!({}));
    wait_pristine(node, apps, LONG);
    assert_healthy(node, &before);
}
