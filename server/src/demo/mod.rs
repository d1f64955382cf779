//! `orrery demo`: the main job on the embedded default, with no editor. Starts the bundled
//! example app as a managed node, attaches, and prints what an editor would show.

use crate::attach::Session;
use crate::live::{render, views, Interest, LiveModel};
use crate::managed::ManagedNode;
use crate::reload::compile_node::Compiled;
use crate::reload::Reloader;
use crate::workspace::index::WorkspaceIndex;
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::time::Duration;

mod test_run;

/// The example app, embedded so `orrery demo` works from anywhere.
const EXAMPLE: &[(&str, &str)] = &[
    ("mix.exs", include_str!("../../../examples/orbit/mix.exs")),
    (
        "lib/orbit/application.ex",
        include_str!("../../../examples/orbit/lib/orbit/application.ex"),
    ),
    (
        "lib/orbit/cache.ex",
        include_str!("../../../examples/orbit/lib/orbit/cache.ex"),
    ),
    (
        "lib/orbit/counter.ex",
        include_str!("../../../examples/orbit/lib/orbit/counter.ex"),
    ),
    (
        "lib/orbit/greeter.ex",
        include_str!("../../../examples/orbit/lib/orbit/greeter.ex"),
    ),
    (
        "lib/orbit/math.ex",
        include_str!("../../../examples/orbit/lib/orbit/math.ex"),
    ),
    (
        "lib/orbit/worker.ex",
        include_str!("../../../examples/orbit/lib/orbit/worker.ex"),
    ),
    (
        "lib/orbit/worker_supervisor.ex",
        include_str!("../../../examples/orbit/lib/orbit/worker_supervisor.ex"),
    ),
    (
        "test/test_helper.exs",
        include_str!("../../../examples/orbit/test/test_helper.exs"),
    ),
    (
        "test/math_test.exs",
        include_str!("../../../examples/orbit/test/math_test.exs"),
    ),
];

fn heading(s: &str) {
    println!("\n\x1b[1m== {s}\x1b[0m");
}

/// A private copy of the example project to run the demo on, so the hot swap never edits
/// the repository's files: the given project (without `_build`, `.git`, `.orrery`) or the
/// embedded copy of examples/orbit.
fn example_project(explicit: Option<PathBuf>) -> anyhow::Result<(PathBuf, tempfile_dir::TempDir)> {
    let dir = tempfile_dir::TempDir::new()?;
    match explicit {
        Some(p) => {
            if !p.join("mix.exs").is_file() {
                bail!("{} has no mix.exs", p.display());
            }
            copy_project(&p, dir.path())
                .with_context(|| format!("could not copy {}", p.display()))?;
        }
        None => {
            for (rel, text) in EXAMPLE {
                let p = dir.path().join(rel);
                std::fs::create_dir_all(p.parent().unwrap_or(dir.path()))?;
                std::fs::write(&p, text)?;
            }
        }
    }
    Ok((dir.path().to_path_buf(), dir))
}

fn copy_project(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)?.flatten() {
        let name = e.file_name();
        if [".git", "_build", ".orrery", ".elixir_ls", "node_modules"]
            .iter()
            .any(|n| name == *n)
        {
            continue;
        }
        let ty = e.file_type()?;
        if ty.is_dir() {
            copy_project(&e.path(), &to.join(&name))?;
        } else if ty.is_file() {
            std::fs::copy(e.path(), to.join(&name))?;
        }
    }
    Ok(())
}

