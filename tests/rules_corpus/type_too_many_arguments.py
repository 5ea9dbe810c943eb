"""Three arguments to a two-parameter function."""

EXPECT = ("`add()` accepts 2 positional argument(s) but was called with 3",)


def add(a, b):
    return a + b


add(1, 2, 3)
