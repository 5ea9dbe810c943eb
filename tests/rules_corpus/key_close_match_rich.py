"""A misspelt key, with the row's keys visible in rich mode."""

EXPECT = (
    "The key 'custmer_id' is not in `row`",
    "Did you mean 'customer_id'?",
    "'email'",
)
MODE = "rich"


def customer_id(row):
    return row["custmer_id"]


customer_id({"customer_id": "7", "name": "Ada", "email": "ada@example.com"})
