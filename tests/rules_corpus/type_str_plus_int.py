"""Concatenating text and a number."""

EXPECT = (
    "`+` cannot combine a str (left) with a int (right) in `label + count`",
    "str(value)",
)

label = "items: "
count = 3
print(label + count)
