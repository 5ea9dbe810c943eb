"""A modulo by a zero step."""

EXPECT = ("The divisor `step` was 0.",)

step = 0
for i in range(3):
    print(i % step)
