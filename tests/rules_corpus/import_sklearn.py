"""sklearn is installed as scikit-learn."""

import sys

EXPECT = ("The module 'sklearn' is not installed", "pip install scikit-learn")

saved = sys.path[:]
sys.path[:] = []  # nothing importable: the module is "not installed"
try:
    import sklearn  # noqa: F401
finally:
    sys.path[:] = saved
