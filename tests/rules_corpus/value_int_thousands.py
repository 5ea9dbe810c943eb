"""int() on a number with thousands separators."""

EXPECT = ("thousands separators", "x.replace(',', '')")

population = int("1,234,567")
