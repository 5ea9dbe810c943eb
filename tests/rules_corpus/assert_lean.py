"""A bare assertion in lean mode."""

EXPECT = ("The assertion `len(rows) > 0` was false.", "python -O")

rows = []
assert len(rows) > 0
