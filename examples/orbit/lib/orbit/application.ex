defmodule Orbit.Application do
  @moduledoc """
  Supervision tree of the Orbit demo app (one_for_one):

      Orbit.Supervisor
      ├── Orbit.Cache             (owns the :orbit_cache ETS table)
      ├── Orbit.Counter           (self-ticking counter)
      ├── Orbit.WorkerSupervisor  (DynamicSupervisor of Orbit.Worker)
      └── Task                    (starts 3 Orbit.Worker at boot, then exits)
  """
  use Application

  @impl true
  def start(_type, _args) do
    children = [
      Orbit.Cache,
      Orbit.Counter,
      Orbit.WorkerSupervisor,
      {Task, &Orbit.WorkerSupervisor.start_initial_workers/0}
    ]

    Supervisor.start_link(children, strategy: :one_for_one, name: Orbit.Supervisor)
  end
end
