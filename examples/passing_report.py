"""A small report that succeeds: plain Python, nothing of runtime_narrative.

It reads numbers, one per line, from the files named on the command line
(or from stdin when there are none) and prints their count, sum and mean::

    printf '3\n4\n5\n' | runtime-narrative run examples/passing_report.py

Its stdout is exactly what ``python examples/passing_report.py`` prints;
the story lines go to stderr.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable


class Summary:
    def __init__(self) -> None:
        self.values: list[float] = []

    def add(self, value: float) -> None:
        self.values.append(value)

    def mean(self) -> float:
        return sum(self.values) / len(self.values) if self.values else 0.0


def read_numbers(lines: Iterable[str]) -> list[float]:
    return [float(line) for line in lines if line.strip()]


def summarize(numbers: list[float]) -> Summary:
    summary = Summary()
    for number in numbers:
        summary.add(number)
    return summary


def main(argv: list[str]) -> int:
    numbers: list[float] = []
    if argv:
        for path in argv:
            with open(path) as file:
                numbers.extend(read_numbers(file))
    else:
        numbers = read_numbers(sys.stdin)
    summary = summarize(numbers)
    print(f"count {len(summary.values)}")
    print(f"sum {sum(summary.values):g}")
    print(f"mean {summary.mean():g}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
