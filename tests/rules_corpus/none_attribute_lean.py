"""A None in lean mode: the name comes from the source line."""

EXPECT = ("`response` was None when `.json` was read",)

response = None
payload = response.json()
