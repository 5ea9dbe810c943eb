"""A None operand."""

EXPECT = (
    "`+=` cannot combine a int (left) with a NoneType (right)",
    "The right operand was None",
)


def price():
    pass


subtotal = 3
subtotal += price()
