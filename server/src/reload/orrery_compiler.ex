# Loaded into Orrery's compile node (never into the user's node). Compiles one file in a
# task with a timeout and returns the binaries and normalized diagnostics:
#   {:ok, [{module, binary}], diagnostics} | {:error, diagnostics, diagnostics} | :timeout
# A diagnostic is {file, line, column, severity, message}.
defmodule OrreryCompiler.V1 do
  @moduledoc false

  def compile(file, timeout) when is_binary(file) do
    case compile_stages([[file]], timeout) do
      {:ok, bins, warnings, _stale} -> {:ok, bins, warnings}
      other -> other
    end
  end

  # Compile the first stage (the saved file), then each later stage of dependent files
  # (files that use macros or structs of the previous stage), one file at a time, with the
  # new modules of the earlier stages loaded here so they expand against the new code.
  #   {:ok, [{module, binary}], diagnostics, stale} | {:error, errors, warnings} | :timeout
  # stale is [{file, message}]: dependents that did not compile (their errors are in the
  # diagnostics); the first stage failing fails the whole compile.
  def compile_stages([first | rest], timeout) when is_list(first) do
    out = Path.join(System.tmp_dir!(), "orrery_cc_#{System.unique_integer([:positive])}")
    File.mkdir_p!(out)

    task =
      Task.async(fn ->
        # The compiler prints diagnostics too; keep them off the console.
        {:ok, dev_null} = File.open("/dev/null", [:write])
        Process.group_leader(self(), dev_null)

        case Kernel.ParallelCompiler.compile_to_path(first, out, []) do
          {:ok, modules, warnings} ->
            acc = {modules, norm(warnings, :warning), []}

            {modules, diags, stale} =
              Enum.reduce(rest, acc, fn stage, acc ->
                Enum.reduce(stage, acc, fn file, {ms, ds, st} ->
                  case Kernel.ParallelCompiler.compile_to_path([file], out, []) do
                    {:ok, more, w} ->
                      {ms ++ more, ds ++ norm(w, :warning), st}

                    {:error, e, w} ->
                      errors = norm(e, :error)
                      why = case errors do
                        [{_, line, _, _, msg} | _] -> "line #{line}: #{msg}"
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
      end)

    result =
      case Task.yield(task, timeout) || Task.shutdown(task, :brutal_kill) do
        {:ok, {:ok, modules, diags, stale}} ->
          bins =
            for m <- Enum.uniq(modules) do
              {m, File.read!(Path.join(out, Atom.to_string(m) <> ".beam"))}
            end

          # Keep the compile node on the build's code: what was compiled here is only
          # loaded into the target after a clean swap (which writes it to _build).
          for {m, _} <- bins do
            :code.purge(m)
            :code.delete(m)
          end

          {:ok, bins, diags, stale}

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

  # Modules in a binary that would be unsafe to hot-swap: NIFs and @on_load.
  def unsafe(binary) do
    case :beam_lib.chunks(binary, [:atoms, :attributes]) do
      {:ok, {_, chunks}} ->
        atoms = chunks |> Keyword.get(:atoms, []) |> Enum.map(&elem(&1, 1))
        cond do
          :load_nif in atoms -> :nif
          :on_load in atoms -> :on_load
          true -> :ok
        end

      _ ->
        :ok
    end
  end

  defp norm(list, default) do
    list
    |> Enum.map(&one(&1, default))
    |> Enum.reject(fn {_, _, _, _, msg} -> String.contains?(msg, "redefining module") end)
  end

  defp one(%{} = d, default) do
    {line, col} = pos(Map.get(d, :position, 0))
    {to_string(Map.get(d, :file) || ""), line, col, Map.get(d, :severity, default),
     strip(Map.get(d, :message, ""))}
  end

  defp one({file, position, message}, default) do
    {line, col} = pos(position)
    {to_string(file), line, col, default, strip(message)}
  end

  defp pos({line, col}) when is_integer(line) and is_integer(col), do: {line, col}
  defp pos({line, _}) when is_integer(line), do: {line, 0}
  defp pos(line) when is_integer(line), do: {line, 0}
  defp pos(_), do: {0, 0}

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
