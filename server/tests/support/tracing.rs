//! What tracing is set on a node, asked of the node itself (never of Orrery): whether it
//! has trace sessions (OTP 27+), Orrery's sessions, the global session's flags, and a
//! user of the node tracing with their own tools (`dbg`, and on nodes with sessions also
//! a tracer in the global session as `recon_trace` and `redbug` use) into a mailbox we
//! can read.

use super::check::eval_text;
use super::TestNode;

/// Does the node have trace sessions (the `trace` module exporting `session_create/3`)?
pub fn has_sessions(node: &TestNode) -> bool {
    eval_text(
        node,
        "Code.ensure_loaded?(:trace) and function_exported?(:trace, :session_create, 3)",
    ) == "true"
}

/// Names of Orrery's trace sessions on the node (none without sessions).
pub fn orrery_sessions(node: &TestNode) -> Vec<String> {
    let t = eval_text(
        node,
        r#"if Code.ensure_loaded?(:trace) and function_exported?(:trace, :session_info, 1) do
             for {n, _} <- :trace.session_info(:all), String.starts_with?(Atom.to_string(n), "orrery"),
                 do: Atom.to_string(n)
           else
             []
           end"#,
    );
    t.trim_matches(|c| c == '[' || c == ']')
        .split(',')
        .map(|s| s.trim().trim_matches('"').to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Processes (and `new`) with flags in the node's global trace session.
pub fn global_flags(node: &TestNode) -> String {
    eval_text(
        node,
        r#"for p <- [:new | Process.list()],
               match?({:flags, [_ | _]}, :erlang.trace_info(p, :flags)), do: p"#,
    )
}

/// The user's shell: a process that starts `dbg` (a tracer whose handler forwards to the
/// `:user_traces` mailbox, `dbg:p(all, c)`, `dbg:tpl(Module, x)`) and, with `global`,
/// also traces in the global session itself (`erlang:trace(all, ..)` with `:user_traces`
/// as the tracer and a pattern on `module`), as recon_trace does; it undoes it all on
/// `:stop`. Returns once tracing is set.
pub fn start_user_tracing(node: &TestNode, module: &str, global: bool) {
    let code = r#"
      box = spawn(fn ->
        loop = fn loop, acc ->
          receive do
            {:get, from} -> send(from, {:box, Enum.reverse(acc)}); loop.(loop, acc)
            {:dbg, m} -> loop.(loop, [{:dbg, m} | acc])
            m -> loop.(loop, [{:global, m} | acc])
          end
        end
        loop.(loop, [])
      end)
      Process.register(box, :user_traces)
      # `mix run` on Elixir 1.15+ keeps only the project's applications on the code path;
      # dbg is in runtime_tools (apps add it with `extra_applications: [:runtime_tools]`).
      unless Code.ensure_loaded?(:dbg) do
        for d <- Path.wildcard(Path.join(:code.root_dir(), "lib/runtime_tools-*/ebin")),
            do: :code.add_pathz(String.to_charlist(d))
      end
      me = self()
      shell = spawn(fn ->
        try do
          {:ok, _} = :dbg.tracer(:process, {fn m, n -> send(:user_traces, {:dbg, m}); n + 1 end, 0})
          {:ok, _} = :dbg.p(:all, :c)
          {:ok, _} = :dbg.tpl(MOD, :x)
          if GLOBAL do
            :erlang.trace(:all, true, [:call, {:tracer, Process.whereis(:user_traces)}])
            :erlang.trace_pattern({MOD, :_, :_}, [{:_, [], [{:return_trace}]}], [:local])
          end
          send(me, :traced)
        catch
          kind, why -> send(me, {:failed, kind, why})
        end
        receive do
          {:stop, from} ->
            :dbg.stop()
            if GLOBAL do
              :erlang.trace(:all, false, [:call])
              :erlang.trace_pattern({MOD, :_, :_}, false, [:local])
            end
            send(from, :stopped)
        end
      end)
      Process.register(shell, :user_shell)
      receive do
        :traced -> :ok
        failed -> failed
      after
        10_000 -> :timeout
      end
    "#
    .replace("MOD", module)
    .replace("GLOBAL", if global { "true" } else { "false" });
    assert_eq!(
        eval_text(node, &code),
        ":ok",
        "the user's tracing did not start"
    );
}

/// Did the user's tracer `tag` (`dbg` or `global`) get the call `module.fun(args)`
/// (args as Elixir, `[21, 1]`)?
pub fn user_saw_call(node: &TestNode, tag: &str, module: &str, fun: &str, args: &str) -> bool {
    let code = format!(
        "send(:user_traces, {{:get, self()}})
         receive do
           {{:box, l}} -> Enum.any?(l, &match?({{:{tag}, {{:trace, _, :call, {{{module}, :{fun}, {args}}}}}}}, &1))
         after
           5000 -> false
         end"
    );
    eval_text(node, &code) == "true"
}

/// A long-lived process of the user's (`:user_worker`) that calls `KV.Calc.add/2` when
/// asked: its calls come from one process that exists from now on.
pub fn start_worker(node: &TestNode) {
    let code = r#"
      pid = spawn(fn ->
        loop = fn loop ->
          receive do
            {:add, a, b, from} -> send(from, {:sum, KV.Calc.add(a, b)}); loop.(loop)
          end
        end
        loop.(loop)
      end)
      Process.register(pid, :user_worker)
      :ok
    "#;
    assert_eq!(eval_text(node, code), ":ok");
}

/// `KV.Calc.add(a, b)` called by the worker.
pub fn add_via_worker(node: &TestNode, a: i64, b: i64) {
    let code = format!(
        "send(:user_worker, {{:add, {a}, {b}, self()}}); receive do {{:sum, s}} -> s after 5000 -> :timeout end"
    );
    assert_eq!(eval_text(node, &code), (a + b).to_string());
}

/// The tracer of the worker in the node's global session is Orrery's call tracer.
pub fn worker_traced_by_orrery(node: &TestNode) -> bool {
    eval_text(
        node,
        ":erlang.trace_info(Process.whereis(:user_worker), :tracer) == {:tracer, Process.whereis(:orrery_trace_v1)}",
    ) == "true"
}

/// The user's `dbg:p(all, c)` again (after Orrery let go of processes it traced).
pub fn user_traces_all_again(node: &TestNode) {
    assert!(
        eval_text(node, "match?({:ok, _}, :dbg.p(:all, :c))") == "true",
        "dbg:p(all, c) failed"
    );
}

/// The user stops all their tracing.
pub fn stop_user_tracing(node: &TestNode) {
    assert_eq!(
        eval_text(
            node,
            "send(:user_shell, {:stop, self()}); receive do :stopped -> :ok after 10_000 -> :timeout end"
        ),
        ":ok"
    );
}
