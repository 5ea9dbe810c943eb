"""The cost of instrumentation when no story is open, in one run.

An instrumented function called outside any story runs straight through: its
wrapper reads one ContextVar and calls the function. This measures that cost
against the same function undecorated, in the same process, and prints the
ratio. For scale it also shows the same instrumented function inside a story
with no renderers (where it is a real stage).

Run from the repository root, with the project installed or ``PYTHONPATH=src``::

    python benchmarks/bench_instrument.py           # about ten seconds
    python benchmarks/bench_instrument.py --quick   # a smoke run
    python benchmarks/bench_instrument.py --json    # the figures as JSON
"""

from __future__ import annotations

import argparse
import json
import sys
import timeit
from typing import Any, Callable

from runtime_narrative import narrative_class, narrative_stage, story


def add(a: int, b: int) -> int:
    return a + b


instrumented_add = narrative_stage(add)


class Plain:
    def add(self, a: int, b: int) -> int:
        return a + b


@narrative_class
class Instrumented:
    def add(self, a: int, b: int) -> int:
        return a + b


def per_call_ns(call: Callable[[], Any], number: int, repeat: int) -> float:
    """The fastest of ``repeat`` runs of ``number`` calls, per call, in ns."""
    best = min(timeit.repeat(call, number=number, repeat=repeat))
    return best / number * 1e9


def measure(number: int, repeat: int) -> dict[str, float]:
    plain_obj, instrumented_obj = Plain(), Instrumented()
    figures: dict[str, float] = {}
    # Interleaved, so drift in the machine's speed hits both sides alike.
    for _ in range(3):
        for key, call in (
            ("function_plain", lambda: add(1, 2)),
            ("function_instrumented", lambda: instrumented_add(1, 2)),
            ("method_plain", lambda: plain_obj.add(1, 2)),
            ("method_instrumented", lambda: instrumented_obj.add(1, 2)),
        ):
            value = per_call_ns(call, number, repeat)
            figures[key] = min(value, figures.get(key, value))
    with story("Benchmark", renderers=[]):
        figures["function_in_story"] = per_call_ns(
            lambda: instrumented_add(1, 2), number // 10 or 1, repeat
        )
    return figures


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few iterations")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)

    number, repeat = (20_000, 3) if args.quick else (500_000, 5)
    figures = measure(number, repeat)
    figures["function_ratio"] = (
        figures["function_instrumented"] / figures["function_plain"]
    )
    figures["method_ratio"] = figures["method_instrumented"] / figures["method_plain"]

    if args.json:
        print(json.dumps(figures, indent=2, sort_keys=True))
        return 0
    print(f"Python {sys.version.split()[0]}, {number:,} calls x {repeat} repeats")
    print("outside any story:")
    print(
        f"  function  plain {figures['function_plain']:7.1f} ns"
        f"  instrumented {figures['function_instrumented']:7.1f} ns"
        f"  ratio {figures['function_ratio']:.2f}x"
    )
    print(
        f"  method    plain {figures['method_plain']:7.1f} ns"
        f"  instrumented {figures['method_instrumented']:7.1f} ns"
        f"  ratio {figures['method_ratio']:.2f}x"
    )
    print("inside a story with no renderers (a real stage):")
    print(f"  function  instrumented {figures['function_in_story']:7.1f} ns")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
