"""A sales report that crashes: plain Python, nothing of runtime_narrative.

One region has no orders, so computing its average order value divides by
zero. Run it as a story, and its functions show up as stages with the
failure block and diagnosis::

    runtime-narrative run examples/failing_report.py

It prints the regions it managed to total on stdout, then exits with
status 1, as ``python examples/failing_report.py`` would.
"""

from __future__ import annotations

import sys

SALES = [
    ("north", 120.0),
    ("north", 80.0),
    ("south", 45.5),
    ("west", 0.0),
]
REGIONS = ("north", "south", "west", "east")


class SalesLedger:
    def __init__(self, rows: list[tuple[str, float]]) -> None:
        self.rows = rows

    def totals(self) -> dict[str, float]:
        result = dict.fromkeys(REGIONS, 0.0)
        for region, amount in self.rows:
            result[region] += amount
        return result

    def order_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(REGIONS, 0)
        for region, _amount in self.rows:
            counts[region] += 1
        return counts


def load_sales() -> SalesLedger:
    return SalesLedger(list(SALES))


def average_order_value(total: float, orders: int) -> float:
    return total / orders


def build_report(ledger: SalesLedger) -> list[str]:
    totals = ledger.totals()
    counts = ledger.order_counts()
    lines = []
    for region in REGIONS:
        average = average_order_value(totals[region], counts[region])
        lines.append(f"{region}: total {totals[region]:.2f}, average {average:.2f}")
        print(lines[-1])
    return lines


def main(argv: list[str]) -> int:
    print(f"sales report ({len(argv)} argument(s))")
    build_report(load_sales())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
