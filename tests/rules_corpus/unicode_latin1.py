"""Latin-1 text decoded as UTF-8."""

EXPECT = ("byte 0xe9", 'encoding="latin-1"')

data = "caf\u00e9 au lait".encode("latin-1")
data.decode("utf-8")
