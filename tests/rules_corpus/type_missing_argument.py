"""A required argument left out."""

EXPECT = ("`scale()` was called without 1 required positional argument(s): 'factor'",)


def scale(value, factor):
    return value * factor


scale(3)
