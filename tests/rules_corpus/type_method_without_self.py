"""A method that forgot self."""

EXPECT = ("Shape.area()", "`self` counts as its first positional argument")


class Shape:
    def area():
        return 0


Shape().area()
