"""int() on a decimal number."""

EXPECT = ("'3.5'", "decimal number", "float(x)")

price = int("3.5")
