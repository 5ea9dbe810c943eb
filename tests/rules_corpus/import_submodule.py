"""A submodule that does not exist."""

import json.nosuch  # noqa: F401

EXPECT = ("The package 'json' is importable, but it has no submodule 'nosuch'",)
