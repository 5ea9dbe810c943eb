"""Windows-1252 quotes decoded as UTF-8."""

EXPECT = ("byte 0x93", 'encoding="cp1252"')

data = "\u201cquoted\u201d".encode("cp1252")
data.decode("utf-8")
