"""A count that is zero, shown by the locals."""

EXPECT = ("The divisor `count` was 0.",)
MODE = "rich"


def average(total, count):
    return total / count


average(10, 0)
