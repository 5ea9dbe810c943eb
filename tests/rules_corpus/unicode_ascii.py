"""UTF-8 text decoded as ASCII."""

EXPECT = ("The bytes are not ascii", 'encoding="utf-8"')

data = "caf\u00e9".encode("utf-8")
data.decode("ascii")
