# Loaded into Orrery's compile node with OrreryCompiler.V1. Protocols on a node started by
# mix run consolidated (compile.protocols): a saved protocol is swapped consolidated, and a
# new impl is swapped together with its protocol consolidated again to include it, so
# dispatch never falls back to an unconsolidated protocol.
defmodule OrreryCompiler.Protocols do
  @moduledoc false

  # [{module, :protocol} | {module, {:impl, protocol, for}}] of compiled binaries, read from
  # the attributes defprotocol and defimpl persist.
  def roles(bins) do
    for {m, bin} <- bins, role = role(bin), role != nil, do: {m, role}
  end

  def protocol?(bin), do: role(bin) == :protocol

  defp role(bin) do
    case :beam_lib.chunks(bin, [:attributes]) do
      {:ok, {_, [attributes: attrs]}} ->
        impl = attrs[:__impl__]

        cond do
          Keyword.has_key?(attrs, :__protocol__) -> :protocol
          is_list(impl) -> {:impl, impl[:protocol], impl[:for]}
          true -> nil
        end

      _ ->
        nil
    end
  end

  # The binary of protocol consolidated as mix's compile.protocols builds it, from base (its
  # code: as compiled, or consolidated by mix or an earlier save) over the types base
  # dispatches to, types, and the impls found in the code paths (the build's, as mix has
  # them: all but OTP's) and among bins (modules of this save and earlier ones, not in the
  # build). An impl that was compiled from one of sources (the saved files) but is not
  # among fresh (this save's modules) is gone from the source: it is left out, as mix
  # would. bins are loaded here while it runs (built-in types' impls are asked for their
  # target); afterwards this node is back on the build's code.
  #   {:ok, binary} | {:error, message}
  def consolidate(protocol, base, types, bins, fresh, sources) do
    top = :persistent_term.get({OrreryCompiler.V1, :out})
    dir = Path.join(top, "p#{System.unique_integer([:positive])}")
    File.mkdir_p!(dir)
    all = [{protocol, base} | Enum.reject(bins, fn {m, _} -> m == protocol end)]

    try do
      for {m, bin} <- all do
        file = Path.join(dir, Atom.to_string(m) <> ".beam")
        File.write!(file, bin)
        :code.purge(m)
        {:module, ^m} = :code.load_binary(m, to_charlist(file), bin)
      end

      paths = [to_charlist(dir) | paths()]
      found = Protocol.extract_impls(protocol, paths)

      known =
        case protocol.__protocol__(:impls) do
          {:consolidated, ts} -> ts
          _ -> []
        end

      sources = Enum.map(sources, &Path.expand/1)

      gone? = fn type ->
        impl = Module.concat(protocol, type)
        impl not in fresh and source(impl) in sources
      end

      all = Enum.uniq(Enum.reject(Enum.uniq(known ++ found), gone?) ++ types)

      case Protocol.consolidate(protocol, all) do
        {:ok, bin} -> {:ok, bin}
        {:error, why} -> {:error, "Protocol.consolidate: #{inspect(why)}"}
      end
    rescue
      e -> {:error, Exception.message(e)}
    catch
      kind, why -> {:error, inspect({kind, why})}
    after
      for {m, _} <- all do
        :code.purge(m)
        :code.delete(m)
      end

      File.rm_rf(dir)
    end
  end

  defp source(module) do
    with [_ | _] = file <- :code.which(module),
         {:ok, {_, [compile_info: info]}} <- :beam_lib.chunks(file, [:compile_info]),
         [_ | _] = src <- Keyword.get(info, :source) do
      Path.expand(List.to_string(src))
    else
      _ -> nil
    end
  end

  defp paths do
    otp = :code.lib_dir()
    Enum.reject(:code.get_path(), &List.starts_with?(&1, otp))
  end
end
