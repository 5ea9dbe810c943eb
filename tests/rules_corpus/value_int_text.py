"""int() on a word."""

EXPECT = ("`int()` could not parse 'abc' (from `raw`): it is not a number",)

raw = "abc"
quantity = int(raw)
