"""A LookupError."""

import codecs

EXPECT = None

codecs.lookup("no-such-codec")
