"""A document cut short."""

import json

EXPECT = ("Unterminated string", "ends early")

json.loads('{"name": "Ad')
