"""An assertion with a message, values from the locals."""

EXPECT = (
    "The assertion `total == expected` was false (totals differ)",
    "total = 3",
    "expected = 4",
)
MODE = "rich"


def check(total, expected):
    assert total == expected, "totals differ"


check(3, 4)
