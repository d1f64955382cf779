# Loaded into Orrery's compile node (never into the user's node). Compiles one file in a
# task with a timeout and returns the binaries and normalized diagnostics:
#   {:ok, [{module, binary}], diagnostics} | {:error, diagnostics, diagnostics} | :timeout
# A diagnostic is {file, line, column, severity, message}.
defmodule OrreryCompiler.V1 do
  @moduledoc false

  def compile(file, timeout) when is_binary(file) do
    out = Path.join(System.tmp_dir!(), "orrery_cc_#{System.unique_integer([:positive])}")
    File.mkdir_p!(out)

    task =
      Task.async(fn ->
        # The compiler prints diagnostics too; keep them off the console.
        {:ok, dev_null} = File.open("/dev/null", [:write])
        Process.group_leader(self(), dev_null)
        Kernel.ParallelCompiler.compile_to_path([file], out, [])
      end)

    result =
      case Task.yield(task, timeout) || Task.shutdown(task, :brutal_kill) do
        {:ok, {:ok, modules, warnings}} ->
          bins =
            for m <- modules do
              {m, File.read!(Path.join(out, Atom.to_string(m) <> ".beam"))}
            end

          for m <- modules do
            :code.purge(m)
            :code.delete(m)
          end

          {:ok, bins, norm(warnings, :warning)}

        {:ok, {:error, errors, warnings}} ->
          {:error, norm(errors, :error), norm(warnings, :warning)}

        {:exit, reason} ->
          {:error, [{file, 0, 0, :error, "the compiler crashed: " <> inspect(reason)}], []}

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
