"""A KeyError without a key."""

EXPECT = None

raise KeyError()
