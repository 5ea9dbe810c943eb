"""yaml is installed as PyYAML."""

import sys

EXPECT = ("The module 'yaml' is not installed", "pip install PyYAML")

saved = sys.path[:]
sys.path[:] = []  # nothing importable: the module is "not installed"
try:
    import yaml  # noqa: F401
finally:
    sys.path[:] = saved
