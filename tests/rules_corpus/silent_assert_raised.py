"""An AssertionError raised by hand, not by assert."""

EXPECT = None

raise AssertionError("expected three rows")
