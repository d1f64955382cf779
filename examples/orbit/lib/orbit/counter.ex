defmodule Orbit.Counter do
  @moduledoc """
  A named GenServer that ticks every 500 ms, so its state keeps changing.

  State: `%{count: integer, last: atom, history: [integer], started_at: integer}`,
  where `history` holds the last 5 counts (newest first).
  """
  use GenServer

  @tick_ms 500
  @history_size 5

  ## Public API

  def start_link(opts \\ []) do
    GenServer.start_link(__MODULE__, opts, name: __MODULE__)
  end

  @doc "Adds one to the counter; returns the new count."
  def increment do
    GenServer.call(__MODULE__, :increment)
  end

  @doc "Returns the current count."
  def value do
    GenServer.call(__MODULE__, :value)
  end

  @doc "Sets the count back to 0 and clears the history."
  def reset do
    GenServer.call(__MODULE__, :reset)
  end

  ## Callbacks

  @impl true
  def init(_opts) do
    schedule_tick()
    {:ok, %{count: 0, last: :init, history: [], started_at: System.system_time(:second)}}
  end

  @impl true
  def handle_call(:increment, _from, state) do
    state = bump(state, :increment)
    {:reply, state.count, state}
  end

  def handle_call(:value, _from, state) do
    {:reply, state.count, state}
  end

  def handle_call(:reset, _from, state) do
    {:reply, :ok, %{state | count: 0, last: :reset, history: []}}
  end

  @impl true
  def handle_info(:tick, state) do
    schedule_tick()
    {:noreply, bump(state, :tick)}
  end

  defp bump(state, source) do
    count = state.count + 1
    history = Enum.take([count | state.history], @history_size)
    %{state | count: count, last: source, history: history}
  end

  defp schedule_tick do
    Process.send_after(self(), :tick, @tick_ms)
  end
end
