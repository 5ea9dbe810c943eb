"""The key comes from a variable."""

EXPECT = ("The key 'amount' is not in `record`", "Did you mean 'amounts'?")
MODE = "rich"


def field(record, name):
    return record[name]


field({"amounts": [1, 2], "id": 4}, "amount")
