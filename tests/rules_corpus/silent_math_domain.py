"""math.sqrt of a negative number."""

import math

EXPECT = None

math.sqrt(-1)