/// A throwaway directory removed on drop (no extra dependency needed).
mod tempfile_dir {
    use std::path::{Path, PathBuf};
    pub struct TempDir(PathBuf);
    impl TempDir {
        pub fn new() -> std::io::Result<Self> {
            let p = std::env::temp_dir().join(format!(
                "orrery-demo-{}-{}",
                std::process::id(),
                rand::random::<u32>()
            ));
            std::fs::create_dir_all(&p)?;
            Ok(Self(p))
        }
        pub fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn line_of(path: &Path, line: u32) -> String {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.lines().nth(line as usize).map(str::to_string))
        .unwrap_or_default()
}

/// Run the demo.
pub async fn run(project: Option<PathBuf>) -> anyhow::Result<()> {
    let (root, _tmp) = example_project(project)?;
    heading(&format!("Starting the example app in {}", root.display()));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let printer = tokio::spawn(async move {
        while let Some(line) = rx.recv().await {
            if !line.trim().is_empty() {
                println!("  [app] {line}");
            }
        }
    });
    let mut managed = ManagedNode::start(&root, None, tx)
        .await
        .map_err(anyhow::Error::msg)
        .context("could not start the example app")?;
    let result = walk(&root, &managed).await;
    heading("Detaching and stopping the app");
    managed.stop().await;
    printer.abort();
    match &result {
        Ok(()) => println!("done: the node is stopped and nothing of Orrery is left on it."),
        Err(e) => println!("demo failed: {e:#}"),
    }
    result
}

async fn walk(root: &Path, managed: &ManagedNode) -> anyhow::Result<()> {
    let session = Session::start(&managed.node, &managed.cookie, true);
    session
        .wait_attached(Duration::from_secs(30))
        .await
        .map_err(anyhow::Error::msg)
        .context("could not attach to the example app")?;
    let mut out = tour(root, &session).await;
    if out.is_ok() {
        out = hot_swap(root, &session).await;
    }
    session.detach().await;
    if out.is_ok() {
        out = debug_tour(root, managed).await;
    }
    if out.is_ok() {
        out = test_run::debug_a_test(root).await;
    }
    out
}

fn show_locals(vars: &[(String, eetf::Term)]) -> String {
    vars.iter()
        .map(|(k, v)| format!("{k} = {}", crate::beam::pretty::to_elixir_compact(v, 40)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A breakpoint hit in a running function, then a step back to an earlier value.
async fn debug_tour(root: &Path, managed: &ManagedNode) -> anyhow::Result<()> {
    use crate::debug::{BreakpointReq, Debugger};
    heading(
        "Debugger: a breakpoint in Orbit.Math.sum_squares/1 (no :int, only this process pauses)",
    );
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let dbg = Debugger::attach(root, &managed.node, &managed.cookie, None, tx)
        .await
        .map_err(anyhow::Error::msg)?;
    let result = async {
        dbg.set_recording(true, 10_000)
            .await
            .map_err(anyhow::Error::msg)?;
        let math = root.join("lib/orbit/math.ex");
        let bp = dbg
            .set_breakpoints(
                &math,
                &[BreakpointReq {
                    line: 20,
                    ..Default::default()
                }],
            )
            .await;
        println!(
            "breakpoint at math.ex:{} ({})",
            bp[0].line,
            if bp[0].verified {
                "verified"
            } else {
                "not verified"
            }
        );
        // Call it from outside, like a request would.
        let conn = crate::beam::Connection::connect(
            &managed.node,
            &managed.cookie,
            Duration::from_secs(10),
        )
        .await?;
        let caller = tokio::spawn({
            let conn = conn.clone();
            async move {
                conn.rpc(
                    "Elixir.Orbit.Math",
                    "sum_squares",
                    vec![crate::beam::term::int(3)],
                    Duration::from_secs(60),
                )
                .await
            }
        });
        let (thread, p) = wait_paused(&dbg, &mut events, "the breakpoint was not hit").await?;
        println!(
            "hit: {} paused at {}:{} — {}",
            p.name,
            pretty_name(&p.module),
            p.line,
            show_locals(&p.bindings)
        );
        let counter = conn
            .rpc(
                "Elixir.Orbit.Counter",
                "value",
                vec![],
                Duration::from_secs(5),
            )
            .await?;
        println!(
            "meanwhile Orbit.Counter still answers: {}",
            crate::beam::pretty::to_elixir_compact(&counter, 40)
        );

        heading("Time travel: step back");
        for _ in 0..3 {
            dbg.step_back(thread, false)
                .await
                .map_err(anyhow::Error::msg)?;
            let f = dbg.stack(thread);
            let top = f.first().context("no frame")?;
            let scopes = dbg.scopes(top.id);
            let locals: Vec<(String, eetf::Term)> = dbg
                .variables(scopes[0].1, 0, None)
                .into_iter()
                .map(|v| (v.name, crate::beam::term::atom(&v.value)))
                .collect();
            let shown: Vec<String> = locals
                .iter()
                .map(|(k, v)| format!("{k} = {}", crate::beam::term::as_atom(v).unwrap_or("?")))
                .collect();
            println!("  line {}: {}", top.line, shown.join(", "));
        }
        // Forward again to the live point, then let it finish.
        while !dbg
            .resume(thread, "continue")
            .await
            .map_err(anyhow::Error::msg)?
        {}
        let r = caller.await??;
        println!(
            "resumed: sum_squares(3) = {}",
            crate::beam::pretty::to_elixir_compact(&r, 20)
        );
        conn.close();
        anyhow::Ok(())
    }
    .await;
    dbg.disconnect().await;
    println!("debugger detached: the original Orbit.Math is loaded again");
    result
}

/// The next process the debugger stops (within a minute), or `why` as the error.
async fn wait_paused(
    dbg: &crate::debug::Debugger,
    events: &mut tokio::sync::mpsc::UnboundedReceiver<crate::debug::Event>,
    why: &str,
) -> anyhow::Result<(i64, crate::debug::Paused)> {
    loop {
        match tokio::time::timeout(Duration::from_secs(60), events.recv()).await {
            Ok(Some(crate::debug::Event::Stopped { thread_id, .. })) => {
                let p = dbg.paused(thread_id).context("no paused process")?;
                return Ok((thread_id, p));
            }
            Ok(Some(_)) => continue,
            _ => bail!("{why}"),
        }
    }
}

fn pretty_name(module: &str) -> String {
    crate::beam::pretty::module_name(module)
}

async fn tour(root: &Path, session: &Session) -> anyhow::Result<()> {
    heading("Attached");
    for n in session.nodes() {
        let i = &n.info;
        println!(
            "{}  OTP {}  Elixir {}  {} processes",
            i.name,
            i.otp,
            i.elixir.as_deref().unwrap_or("?"),
            i.process_count
        );
    }

    // Wait until the app's tree is up (the node registers before the app has started).
    let mut tree = serde_json::Value::Null;
    for _ in 0..100 {
        tree = views::supervision_tree(session)
            .await
            .map_err(anyhow::Error::msg)?;
        if tree.to_string().contains("Orbit.Supervisor") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    heading("Supervision tree of :orbit");
    if let Some(apps) = tree["nodes"][0]["applications"].as_array() {
        for app in apps.iter().filter(|a| a["application"] == "orbit") {
            print_tree(&app["tree"], 0);
        }
    }

    let mut idx = WorkspaceIndex::new();
    let files = idx.index_dir(root);
    let counter_path = root.join("lib/orbit/counter.ex");
    let cache_path = root.join("lib/orbit/cache.ex");
    let interest = Interest {
        modules: ["Orbit.Counter", "Orbit.Cache", "Orbit.Worker", "Orbit.Math"]
            .map(String::from)
            .into(),
        tables: [":orbit_cache".to_string()].into(),
        ..Default::default()
    };
    let live = LiveModel::new();
    live.refresh(session, &interest, true).await;
    // Let the app run a moment so counters and call counts move.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    live.refresh(session, &interest, true).await;
    let snap = live.snapshot();

    heading(&format!(
        "Hover on `defmodule Orbit.Counter` ({files} files indexed)"
    ));
    match render::module_hover("Orbit.Counter", &snap) {
        Some(h) => println!("{h}"),
        None => bail!("no live data for Orbit.Counter"),
    }

    heading("Inlay hints, as the editor shows them");
    if let Some(f) = idx.file(&counter_path) {
        for m in &f.modules {
            if let Some(h) = render::module_hint(&snap, &m.name) {
                let line = m.line_of_use.unwrap_or(m.name_range.start.line);
                println!(
                    "counter.ex:{:<3} {}  \x1b[2m‹{h}›\x1b[0m",
                    line + 1,
                    line_of(&counter_path, line)
                );
            }
        }
    }
    if let Some(f) = idx.file(&root.join("lib/orbit/math.ex")) {
        for m in &f.modules {
            for func in &m.functions {
                let fa = format!("{}/{}", func.name, func.arity);
                if let Some(h) = render::function_hint(&snap, &m.name, &fa) {
                    let line = func.head_end.line;
                    println!(
                        "math.ex:{:<6} {}  \x1b[2m‹{h}›\x1b[0m",
                        line + 1,
                        line_of(&root.join("lib/orbit/math.ex"), line)
                    );
                }
            }
        }
    }
    if let Some(h) = render::table_hint(&snap, ":orbit_cache") {
        let line = idx
            .file(&cache_path)
            .and_then(|f| {
                f.modules
                    .iter()
                    .flat_map(|m| m.ets_tables.iter())
                    .next()
                    .map(|(_, r)| r.end.line)
            })
            .unwrap_or(0);
        println!(
            "cache.ex:{:<5} {}  \x1b[2m‹{h}›\x1b[0m",
            line + 1,
            line_of(&cache_path, line)
        );
    }

    heading("Code lens above `defmodule Orbit.Counter`");
    if let Some(l) = render::module_lens(&snap, "Orbit.Counter") {
        println!("{l} · Inspect state");
    }

    heading("ETS :orbit_cache");
    if let Some(t) = snap.tables.get(":orbit_cache") {
        println!("{}", render::table_hover(":orbit_cache", t));
    }
    live.stop_tracing(session).await;
    Ok(())
}

/// `Orbit.Greeter.greet("Ada")` on the node.
async fn greet(session: &Session) -> anyhow::Result<String> {
    let conn = session.primary()?;
    let r = conn
        .rpc(
            "Elixir.Orbit.Greeter",
            "greet",
            vec![crate::beam::term::binary("Ada")],
            Duration::from_secs(10),
        )
        .await?;
    Ok(crate::beam::pretty::to_elixir_compact(&r, 200))
}

/// Change a function of the running app, show the new behaviour, roll back, show the old
/// one again: what a save does in the editor, step by step.
async fn hot_swap(root: &Path, session: &Session) -> anyhow::Result<()> {
    const OLD: &str = "\"Hello, #{name}!\"";
    const NEW: &str = "\"Welcome aboard, #{name}!\"";
    heading("Hot swap: change Orbit.Greeter.greet/1 while the app runs");
    println!(
        "before:  Orbit.Greeter.greet(\"Ada\") → {}",
        greet(session).await?
    );
    let path = root.join("lib/orbit/greeter.ex");
    let source = std::fs::read_to_string(&path)?;
    anyhow::ensure!(
        source.contains(OLD),
        "{} does not contain {OLD}",
        path.display()
    );
    std::fs::write(&path, source.replacen(OLD, NEW, 1))?;
    println!("edit:    lib/orbit/greeter.ex   - {OLD}");
    println!("                                + {NEW}");
    let reloader = Reloader::new();
    let result = async {
        let t = std::time::Instant::now();
        let compiled = reloader.compile(root, &path, Duration::from_secs(30)).await.map_err(anyhow::Error::msg)?;
        let modules = match compiled {
            Compiled::Ok { modules, .. } => modules,
            Compiled::Failed { errors, .. } => {
                bail!("the edit does not compile: {:?}", errors.first().map(|e| &e.message))
            }
            Compiled::TimedOut => bail!("the compile timed out"),
        };
        println!(
            "compile: on Orrery's own compile node, not the app's ({} ms, first compile starts that node)",
            t.elapsed().as_millis()
        );
        let report = reloader
            .swap(session, Some(root), modules, crate::reload::SwapKind::Edit)
            .await
            .map_err(anyhow::Error::msg)?;
        println!("swap:    {}", report.summary("swapped"));
        for w in &report.written {
            println!("         wrote {} (a restarted node runs the same code)", w.strip_prefix(root).unwrap_or(w).display());
        }
        println!("after:   Orbit.Greeter.greet(\"Ada\") → {}", greet(session).await?);

        heading("Roll back");
        let report = reloader
            .rollback(session, Some(root), "Elixir.Orbit.Greeter")
            .await
            .map_err(anyhow::Error::msg)?;
        std::fs::write(&path, &source)?;
        println!("rollback: {}", report.summary("rolled back"));
        println!("after:   Orbit.Greeter.greet(\"Ada\") → {}", greet(session).await?);
        let audit = std::fs::read_to_string(crate::audit::log_path(root)).unwrap_or_default();
        println!("audit:   {} writes recorded in .orrery/audit.log", audit.lines().count());
        Ok(())
    }
    .await;
    reloader.shutdown().await;
    result
}

fn print_tree(node: &serde_json::Value, depth: usize) {
    let name = node["name"].as_str().unwrap_or("?");
    let pid = node["pid"].as_str().unwrap_or("");
    let kind = node["type"].as_str().unwrap_or("");
    println!("{}{name} {pid} ({kind})", "  ".repeat(depth));
    if let Some(children) = node["children"].as_array() {
        for c in children {
            print_tree(c, depth + 1);
        }
    }
}
