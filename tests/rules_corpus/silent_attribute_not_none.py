"""An AttributeError on a value that is not None."""

EXPECT = None

count = 5
count.append(1)
