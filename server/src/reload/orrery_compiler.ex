# Loaded into Orrery's compile node (never into the user's node). Compiles one file in a
# task with a timeout and returns the binaries and normalized diagnostics:
#   {:ok, [{module, binary}], diagnostics} | {:error, diagnostics, diagnostics} | :timeout
# A diagnostic is {file, line, column, severity, message, span}: column 0 when unknown,
# span {end_line, end_column} (end exclusive) where the compiler gives one (Elixir 1.15+,
# asked for with `return_diagnostics: true`), else nil.
defmodule OrreryCompiler.V1 do
  @moduledoc false

  # Put this node in the project's compile environment, as `mix compile` has it: Mix
  # started in MIX_ENV `env`, the project (mix.exs) on the stack, its config
  # (config/config.exs and what that imports) loaded, the code paths of its deps and
  # umbrella siblings, the compiler options of the project. `out` is a directory private
  # to this Orrery (compiles write there, never to a shared path).
  #   :ok | {:error, message}
  def setup(root, env, out) when is_binary(root) and is_binary(out) do
    :persistent_term.put({__MODULE__, :out}, out)
    :persistent_term.put({__MODULE__, :root}, root)

    try do
      File.cd!(root)
      {:ok, _} = Application.ensure_all_started(:mix)
      private_temp_dir(out)
      Mix.env(String.to_atom(env))
      Code.compiler_options(ignore_module_conflict: true)

      if File.regular?(Path.join(root, "mix.exs")) do
        quiet(fn ->
          _ = Code.require_file("mix.exs", root)
          Mix.Task.run("loadconfig", [])
          Mix.Task.run("loadpaths", ["--no-deps-check", "--no-archives-check",
                                     "--no-elixir-version-check"])
        end)
      end

      :ok
    rescue
      e -> {:error, Exception.message(e)}
    catch
      kind, reason -> {:error, inspect({kind, reason})}
    end
  end

  # Mix 1.18+ tells every mix process of a build what a compile changed
  # (`{:modules_compiled, info}` over Mix.Sync.PubSub, found through files under
  # System.tmp_dir!()), and Phoenix.CodeReloader's and IEx's listeners unload those
  # modules (at the next request, or at once with IEx's auto_reload): after Orrery's
  # `mix compile` here, the code Orrery had just loaded into the node, breakpoints with
  # it. So this node's temp dir is its own: its compiles tell nobody. Mix's build lock
  # lives under the temp dir too and must stay shared (the app's reloader compiles the
  # same `_build`): its directory (named differently by each Elixir version, found by
  # taking a lock in a scratch dir) is linked to the real one.
  defp private_temp_dir(out) do
    if Code.ensure_loaded?(Mix.Sync.PubSub) and Code.ensure_loaded?(Mix.Sync.Lock) and
         System.get_env("TMPDIR") != Path.join(out, "tmp") do
      real = System.tmp_dir!()
      scratch = Path.join(out, "lock-name")
      tmp = Path.join(out, "tmp")
      File.mkdir_p!(scratch)
      File.mkdir_p!(tmp)
      System.put_env("TMPDIR", scratch)

      try do
        Mix.Sync.Lock.with_lock("orrery", fn -> :ok end)
        {:ok, names} = File.ls(scratch)

        for name <- names do
          File.mkdir_p!(Path.join(real, name))
          :ok = File.ln_s(Path.join(real, name), Path.join(tmp, name))
        end
      after
        System.put_env("TMPDIR", tmp)
        File.rm_rf(scratch)
      end
    end

    :ok
  end

  # Run fun in the compile environment of the (umbrella) app that holds `file`: that
  # app's project on the stack, its directory as cwd (paths relative to the app, as Mix
  # has them), its compiler options, Logger's compile-time application.
  def in_app_of(file, fun) do
    root = :persistent_term.get({__MODULE__, :root}, nil)
    project = Mix.Project.get()

    cond do
      root == nil or project == nil ->
        fun.()

      Mix.Project.umbrella?() ->
        apps = Mix.Project.apps_paths() || %{}
        full = Path.expand(file)

        case Enum.find(apps, fn {_app, path} ->
               String.starts_with?(full, Path.expand(path, root) <> "/")
             end) do
          {app, path} ->
            Mix.Project.in_project(app, Path.expand(path, root), fn _ -> with_app_env(fun) end)

          nil ->
            fun.()
        end

      true ->
        with_app_env(fun)
    end
  end

  defp with_app_env(fun) do
    config = Mix.Project.config()
    app = config[:app]
    previous_logger = Application.get_env(:logger, :compile_time_application)
    previous_opts = Code.compiler_options()

    try do
      if app, do: Application.put_env(:logger, :compile_time_application, app)
      Code.compiler_options(Keyword.take(config[:elixirc_options] || [],
        [:debug_info, :docs, :ignore_module_conflict, :warnings_as_errors]))
      fun.()
    after
      Application.put_env(:logger, :compile_time_application, previous_logger)
      Code.compiler_options(Map.to_list(previous_opts) |> Keyword.take([:debug_info, :docs,
        :warnings_as_errors]))
    end
  end

  defp quiet(fun) do
    {:ok, dev_null} = File.open("/dev/null", [:write])
    old = Process.group_leader()
    Process.group_leader(self(), dev_null)

    try do
      fun.()
    after
      Process.group_leader(self(), old)
      File.close(dev_null)
    end
  end

  def compile(file, timeout) when is_binary(file) do
    case compile_stages([[file]], timeout) do
      {:ok, bins, warnings, _stale, _roles, _ebin} -> {:ok, bins, warnings}
      other -> other
    end
  end

  # Where mix writes the app's beams (absolute), nil outside a mix project.
  defp compile_path do
    if Mix.Project.get(), do: Path.expand(Mix.Project.compile_path()), else: nil
  rescue
    _ -> nil
  end

  defp forget(bins) do
    for {m, _} <- bins do
      :code.purge(m)
      :code.delete(m)
    end
  end

  # Compile the first stage (the saved file), then each later stage of dependent files
  # (files that use macros or structs of the previous stage), one file at a time, with the
  # new modules of the earlier stages loaded here so they expand against the new code.
  # A first stage of Erlang sources (.erl) is compiled with the Erlang compiler as mix
  # would (see OrreryCompiler.Erl); it has no later stages.
  #   {:ok, [{module, binary}], diagnostics, stale, roles, ebin}
  #   | {:error, errors, warnings} | :timeout
  # stale is [{file, message}]: dependents that did not compile (their errors are in the
  # diagnostics); the first stage failing fails the whole compile. roles says which
  # modules are protocols and impls (OrreryCompiler.Protocols.roles/1); ebin is the
  # app's compile path (where mix writes its beams).
  def compile_stages([first | rest], timeout) when is_list(first) do
    base = :persistent_term.get({__MODULE__, :out})
    out = Path.join(base, "c#{System.unique_integer([:positive])}")
    File.mkdir_p!(out)

    task =
      Task.async(fn ->
        # The compiler prints diagnostics too; keep them off the console.
        {:ok, dev_null} = File.open("/dev/null", [:write])
        Process.group_leader(self(), dev_null)

        in_app_of(hd(first), fn ->
          case stages(first, rest, out) do
            {:ok, modules, diags, stale} -> {:ok, modules, diags, stale, compile_path()}
            error -> error
          end
        end)
      end)

    result =
      case Task.yield(task, timeout) || Task.shutdown(task, :brutal_kill) do
        {:ok, {:ok, modules, diags, stale, ebin}} ->
          bins =
            for m <- Enum.uniq(modules) do
              {m, File.read!(Path.join(out, Atom.to_string(m) <> ".beam"))}
            end

          # Keep the compile node on the build's code: what was compiled here is only
          # loaded into the target, after a clean compile.
          forget(bins)
          {:ok, bins, diags, stale, OrreryCompiler.Protocols.roles(bins), ebin}

        {:ok, {:error, errors, warnings}} ->
          {:error, errors, warnings}

        {:exit, reason} ->
          {:error, [{hd(first), 0, 0, :error, "the compiler crashed: " <> inspect(reason)}], []}

        nil ->
          :timeout
      end

    File.rm_rf(out)
    result
  end

  defp stages(first, rest, out) do
    if Enum.all?(first, &String.ends_with?(&1, ".erl")) do
      OrreryCompiler.Erl.compile(first, out)
    else
      elixir_stages(first, rest, out)
    end
  end

  # Elixir 1.15+ returns diagnostics as maps with a position and a span when asked to
  # (the release that added Code.with_diagnostics/2); 1.14 gives {file, line, message}.
  defp compile_opts do
    if function_exported?(Code, :with_diagnostics, 2), do: [return_diagnostics: true], else: []
  end

  # Elixir 1.20's compile_to_path leaves what it compiled unloaded (earlier versions load
  # it): a later stage would expand against the build's old code (the code server loads
  # it from _build) and a user of a removed struct field would compile instead of being
  # named stale. Each stage's new modules are loaded here before the next one compiles
  # (`forget/1` unloads them at the end).
  defp load_stage(modules, out) do
    for m <- modules do
      beam = Path.join(out, Atom.to_string(m) <> ".beam")
      {:ok, bin} = File.read(beam)
      {:ok, {^m, md5}} = :beam_lib.md5(bin)

      # Not loaded, or loaded as _build has it (mix's compile here loaded that).
      if not (:code.is_loaded(m) != false and m.module_info(:md5) == md5) do
        :code.purge(m)
        {:module, ^m} = :code.load_binary(m, String.to_charlist(beam), bin)
      end
    end

    :ok
  end

  defp elixir_stages(first, rest, out) do
    case Kernel.ParallelCompiler.compile_to_path(first, out, compile_opts()) do
      {:ok, modules, warnings} ->
        load_stage(modules, out)
        acc = {modules, norm(warnings, :warning), []}

        {modules, diags, stale} =
          Enum.reduce(rest, acc, fn stage, acc ->
            Enum.reduce(stage, acc, fn file, {ms, ds, st} ->
              case Kernel.ParallelCompiler.compile_to_path([file], out, compile_opts()) do
                {:ok, more, w} ->
                  load_stage(more, out)
                  {ms ++ more, ds ++ norm(w, :warning), st}

                {:error, e, w} ->
                  errors = norm(e, :error)
                  why = case errors do
                    [{_, line, _, _, msg, _} | _] -> "line #{line}: #{msg}"
                    [] -> "does not compile"
                  end
                  {ms, ds ++ errors ++ norm(w, :warning), st ++ [{file, why}]}
              end
            end)
          end)

        {:ok, modules, diags, stale}

      {:error, errors, warnings} ->
        {:error, norm(errors, :error), norm(warnings, :warning)}
    end
  end

  # Bring the build up to the sources on disk with mix's own compile (`mix compile`:
  # _build's beams, its manifest, the app file), so that mix,
  # Phoenix's CodeReloader and IEx's recompile find nothing left to do after a swap.
  # Runs in a task with a timeout; its output is kept off the console.
  #   :ok | {:error, message} | :timeout
  def sync_build(timeout) do
    root = :persistent_term.get({__MODULE__, :root}, nil)

    task =
      Task.async(fn ->
        {:ok, dev_null} = File.open("/dev/null", [:write])
        Process.group_leader(self(), dev_null)
        Mix.shell(Mix.Shell.Quiet)
        if root, do: File.cd!(root)
        # Every task runs again (mix runs each once per session otherwise).
        Mix.Task.clear()

        # Consolidated protocols stay Orrery's on the node (see core/protocols.rs).
        Mix.Task.run("compile", ["--return-errors", "--no-deps-check", "--no-archives-check",
                                 "--no-elixir-version-check", "--no-protocol-consolidation"])
      end)

    case Task.yield(task, timeout) || Task.shutdown(task, :brutal_kill) do
      {:ok, result} ->
        case build_errors(result) do
          [] -> :ok
          errors -> {:error, Enum.join(Enum.take(errors, 3), "; ")}
        end

      {:exit, reason} ->
        {:error, "mix compile crashed: " <> inspect(reason)}

      nil ->
        :timeout
    end
  end

  # The errors in what `mix compile --return-errors` answers (a list in an umbrella).
  defp build_errors(results) when is_list(results), do: Enum.flat_map(results, &build_errors/1)

  defp build_errors({:error, diagnostics}) do
    case for(d <- List.wrap(diagnostics), e = describe(d), e != nil, do: e) do
      [] -> ["mix compile failed"]
      errors -> errors
    end
  end

  defp build_errors(_), do: []

  defp describe(d) do
    case one(d, :error) do
      {file, line, _col, :error, msg, _span} -> "#{Path.relative_to_cwd(file)}:#{line}: #{msg}"
      _ -> nil
    end
  rescue
    _ -> inspect(d)
  end

  # Modules in a binary that would be unsafe to hot-swap: NIFs and @on_load. The
  # on_load attribute is not in the atom table or the Attr chunk: read the forms.
  def unsafe(binary) do
    atoms =
      case :beam_lib.chunks(binary, [:atoms]) do
        {:ok, {_, [atoms: atoms]}} -> Enum.map(atoms, &elem(&1, 1))
        _ -> []
      end

    cond do
      :load_nif in atoms -> :nif
      on_load?(binary) -> :on_load
      true -> :ok
    end
  end

  defp on_load?(binary) do
    with {:ok, {m, [debug_info: {:debug_info_v1, backend, data}]}} <-
           :beam_lib.chunks(binary, [:debug_info]),
         {:ok, forms} <- backend.debug_info(:erlang_v1, m, data, []) do
      Enum.any?(forms, &match?({:attribute, _, :on_load, _}, &1))
    else
      _ -> false
    end
  rescue
    _ -> false
  end

  defp norm(%{} = warnings, default) do
    norm(Map.get(warnings, :compile_warnings, []) ++ Map.get(warnings, :runtime_warnings, []),
         default)
  end

  defp norm(list, default) do
    diags =
      list
      |> Enum.map(&one(&1, default))
      |> Enum.reject(fn {_, _, _, _, msg, _} -> String.contains?(msg, "redefining module") end)

    # "cannot compile module X (errors have been logged)" says nothing the errors before
    # it do not (and has no line): keep it only when it is all there is.
    case Enum.reject(diags, &logged_summary?/1) do
      [] -> diags
      kept -> kept
    end
  end

  defp logged_summary?({_, 0, _, _, msg, _}), do: String.contains?(msg, "(errors have been logged)")
  defp logged_summary?(_), do: false

  defp one(%{} = d, default) do
    {line, col} = pos(Map.get(d, :position, 0))
    {to_string(Map.get(d, :file) || ""), line, col, Map.get(d, :severity, default),
     strip(Map.get(d, :message, "")), span(Map.get(d, :span), line, col)}
  end

  defp one({file, position, message}, default) do
    {line, col} = pos(position)
    {to_string(file), line, col, default, strip(message), nil}
  end

  defp pos({line, col}) when is_integer(line) and is_integer(col), do: {line, col}
  defp pos({line, _}) when is_integer(line), do: {line, 0}
  defp pos(line) when is_integer(line), do: {line, 0}
  defp pos(_), do: {0, 0}

  # A span that ends after its start, on a known column.
  defp span({el, ec}, line, col)
       when is_integer(el) and is_integer(ec) and col > 0 and
              (el > line or (el == line and ec > col)),
       do: {el, ec}

  defp span(_, _, _), do: nil

  # Drop the compiler's own stacktrace lines from error messages.
  defp strip(message) do
    message
    |> to_string()
    |> String.split("\n")
    |> Enum.reject(&String.starts_with?(&1, "    ("))
    |> Enum.join("\n")
    |> String.trim()
  end
end
