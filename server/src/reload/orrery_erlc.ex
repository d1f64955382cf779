# Loaded into Orrery's compile node with OrreryCompiler.V1. Compiles Erlang sources
# (src/*.erl) the way `mix compile` does (Mix.Tasks.Compile.Erlang): in the app's
# directory (OrreryCompiler.V1.in_app_of puts its project on the stack and makes it the
# cwd), with the app's :erlc_options, :debug_info and {:i, erlc_include_path}, so an
# unchanged file compiles to the code of the beam mix wrote (beam_lib:md5 equal). Only
# binaries come out: nothing is written to _build.
defmodule OrreryCompiler.Erl do
  @moduledoc false

  # {:ok, modules, warnings, []} | {:error, errors, warnings}. Each binary is written to
  # out as <module>.beam, where OrreryCompiler.V1.compile_stages reads it.
  def compile(files, out) do
    config = if Mix.Project.get(), do: Mix.Project.config(), else: []
    opts = options(config)
    results = Enum.map(files, &one(&1, opts, out))
    errors = for {:error, e, _} <- results, d <- e, do: d
    warnings = for {_, _, w} <- results, d <- w, do: d

    case errors do
      [] -> {:ok, for({:ok, m, _} <- results, do: m), warnings, []}
      _ -> {:error, errors, warnings}
    end
  end

  # Mix's options (its erlc_options, then debug_info and the include path), with the
  # output kept in memory and the messages returned instead of printed.
  def options(config) do
    include = to_charlist(config[:erlc_include_path] || "include")

    user =
      case config[:erlc_options] do
        list when is_list(list) -> list
        _ -> []
      end

    user =
      for opt <- user, not printing_or_output?(opt) do
        case opt do
          {:i, dir} -> {:i, to_charlist(dir)}
          other -> other
        end
      end

    default = if include == 'include', do: [], else: [{:i, 'include'}]
    user ++ [:debug_info, :binary, :return_errors, :return_warnings, {:i, include}] ++ default
  end

  defp printing_or_output?({:outdir, _}), do: true

  defp printing_or_output?(opt)
       when opt in [:report, :report_errors, :report_warnings, :verbose, :return],
       do: true

  defp printing_or_output?(_), do: false

  defp one(file, opts, out) do
    source = to_charlist(Path.relative_to_cwd(file))

    case :compile.file(source, opts) do
      {:ok, mod, bin, warnings} ->
        File.write!(Path.join(out, Atom.to_string(mod) <> ".beam"), bin)
        {:ok, mod, diags(warnings, :warning, file)}

      {:ok, mod, bin} ->
        File.write!(Path.join(out, Atom.to_string(mod) <> ".beam"), bin)
        {:ok, mod, []}

      {:error, errors, warnings} ->
        {:error, diags(errors, :error, file), diags(warnings, :warning, file)}

      _ ->
        {:error, [{file, 0, 0, :error, "the Erlang compiler refused the options (see :erlc_options)"}], []}
    end
  end

  # {file, line, column, severity, message}: the file is the one the message is about (a
  # header, for an error in it), absolute.
  defp diags(list, severity, saved) do
    for {file, items} <- list, {loc, mod, desc} <- items do
      {line, col} =
        case loc do
          {l, c} when is_integer(l) and is_integer(c) -> {l, c}
          l when is_integer(l) -> {l, 0}
          _ -> {0, 0}
        end

      path = if file in [[], ""], do: saved, else: Path.expand(to_string(file))
      {path, line, col, severity, message(mod, desc)}
    end
  end

  defp message(mod, desc) do
    mod.format_error(desc) |> IO.chardata_to_string()
  rescue
    _ -> inspect(desc)
  end
end
