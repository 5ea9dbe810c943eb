"""A trailing comma."""

import json

EXPECT = ("trailing comma",)

json.loads('{"a": 1, "b": 2,}')
