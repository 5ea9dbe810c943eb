"""Sorting a list of mixed types."""

EXPECT = ("`<` cannot compare a str with a int",)

values = [3, "10", 7]
values.sort()
