"""A FileNotFoundError that names no path."""

EXPECT = None

raise FileNotFoundError("no configuration found")
