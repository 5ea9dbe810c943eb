"""NotImplementedError."""

EXPECT = None

raise NotImplementedError("exporters are not done")
