defmodule Orbit.Cache do
  @moduledoc """
  Owns the named public ETS table `:orbit_cache` (a set). A few rows are
  refreshed every 2 seconds; workers also write `{{:worker, id}, result}` rows.
  """
  use GenServer

  @table :orbit_cache
  @refresh_ms 2000

  def start_link(opts \\ []) do
    GenServer.start_link(__MODULE__, opts, name: __MODULE__)
  end

  @doc "The ETS table name."
  def table, do: @table

  @doc "Reads a key; returns `nil` when absent."
  def get(key) do
    case :ets.lookup(@table, key) do
      [{^key, value}] -> value
      [] -> nil
    end
  end

  @doc "Writes a key (the table is public)."
  def put(key, value) do
    :ets.insert(@table, {key, value})
    :ok
  end

  @impl true
  def init(_opts) do
    :ets.new(@table, [:set, :public, :named_table, read_concurrency: true])
    :ets.insert(@table, [{:planet, "Mars"}, {:moons, 2}, {:refreshes, 0}, {:updated_at, now()}])
    schedule_refresh()
    {:ok, %{refreshes: 0}}
  end

  @impl true
  def handle_info(:refresh, state) do
    refreshes = state.refreshes + 1
    planet = Enum.at(["Mercury", "Venus", "Earth", "Mars", "Jupiter"], rem(refreshes, 5))
    :ets.insert(@table, [{:planet, planet}, {:refreshes, refreshes}, {:updated_at, now()}])
    schedule_refresh()
    {:noreply, %{state | refreshes: refreshes}}
  end

  defp now, do: System.system_time(:millisecond)

  defp schedule_refresh do
    Process.send_after(self(), :refresh, @refresh_ms)
  end
end
