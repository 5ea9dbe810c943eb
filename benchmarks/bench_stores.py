"""Per-stage cost of SqliteStoryRenderer and RotatingJsonRenderer.

Each renderer runs the same story (one story of many stages) in the same
process, next to a renderer that does nothing; the figures are the cost per
stage and its ratio to the no-op renderer's.

    python benchmarks/bench_stores.py [--stages 20000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Callable

from runtime_narrative import RotatingJsonRenderer, SqliteStoryRenderer, stage, story


class NoOpRenderer:
    def handle(self, event: object) -> None:
        pass


def per_stage(renderer: object, stages: int) -> float:
    start = time.perf_counter()
    with story("bench", renderers=[renderer]):
        for _ in range(stages):
            with stage("step"):
                pass
    return (time.perf_counter() - start) / stages


def best(make: Callable[[], object], stages: int, repeat: int) -> float:
    return min(per_stage(make(), stages) for _ in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        counter = iter(range(1_000_000))
        results = {
            "no-op renderer": best(NoOpRenderer, args.stages, args.repeat),
            "SqliteStoryRenderer": best(
                lambda: SqliteStoryRenderer(folder / f"{next(counter)}.db"),
                args.stages,
                args.repeat,
            ),
            "RotatingJsonRenderer": best(
                lambda: RotatingJsonRenderer(folder / "bench.jsonl"),
                args.stages,
                args.repeat,
            ),
        }
    baseline = results["no-op renderer"]
    print(f"{args.stages} stages per story, best of {args.repeat}")
    for name, seconds in results.items():
        print(f"{name:<22} {seconds * 1e6:8.2f} µs/stage  {seconds / baseline:6.1f}x")


if __name__ == "__main__":
    main()
