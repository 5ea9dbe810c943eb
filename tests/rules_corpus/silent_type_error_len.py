"""A TypeError that is not about arguments or operands."""

EXPECT = None

len(5)
