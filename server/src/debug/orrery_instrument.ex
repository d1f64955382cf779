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

        try do
          ast = file |> File.read!() |> Code.string_to_quoted!(file: file, token_metadata: true)
          ast = instrument_modules(ast, nil)
          # As `mix compile` would: the (umbrella) app's project, cwd and options.
          modules = OrreryCompiler.V1.in_app_of(file, fn -> Code.compile_quoted(ast, file) end)
          for {m, _} <- modules, do: (:code.purge(m); :code.delete(m))
          # A protocol has no bodies to probe; loaded instrumented it would be the
          # unconsolidated one: it is left as it runs.
          modules = Enum.reject(modules, fn {_, bin} -> OrreryCompiler.Protocols.protocol?(bin) end)
          {:ok, modules, Map.new(modules, fn {m, bin} -> {m, probe_lines(bin)} end), []}
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

  # The lines that really have a probe in a compiled module, read from its code: a module
  # is named by the compiler (defimpl, a module inside `if`), and a line only counts when
  # a probe for it was compiled in.
  defp probe_lines(bin) do
    case :beam_lib.chunks(bin, [:abstract_code]) do
      {:ok, {_, [abstract_code: {:raw_abstract_v1, forms}]}} ->
        forms |> lookups([]) |> Enum.uniq() |> Enum.sort()

      _ ->
        []
    end
  end

  defp lookups({:call, _, {:remote, _, {:atom, _, :orrery_dbg_v1_armed}, {:atom, _, :lookup}}, [_, {:integer, _, line}]}, acc),
    do: [line | acc]

  defp lookups(t, acc) when is_tuple(t), do: lookups(Tuple.to_list(t), acc)
  defp lookups([h | t], acc), do: lookups(t, lookups(h, acc))
  defp lookups(_, acc), do: acc

  # Walk the whole file: modules may sit inside a top-level `if Code.ensure_loaded?(..)`,
  # a `defimpl` (nested, or `for: Any`), or any other block. Only definitions written in
  # the file are instrumented: `quote` bodies (macros generating defs) are left alone.
  defp instrument_modules({kind, meta, [alias | rest]}, parent)
       when kind in [:defmodule, :defimpl, :defprotocol] do
    case Enum.split(rest, -1) do
      {opts, [kw]} when is_list(kw) ->
        case Keyword.pop(kw, :do) do
          {nil, _} ->
            {kind, meta, [alias | rest]}

          {body, others} ->
            name = if kind == :defmodule, do: module_name(alias, parent), else: parent || :impl
            outer = Process.put(:orrery_locals, local_names(body))
            instrumented = instrument_modules(body, name)
            Process.put(:orrery_locals, outer)
            {kind, meta, [alias | opts] ++ [[{:do, instrumented} | others]]}
        end

      _ ->
        {kind, meta, [alias | rest]}
    end
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
    fa = fun_arity(head)
    probed = body(body, mod, fa)
    end_line = get_in(meta, [:end, :line]) || meta[:line] || 0

    # Record the return value, unless a tail position calls a function of this module:
    # keeping the result would turn tail recursion (a receive loop) into stack growth.
    probed =
      if top_probe?(probed) and not tail_calls_local?(body, Process.get(:orrery_locals, MapSet.new())),
        do: with_return(probed, end_line, fa),
        else: probed

    {kind, meta, [state_named(head, fa), [do: probed] ++ rest]}
  end

  defp instrument_modules({:quote, _, _} = q, _mod), do: q

  defp instrument_modules({call, meta, args}, mod) when is_list(args),
    do: {call, meta, Enum.map(args, &instrument_modules(&1, mod))}

  defp instrument_modules(list, mod) when is_list(list), do: Enum.map(list, &instrument_modules(&1, mod))
  defp instrument_modules({a, b}, mod), do: {instrument_modules(a, mod), instrument_modules(b, mod)}
  defp instrument_modules(other, _mod), do: other

  # A GenServer callback's state (its last argument) is bound to `orrery_state__` as well,
  # whatever its head matches it with (`%{n: n} = s`, a literal): the recording sees it.
  # A LiveView's callbacks take the socket last (its assigns are the state history).
  @state_callbacks [handle_call: 3, handle_cast: 2, handle_info: 2, handle_continue: 2,
                    handle_event: 3, handle_params: 3, mount: 3]
  defp state_named({:when, m, [call | guards]}, fa), do: {:when, m, [state_named(call, fa) | guards]}

  defp state_named({name, m, args} = head, fa) when is_list(args) do
    if fa in @state_callbacks do
      {init, [last]} = Enum.split(args, -1)
      # The arguments before it (the request, message, event and params) too, as
      # `orrery_arg1__`.. : the state history shows what the callback got, however its
      # head matched it (`"inc"`, `_params`).
      init =
        init
        |> Enum.with_index(1)
        |> Enum.map(fn {arg, i} -> bound_as(arg, String.to_atom("orrery_arg#{i}__")) end)

      {name, m, init ++ [bound_as(last, :orrery_state__)]}
    else
      head
    end
  end

  defp state_named(head, _fa), do: head

  # `pattern = var` in a head; an argument with a default (`a \\ 1`) is left as written.
  defp bound_as({:\\, _, _} = arg, _var), do: arg
  defp bound_as(arg, var), do: {:=, [], [arg, {var, [], nil}]}

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

  # Names of the functions a module defines (any arity): calls to them are local.
  defp local_names(body) do
    {_, names} =
      Macro.prewalk(body, MapSet.new(), fn
        {kind, _, [head | _]} = node, acc when kind in [:def, :defp] ->
          {node, MapSet.put(acc, elem(fun_arity(head), 0))}

        {:defmodule, _, _}, acc ->
          {nil, acc}

        node, acc ->
          {node, acc}
      end)

    names
  end

  # Does any tail position of `expr` call a local function (or apply/__MODULE__)?
  defp tail_calls_local?({:__block__, _, []}, _locals), do: false
  defp tail_calls_local?({:__block__, _, exprs}, locals), do: tail_calls_local?(List.last(exprs), locals)

  defp tail_calls_local?({form, _, args}, locals) when form in [:case, :cond, :receive, :with, :if, :unless, :try] and is_list(args) do
    kw = List.last(args)

    is_list(kw) and
      Enum.any?(kw, fn
        {key, clauses} when key in [:do, :else, :after] and is_list(clauses) ->
          Enum.any?(clauses, fn
            {:->, _, [_, b]} -> tail_calls_local?(b, locals)
            other -> tail_calls_local?(other, locals)
          end)

        {key, b} when key in [:do, :else] ->
          tail_calls_local?(b, locals)

        _ ->
          false
      end)
  end

  defp tail_calls_local?({:|>, _, [_, rhs]}, locals), do: call_local?(rhs, locals)
  defp tail_calls_local?(expr, locals), do: call_local?(expr, locals)

  defp call_local?({:apply, _, args}, _locals) when is_list(args), do: true
  defp call_local?({{:., _, [{:__MODULE__, _, _}, _]}, _, _}, _locals), do: true
  defp call_local?({name, _, args}, locals) when is_atom(name) and is_list(args), do: MapSet.member?(locals, name)
  defp call_local?(_, _), do: false

  # The body starts with a probe (which binds `armed`, read again at the return).
  defp top_probe?({:__block__, _, [first | _]}), do: probe?(first)
  defp top_probe?(_), do: false

  defp probe?({:__block__, [], [{:=, _, [{:armed, _, __MODULE__}, _]} | _]}), do: true
  defp probe?(_), do: false

  # `armed` holds the last top-level probe's answer: anything but false (recording arms
  # every line) reports the result; when idle this costs one comparison.
  defp with_return(probed, line, {f, a}) do
    quote do
      orrery_result = unquote(probed)

      if armed !== false do
        :orrery_dbg_v1.returned(__MODULE__, unquote(line), {unquote(f), unquote(a)}, orrery_result)
      end

      orrery_result
    end
  end

  defp probe(_mod, line, {f, a}) do
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
