"""A Python repr written instead of JSON."""

import json

EXPECT = ("line 1, column 2", "single quotes", "{'id': 1}")

json.loads(str({"id": 1}))
