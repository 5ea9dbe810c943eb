"""JSON Lines decoded as one document."""

import json

EXPECT = ("line 2, column 1: Extra data", "line by line")

json.loads('{"a": 1}\n{"a": 2}\n')
