"""A domain error the rules know nothing about."""

EXPECT = None

raise RuntimeError("pipeline stalled")
