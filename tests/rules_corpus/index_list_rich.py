"""One index past the end of a list."""

EXPECT = ("`items[3]`", "of 3 items (valid indexes 0 to 2)")
MODE = "rich"


def fourth(items):
    return items[3]


fourth(["a", "b", "c"])
