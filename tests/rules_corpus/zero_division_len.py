"""Dividing by the length of an empty list."""

EXPECT = ("The divisor `len(values)` was 0.", "`values` is empty")

values = []
mean = sum(values) / len(values)
