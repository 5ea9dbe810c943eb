"""Two functions calling each other forever."""

EXPECT = ("through", "is_even", "is_odd")


def is_even(n):
    return True if n == 0 else is_odd(n - 1)


def is_odd(n):
    return False if n == 0 else is_even(n - 1)


is_even(-1)
