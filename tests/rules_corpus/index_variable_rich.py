"""An index held in a variable."""

EXPECT = ("`parts[i]` (with i = 5)", "of 2 items")
MODE = "rich"


def column(line, i):
    parts = line.split(",")
    return parts[i]


column("a,b", 5)
