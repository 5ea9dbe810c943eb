"""A key that differs only in case."""

EXPECT = ("Did you mean 'Content-Type'?",)
MODE = "rich"


def content_type(headers):
    return headers["content-type"]


content_type({"Content-Type": "text/csv", "Content-Length": "12"})
