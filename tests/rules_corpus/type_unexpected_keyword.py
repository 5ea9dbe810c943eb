"""A misspelt keyword argument."""

EXPECT = ("has no parameter named `colour`",)


def paint(color="red"):
    return color


paint(colour="blue")
