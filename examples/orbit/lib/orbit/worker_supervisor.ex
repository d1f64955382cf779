defmodule Orbit.WorkerSupervisor do
  @moduledoc "A named DynamicSupervisor of `Orbit.Worker` processes."
  use DynamicSupervisor

  @initial_workers 3

  def start_link(opts \\ []) do
    DynamicSupervisor.start_link(__MODULE__, opts, name: __MODULE__)
  end

  @doc "Starts one more worker with the given id."
  def start_worker(id) do
    DynamicSupervisor.start_child(__MODULE__, {Orbit.Worker, id})
  end

  @doc "Starts workers 1..#{@initial_workers}; run once at boot by a Task."
  def start_initial_workers do
    for id <- 1..@initial_workers do
      {:ok, _pid} = start_worker(id)
    end

    :ok
  end

  @impl true
  def init(_opts) do
    DynamicSupervisor.init(strategy: :one_for_one)
  end
end
