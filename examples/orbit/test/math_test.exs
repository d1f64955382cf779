defmodule Orbit.MathTest do
  use ExUnit.Case, async: true

  test "top_words counts words and puts the most frequent first" do
    assert Orbit.Math.top_words("b a b c b a", 2) == [{"b", 3}, {"a", 2}]
  end

  test "sum_squares adds the squares of 1..n" do
    assert Orbit.Math.sum_squares(3) == 14
  end
end
