"""cv2 is installed as opencv-python."""

import sys

EXPECT = ("The module 'cv2' is not installed", "pip install opencv-python")

saved = sys.path[:]
sys.path[:] = []  # nothing importable: the module is "not installed"
try:
    import cv2  # noqa: F401
finally:
    sys.path[:] = saved
