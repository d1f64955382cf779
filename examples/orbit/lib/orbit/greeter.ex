defmodule Orbit.Greeter do
  @moduledoc "A pure function the demo hot-swaps while the node runs."

  @doc "Returns a greeting for `name`."
  def greet(name) do
    "Hello, #{name}!"
  end
end
