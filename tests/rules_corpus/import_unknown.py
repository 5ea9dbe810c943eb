"""A module with no known distribution."""

import sys

EXPECT = (
    "The module 'runtime_narrative_corpus_absent' is not installed",
    "often named",
)

saved = sys.path[:]
sys.path[:] = []  # nothing importable: the module is "not installed"
try:
    import runtime_narrative_corpus_absent  # noqa: F401
finally:
    sys.path[:] = saved
