"""Crypto is installed as pycryptodome."""

import sys

EXPECT = ("The module 'Crypto' is not installed", "pip install pycryptodome")

saved = sys.path[:]
sys.path[:] = []  # nothing importable: the module is "not installed"
try:
    import Crypto  # noqa: F401
finally:
    sys.path[:] = saved
