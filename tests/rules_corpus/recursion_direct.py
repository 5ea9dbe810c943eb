"""A recursive function without a base case."""

EXPECT = ("`countdown`", "kept calling itself", "stop condition of `countdown`")


def countdown(n):
    return countdown(n - 1)


countdown(10)
