//! Checks of a node after Orrery has been at it: is it exactly as found (no module of
//! ours, nothing suspended, no trace flag or pattern (call counts and times included), no
//! trace session but the node's global one (OTP 27+), no ETS table of ours, the code of the
//! build on disk), and
//! did any of its processes crash or restart (the same pids under the same names).

use super::TestNode;
use orrery::beam::term::{self, atom};
use std::collections::BTreeMap;
use std::time::Duration;

/// What differs from a pristine node, as readable lines (empty: pristine). `apps` are
/// the module prefixes whose loaded code must equal the beam files in `_build`.
const PRISTINE: &str = r##"
apps = APPS
loaded = :code.all_loaded()
ours = for {m, _} <- loaded, String.starts_with?(Atom.to_string(m), "orrery"), do: "module loaded: #{m}"
suspended = for p <- Process.list(),
                match?({:current_function, {:sys, :suspend_loop, _}}, Process.info(p, :current_function)),
                do: "process #{inspect(p)} #{inspect(Process.info(p, :registered_name))} is suspended"
flags = for p <- Process.list(),
            (case :erlang.trace_info(p, :flags) do {:flags, []} -> false; :undefined -> false; _ -> true end),
            do: "trace flags on #{inspect(p)}"
app_mods = for {m, f} <- loaded, is_list(f), String.ends_with?(List.to_string(f), ".beam"), Enum.any?(apps, &String.starts_with?(Atom.to_string(m), &1)), do: {m, f}
patterns = for {m, _} <- app_mods, {fun, ar} <- m.module_info(:functions),
               :erlang.trace_info({m, fun, ar}, :traced) not in [{:traced, false}, {:traced, :undefined}],
               do: "trace pattern on #{inspect({m, fun, ar})}"
counting = for {m, _} <- app_mods, {fun, ar} <- m.module_info(:functions),
               kind <- [:call_count, :call_time],
               elem(:erlang.trace_info({m, fun, ar}, kind), 1) not in [false, :undefined],
               do: "#{kind} pattern on #{inspect({m, fun, ar})}"
tables = for t <- :ets.all(), is_atom(t), String.starts_with?(Atom.to_string(t), "orrery"),
             do: "ETS table left: #{t}"
sessions = if Code.ensure_loaded?(:trace) and function_exported?(:trace, :session_info, 1) do
             for {name, _} = s <- :trace.session_info(:all), name != :legacy, do: "trace session left: #{inspect(s)}"
           else
             []
           end
stale = for {m, f} <- app_mods,
            (case :beam_lib.md5(f) do {:ok, {_, md5}} -> md5 != m.module_info(:md5); _ -> true end),
            do: "#{inspect(m)} is not the build on disk"
old = for {m, _} <- app_mods, :erlang.check_old_code(m), do: "#{inspect(m)} has old code"
ours ++ suspended ++ flags ++ patterns ++ counting ++ sessions ++ tables ++ stale ++ old
"##;

/// Evaluate Elixir `code` on the node; its value in Elixir syntax (compact).
pub fn eval_text(node: &TestNode, code: &str) -> String {
    match eval(node, code) {
        Ok(t) => orrery::beam::pretty::to_elixir_compact(&t, 2000),
        Err(e) => format!("error: {e}"),
    }
}

fn eval(node: &TestNode, code: &str) -> Result<eetf::Term, String> {
    let r = super::rpc_in_background(
        node,
        "Elixir.Code",
        "eval_string",
        vec![term::binary(code)],
        Duration::from_secs(60),
    )
    .join()
    .unwrap()?;
    match term::as_tuple(&r) {
        Some([v, _]) => Ok(v.clone()),
        _ => Err(format!("{r:?}")),
    }
}

/// Lines saying what is not as found; empty when the node is pristine.
pub fn not_pristine(node: &TestNode, apps: &[&str]) -> Vec<String> {
    let apps = format!(
        "[{}]",
        apps.iter()
            .map(|a| format!("{a:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    match eval(node, &PRISTINE.replace("APPS", &apps)) {
        Ok(t) => term::list_ref(&t)
            .iter()
            .map(|l| term::as_string(l).unwrap_or_else(|| format!("{l:?}")))
            .collect(),
        Err(e) => vec![format!("could not check the node: {e}")],
    }
}

/// Wait until the node is pristine (the guard works on its own time after a kill).
pub fn wait_pristine(node: &TestNode, apps: &[&str], timeout: Duration) {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = not_pristine(node, apps);
        if left.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the node is not as it was found after {timeout:?}:\n  {}",
            left.join("\n  ")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

const HEALTH: &str = r##"
named = for n <- Process.registered(), p = Process.whereis(n), p != nil, do: {Atom.to_string(n), inspect(p)}
via = for r <- [Store.Registry, Cells.CellRegistry, Cells.ProcessRegistry],
          {k, p} <- (try do Registry.select(r, [{{:"$1", :"$2", :_}, [], [{{:"$1", :"$2"}}]}]) rescue _ -> [] end),
          do: {"via " <> inspect(r) <> " " <> inspect(k), inspect(p)}
named ++ via
"##;

/// Registered names (and Registry keys of the orchard and cells fixtures) to pids: a process that
/// crashed or restarted shows up as a different pid or a missing name.
pub fn health(node: &TestNode) -> BTreeMap<String, String> {
    let t = eval(node, HEALTH).unwrap();
    term::list_ref(&t)
        .iter()
        .filter_map(|e| match term::as_tuple(e) {
            Some([k, v]) => Some((term::as_string(k)?, term::as_string(v)?)),
            _ => None,
        })
        .filter(|(k, _)| !k.starts_with("orrery"))
        .collect()
}

/// Assert that every process seen `before` is still there under the same pid.
pub fn assert_healthy(node: &TestNode, before: &BTreeMap<String, String>) {
    let now = health(node);
    let lost: Vec<String> = before
        .iter()
        .filter(|(k, v)| now.get(*k) != Some(v))
        .map(|(k, v)| format!("{k}: {v} -> {:?}", now.get(k)))
        .collect();
    assert!(
        lost.is_empty(),
        "processes crashed or restarted:\n  {}",
        lost.join("\n  ")
    );
}

/// Modules (atom names) whose loaded code differs from their `.beam` on disk.
pub fn changed_modules(node: &TestNode, modules: &[&str]) -> Vec<String> {
    modules
        .iter()
        .filter(|m| {
            let loaded = super::rpc(
                node,
                "erlang",
                "get_module_info",
                vec![atom(m), atom("md5")],
            )
            .unwrap();
            let file = super::rpc(node, "code", "which", vec![atom(m)]).unwrap();
            let on_disk = super::rpc(node, "beam_lib", "md5", vec![file]).unwrap();
            let disk_md5 = term::as_tuple(&on_disk)
                .and_then(|t| t.get(1).cloned())
                .and_then(|pair| term::as_tuple(&pair).and_then(|p| p.get(1).cloned()));
            disk_md5.as_ref() != Some(&loaded)
        })
        .map(|m| m.to_string())
        .collect()
}
