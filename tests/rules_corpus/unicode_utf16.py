"""UTF-16 text decoded as UTF-8."""

EXPECT = ("byte 0xff at position 0", 'encoding="utf-16"')

data = "hello".encode("utf-16")
data.decode("utf-8")
