"""float() on a missing-value marker."""

EXPECT = ("'N/A' is a marker for a missing value",)

amount = float("N/A")
