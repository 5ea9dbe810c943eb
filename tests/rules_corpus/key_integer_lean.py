"""An integer key."""

EXPECT = ("The key 3 is not in `counts`",)

counts = {1: 10, 2: 20}
print(counts[3])
