"""Adding a string read from input to a number."""

EXPECT = (
    "`+` cannot combine a int (left) with a str (right) in `total + quantity`",
    "int(text)",
)

total = 10
quantity = "5"
total = total + quantity
