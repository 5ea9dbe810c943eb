"""pop() from an empty list."""

EXPECT = ("`.pop()` was called on `stack` list that was empty",)

stack = []
stack.pop()
