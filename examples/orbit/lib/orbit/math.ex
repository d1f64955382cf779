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

  @doc "The most frequent words of a text: a typical data-shaping pipeline."
  def top_words(text, n \\ 5) when is_binary(text) do
    words =
      text
      |> String.downcase()
      |> String.split(~r/[^a-z']+/, trim: true)

    counts = Enum.frequencies(words)
    sorted = Enum.sort_by(counts, fn {word, count} -> {-count, word} end)
    Enum.take(sorted, n)
  end
end
