"""The first item of an empty list."""

EXPECT = ("`rows[0]` read from an empty list", "if rows:")
MODE = "rich"


def first(rows):
    return rows[0]


first([])
