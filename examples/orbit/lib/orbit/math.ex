defmodule Orbit.Math do
  @moduledoc "Small functions for profiling and debugger demos."

  @doc "Naive, deliberately CPU-bound recursive Fibonacci."
  def fib(0), do: 0
  def fib(1), do: 1
  def fib(n) when is_integer(n) and n > 1, do: fib(n - 1) + fib(n - 2)

  @doc "Sum of the squares of 1..n, with one local variable per line."
  def sum_squares(n) when is_integer(n) and n >= 0 do
    numbers = Enum.to_list(1..n//1)

    total =
      Enum.reduce(numbers, 0, fn x, acc ->
        sq = x * x
        acc = acc + sq
        acc
      end)

    total
  end
end
