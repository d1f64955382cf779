defmodule Orbit.Worker do
  @moduledoc """
  A worker under `Orbit.WorkerSupervisor`. Every second or so it does a job
  (a small Fibonacci) and counts it. State: `%{id: integer, jobs: integer, last_result: integer}`.
  """
  use GenServer, restart: :transient

  @work_ms 1000

  def start_link(id) when is_integer(id) do
    GenServer.start_link(__MODULE__, id)
  end

  @doc "Returns the worker's state."
  def info(pid), do: GenServer.call(pid, :info)

  @impl true
  def init(id) do
    schedule_work(id)
    {:ok, %{id: id, jobs: 0, last_result: nil}}
  end

  @impl true
  def handle_call(:info, _from, state), do: {:reply, state, state}

  @impl true
  def handle_info(:work, state) do
    result = Orbit.Math.fib(10 + state.id)
    Orbit.Cache.put({:worker, state.id}, result)
    schedule_work(state.id)
    {:noreply, %{state | jobs: state.jobs + 1, last_result: result}}
  end

  # Stagger the workers a little so they do not all run at once.
  defp schedule_work(id) do
    Process.send_after(self(), :work, @work_ms + id * 100)
  end
end
