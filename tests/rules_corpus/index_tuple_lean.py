"""A tuple index in lean mode."""

EXPECT = ("past the end of the tuple `point`",)

point = (1.0, 2.0)
print(point[2])
