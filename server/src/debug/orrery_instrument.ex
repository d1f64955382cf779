# Loaded into Orrery's compile node. Compiles a file with probes inserted before each
# expression of function bodies (def/defp, and the clauses of case/cond/with/fn/receive,
# if/unless branches). A probe costs one remote call to compiled clauses
# (`:orrery_dbg_v1_armed.lookup(module, line)`, generated on the node as breakpoints
# change); only an armed line (or a stepping process) calls into the node's debugger with
# the bindings. Without the lookup module (not attached yet, or detached) probes do nothing.
#   compile(file, timeout) ->
#     {:ok, [{module, binary}], %{module => [line]}, diagnostics} | {:error, diags, diags} | :timeout
defmodule OrreryInstrument.V1 do
  @moduledoc false

  def compile(file, timeout) do
    task =
      Task.async(fn ->
        {:ok, dev_null} = File.open("/dev/null", [:write])
        Process.group_leader(self(), dev_null)
        Process.put(:orrery_probe_lines, %{})

        try do
          ast = file |> File.read!() |> Code.string_to_quoted!(file: file, token_metadata: true)
          ast = instrument_modules(ast, nil)
          modules = Code.compile_quoted(ast, file)
          lines = Process.get(:orrery_probe_lines)
          for {m, _} <- modules, do: (:code.purge(m); :code.delete(m))
          {:ok, modules, Map.new(lines, fn {m, ls} -> {m, ls |> Enum.uniq() |> Enum.sort()} end), []}
        rescue
          e ->
            line = Map.get(e, :line) || 0
            {:error, [{file, line, 0, :error, Exception.message(e)}], []}
        end
      end)

    case Task.yield(task, timeout) || Task.shutdown(task, :brutal_kill) do
      {:ok, result} -> result
      {:exit, reason} -> {:error, [{file, 0, 0, :error, "instrumenting crashed: " <> inspect(reason)}], []}
      nil -> :timeout
    end
  end

  # Track the module being defined so probes know their line table.
  defp instrument_modules({:defmodule, meta, [alias, [do: body]]}, parent) do
    name = module_name(alias, parent)
    {:defmodule, meta, [alias, [do: instrument_modules(body, name)]]}
  end

  defp instrument_modules({kind, meta, [head, [do: body] ++ rest]}, mod)
       when kind in [:def, :defp] and mod != nil do
    # Literals carry no line: they get the line after the previous expression, starting
    # after `do` (or on the def line for `do:`, which has no `do` position).
    start =
      case get_in(meta, [:do, :line]) do
        nil -> (meta[:line] || 1) - 1
        line -> line
      end

    Process.put(:orrery_last_line, start)
    {kind, meta, [head, [do: body(body, mod, fun_arity(head))] ++ rest]}
  end

  defp instrument_modules({:__block__, meta, exprs}, mod),
    do: {:__block__, meta, Enum.map(exprs, &instrument_modules(&1, mod))}

  defp instrument_modules(other, _mod), do: other

  defp module_name({:__aliases__, _, parts}, nil), do: Module.concat(parts)
  defp module_name({:__aliases__, _, parts}, parent), do: Module.concat([parent | parts])
  defp module_name(atom, _) when is_atom(atom), do: atom
  defp module_name(_, parent), do: parent

  defp fun_arity({:when, _, [call | _]}), do: fun_arity(call)
  defp fun_arity({name, _, args}) when is_atom(name) and is_list(args), do: {name, length(args)}
  defp fun_arity({name, _, _}) when is_atom(name), do: {name, 0}
  defp fun_arity(_), do: {:unknown, 0}

  # A body: a probe before each expression, recursing into nested clauses.
  defp body({:__block__, meta, exprs}, mod, fa) do
    {:__block__, meta, Enum.flat_map(exprs, &with_probe(&1, mod, fa))}
  end

  defp body(expr, mod, fa) do
    case with_probe(expr, mod, fa) do
      [single] -> single
      many -> {:__block__, [], many}
    end
  end

  defp with_probe(expr, mod, fa) do
    line =
      case line_of(expr) do
        nil -> Process.get(:orrery_last_line, 0) + 1
        line -> line
      end

    Process.put(:orrery_last_line, line)
    expr = nested(expr, mod, fa)
    if line > 0, do: [probe(mod, line, fa), expr], else: [expr]
  end

  # Clauses inside the expression: `x -> body` (case/cond/with/fn/receive), do/else blocks.
  defp nested({:->, meta, [args, b]}, mod, fa) do
    if meta[:line], do: Process.put(:orrery_last_line, meta[:line] - 1)
    {:->, meta, [args, body(b, mod, fa)]}
  end

  defp nested({form, meta, args}, mod, fa) when is_list(args) and form in [:case, :cond, :with, :receive, :try, :if, :unless, :fn, :for] do
    {form, meta, Enum.map(args, &nested_arg(&1, mod, fa))}
  end

  defp nested({:=, meta, [lhs, rhs]}, mod, fa), do: {:=, meta, [lhs, nested(rhs, mod, fa)]}

  # Any other call: its arguments may hold clauses, as in `Enum.map(list, fn x -> ... end)`
  # or `x |> Enum.reduce(0, fn ...)`. Quoted code is left alone.
  defp nested({:quote, _, _} = q, _mod, _fa), do: q

  defp nested({call, meta, args}, mod, fa) when is_list(args) do
    {nested(call, mod, fa), meta, Enum.map(args, &nested(&1, mod, fa))}
  end

  defp nested(list, mod, fa) when is_list(list), do: Enum.map(list, &nested(&1, mod, fa))
  defp nested({a, b}, mod, fa), do: {nested(a, mod, fa), nested(b, mod, fa)}
  defp nested(other, _mod, _fa), do: other

  defp nested_arg(kw, mod, fa) when is_list(kw) do
    Enum.map(kw, fn
      {key, clauses} when key in [:do, :else, :after, :rescue, :catch] and is_list(clauses) ->
        {key, Enum.map(clauses, &nested(&1, mod, fa))}

      {key, b} when key in [:do, :else, :after] ->
        {key, body(b, mod, fa)}

      {:->, _, _} = clause ->
        nested(clause, mod, fa)

      other ->
        other
    end)
  end

  defp nested_arg({:->, _, _} = clause, mod, fa), do: nested(clause, mod, fa)
  defp nested_arg(other, _mod, _fa), do: other

  defp line_of({_, meta, _}) when is_list(meta), do: Keyword.get(meta, :line)
  defp line_of(_), do: nil

  defp probe(mod, line, {f, a}) do
    Process.put(:orrery_probe_lines, Map.update(Process.get(:orrery_probe_lines), mod, [line], &[line | &1]))

    quote do
      armed =
        try do
          :orrery_dbg_v1_armed.lookup(__MODULE__, unquote(line))
        catch
          _, _ -> false
        end

      # true: this line is armed; :step: some process steps (is it this one?).
      if armed === true or (armed === :step and :erlang.get(:orrery_step) !== :undefined) do
        :orrery_dbg_v1.probe(__MODULE__, unquote(line), {unquote(f), unquote(a)}, binding())
      end
    end
  end
end
