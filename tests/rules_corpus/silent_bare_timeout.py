"""A timeout with nothing to say it is about the network."""

EXPECT = None

raise TimeoutError()
