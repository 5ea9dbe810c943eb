"""bs4 is installed as beautifulsoup4."""

import sys

EXPECT = ("The module 'bs4' is not installed", "pip install beautifulsoup4")

saved = sys.path[:]
sys.path[:] = []  # nothing importable: the module is "not installed"
try:
    import bs4  # noqa: F401
finally:
    sys.path[:] = saved
