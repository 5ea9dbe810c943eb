"""A string index."""

EXPECT = ("`word[10]`", "of 4 items")
MODE = "rich"


def letter(word):
    return word[10]


letter("spam")
