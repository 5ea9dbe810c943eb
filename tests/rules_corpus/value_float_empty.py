"""float() on a blank field."""

EXPECT = ("`float()` could not parse ''", "the text is empty")

row = {"amount": ""}
amount = float(row["amount"])
