"""A ValueError that is not about parsing a number."""

EXPECT = None

raise ValueError("unknown report format: xlsx")
