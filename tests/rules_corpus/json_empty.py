"""Decoding an empty body."""

import json

EXPECT = ("line 1, column 1: Expecting value", "The input is empty")

json.loads("")
