"""The core benchmark: the cost of stories and stages, in one run.

Run from the repository root, with the project installed or ``PYTHONPATH=src``::

    python benchmarks/bench_core.py            # full run, about a minute
    python benchmarks/bench_core.py --quick    # a smoke run, a few seconds
    python benchmarks/bench_core.py --json     # the figures as one JSON document

Each figure is measured for this project and for a bare class-based context
manager (a class whose ``__enter__``/``__exit__`` do nothing) in one
subprocess of the current interpreter, and for the published
runtime-narrative 1.5.4 in a subprocess of a throwaway venv (see
``_reference.py``; ``--no-reference`` leaves it out). Both libraries run the
same measurement code below (``--worker`` mode), calling only the public API.
benchmarks/README.md says what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

HERE = Path(__file__).resolve().parent

#: Top-level modules of the optional dependencies of the ``all`` extra.
_COMMON_OPTIONAL = (
    "starlette",
    "opentelemetry",
    "prometheus_client",
    "anthropic",
    "django",
    "celery",
    "grpc",
)
OUR_OPTIONAL = (*_COMMON_OPTIONAL, "psycopg")
#: The published package's ``console`` extra installs typer; it has no postgres.
REFERENCE_OPTIONAL = (*_COMMON_OPTIONAL, "typer")

# -- what is measured, and the targets -----------------------------------------

# (key, label, unit, minimum speed-up over 1.5.4)
TIMED_FIGURES = (
    ("sync_stage", "empty sync stage, no-op renderer", "µs", 5.0),
    ("async_stage", "empty async stage, no-op renderer", "µs", 3.0),
    ("json_stage", "stage, JsonRenderer to /dev/null", "µs", 5.0),
    ("lean_failure_1", "lean failure, 1 frame deep", "µs", 5.0),
    ("lean_failure_50", "lean failure, 50 frames deep", "µs", 5.0),
)
IMPORT_TARGET_MS = 25.0
#: The statistic shown for timed figures: the best of the repeats, as timeit
#: advises, since other load on the machine only ever adds time. The median
#: is kept in the JSON output.
FIGURE = "min"
MEMORY_TARGET_BYTES = 1_000_000
MEMORY_STAGES = 100_000


# -- worker: runs in a subprocess, against one installed runtime_narrative -----


class _NoopRenderer:
    def handle(self, event: object) -> None:
        pass


class _Bare:
    def __enter__(self) -> _Bare:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    async def __aenter__(self) -> _Bare:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None


def _raise_at(depth: int) -> None:
    if depth <= 1:
        raise ValueError("benchmark failure")
    _raise_at(depth - 1)


def _timed(
    run: Callable[[int], float], *, repeats: int, min_time: float
) -> dict[str, float]:
    """Per-operation seconds, timeit style.

    ``run(n)`` performs the operation ``n`` times and returns the seconds it
    took. ``n`` grows (1, 2, 5, 10, 20, 50, ...) until one run lasts
    ``min_time``; then ``repeats`` runs are made with that ``n``. The garbage
    collector is off while a run is timed, as in ``timeit``.
    """
    number = 1
    while True:
        seconds = _collected(run, number)
        if seconds >= min_time:
            break
        for factor in (2, 5, 10):
            if _collected(run, number * factor) >= min_time:
                number *= factor
                break
        else:
            number *= 10
            continue
        break

    per_op = [_collected(run, number) / number for _ in range(repeats)]
    return {
        "median": statistics.median(per_op),
        "min": min(per_op),
        "number": number,
        "repeats": repeats,
    }


def _collected(run: Callable[[int], float], number: int) -> float:
    gc.collect()
    gc.disable()
    try:
        return run(number)
    finally:
        gc.enable()


def _sync_stages(
    story: Any, stage: Any, renderers: list[Any]
) -> Callable[[int], float]:
    def run(n: int) -> float:
        with story("bench", renderers=renderers):
            t0 = time.perf_counter()
            for _ in range(n):
                with stage("s"):
                    pass
            return time.perf_counter() - t0

    return run


def _async_stages(story: Any, stage: Any) -> Callable[[int], float]:
    async def body(n: int) -> float:
        async with story("bench", renderers=[_NoopRenderer()]):
            t0 = time.perf_counter()
            for _ in range(n):
                async with stage("s"):
                    pass
            return time.perf_counter() - t0

    def run(n: int) -> float:
        return asyncio.run(body(n))

    return run


def _failures(story: Any, stage: Any, depth: int) -> Callable[[int], float]:
    renderers = [_NoopRenderer()]

    def run(n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            try:
                with (
                    story(
                        "bench failure", renderers=renderers, failure_diagnostics="lean"
                    ),
                    stage("fail"),
                ):
                    _raise_at(depth)
            except ValueError:
                pass
        return time.perf_counter() - t0

    return run


def _bare_sync(n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        with _Bare():
            pass
    return time.perf_counter() - t0


def _bare_async(n: int) -> float:
    async def body() -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            async with _Bare():
                pass
        return time.perf_counter() - t0

    return asyncio.run(body())


def _bare_failures(depth: int) -> Callable[[int], float]:
    def run(n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            try:
                with _Bare(), _Bare():
                    _raise_at(depth)
            except ValueError:
                pass
        return time.perf_counter() - t0

    return run


def _memory(story: Any, stage: Any, stages: int) -> dict[str, int]:
    """Bytes allocated by one story of ``stages`` stages, by tracemalloc."""
    import tracemalloc

    renderers = [_NoopRenderer()]
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        with story("bench memory", renderers=renderers):
            for _ in range(stages):
                with stage("s"):
                    pass
            held = tracemalloc.get_traced_memory()[0] - base
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return {
        "stages": stages,
        "peak_bytes": peak - base,
        "held_bytes": held,
        "after_bytes": current - base,
    }


def worker(config: dict[str, Any]) -> dict[str, Any]:
    """Measure the runtime_narrative importable here; ``config`` from main()."""
    for entry in reversed(config.get("path", [])):
        sys.path.insert(0, entry)
    import runtime_narrative
    from runtime_narrative import JsonRenderer, stage, story

    repeats = int(config["repeats"])
    min_time = float(config["min_time"])

    def timed(run: Callable[[int], float]) -> dict[str, float]:
        return _timed(run, repeats=repeats, min_time=min_time)

    with open(os.devnull, "w", encoding="utf-8") as devnull:
        library = {
            "sync_stage": timed(_sync_stages(story, stage, [_NoopRenderer()])),
            "async_stage": timed(_async_stages(story, stage)),
            "json_stage": timed(_sync_stages(story, stage, [JsonRenderer(devnull)])),
            "lean_failure_1": timed(_failures(story, stage, 1)),
            "lean_failure_50": timed(_failures(story, stage, 50)),
        }
    result: dict[str, Any] = {
        "version": getattr(runtime_narrative, "__version__", "?"),
        "location": str(Path(runtime_narrative.__file__).parent),
        "python": platform.python_version(),
        "optional_missing": [
            name
            for name in config["optional"]
            if importlib.util.find_spec(name) is None
        ],
        "library": library,
        "memory": _memory(story, stage, int(config["memory_stages"])),
    }
    if config.get("bare"):
        result["bare"] = {
            "sync_stage": timed(_bare_sync),
            "async_stage": timed(_bare_async),
            "json_stage": timed(_bare_sync),
            "lean_failure_1": timed(_bare_failures(1)),
            "lean_failure_50": timed(_bare_failures(50)),
        }
    return result


# The import is timed in a fresh interpreter each time; ``sys.path`` is set
# before the clock starts.
_IMPORT_SNIPPET = """
import json, sys, time
sys.path[:0] = json.loads(sys.argv[1])
t0 = time.perf_counter()
import runtime_narrative
seconds = time.perf_counter() - t0
optional = json.loads(sys.argv[2])
loaded = sorted(m for m in optional if m in sys.modules)
print(json.dumps({"seconds": seconds, "optional_loaded": loaded}))
"""


# -- main: runs the workers, compares, prints ---------------------------------


def _our_path() -> list[str]:
    """The folder to put on ``sys.path`` so a subprocess imports our package.

    The package this interpreter would import (installed, or on PYTHONPATH),
    else the repository's ``src``.
    """
    spec = importlib.util.find_spec("runtime_narrative")
    if spec is not None and spec.origin is not None:
        return [str(Path(spec.origin).resolve().parent.parent)]
    return [str(HERE.parent / "src")]


def _clean_env() -> dict[str, str]:
    """The environment without this package's settings, so defaults apply."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("RUNTIME_NARRATIVE_")
    }


def _measure_side(
    python: str, path: list[str], config: dict[str, Any], import_runs: int
) -> dict[str, Any]:
    from _reference import run_json

    env = _clean_env()
    side: dict[str, Any] = run_json(
        python,
        [str(HERE / "bench_core.py"), "--worker", json.dumps({**config, "path": path})],
        env=env,
        isolated=True,
    )
    imports = [
        run_json(
            python,
            ["-c", _IMPORT_SNIPPET, json.dumps(path), json.dumps(config["optional"])],
            env=env,
            isolated=True,
        )
        for _ in range(import_runs + 1)
    ][1:]  # the first run may compile bytecode; it is not counted
    seconds = [run["seconds"] for run in imports]
    side["import"] = {
        "median": statistics.median(seconds),
        "min": min(seconds),
        "runs": len(seconds),
        "optional_loaded": sorted(
            {m for run in imports for m in run["optional_loaded"]}
        ),
    }
    return side


def _ratio(numerator: Optional[float], denominator: Optional[float]) -> Optional[float]:
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def compare(
    ours: dict[str, Any], reference: Optional[dict[str, Any]]
) -> list[dict[str, Any]]:
    """One row per figure: values, ratios, target and verdict."""
    rows: list[dict[str, Any]] = []
    for key, label, unit, min_speedup in TIMED_FIGURES:
        our_us = ours["library"][key][FIGURE] * 1e6
        bare_us = ours["bare"][key][FIGURE] * 1e6
        ref_us = reference["library"][key][FIGURE] * 1e6 if reference else None
        speedup = _ratio(ref_us, our_us)
        rows.append(
            {
                "figure": key,
                "label": label,
                "unit": unit,
                "bare": bare_us,
                "ours": our_us,
                "reference": ref_us,
                "ours_over_bare": _ratio(our_us, bare_us),
                "speedup": speedup,
                "target": f">= {min_speedup:g}x faster than 1.5.4",
                "result": _verdict(speedup, min_speedup),
            }
        )

    our_ms = ours["import"][FIGURE] * 1e3
    ref_ms = reference["import"][FIGURE] * 1e3 if reference else None
    rows.append(
        {
            "figure": "import",
            "label": "import runtime_narrative, all extras installed",
            "unit": "ms",
            "bare": None,
            "ours": our_ms,
            "reference": ref_ms,
            "ours_over_bare": None,
            "speedup": _ratio(ref_ms, our_ms),
            "target": f"< {IMPORT_TARGET_MS:g} ms",
            "result": "PASS" if our_ms < IMPORT_TARGET_MS else "MISS",
        }
    )

    stages = ours["memory"]["stages"]
    our_kb = ours["memory"]["peak_bytes"] / 1e3
    ref_kb = reference["memory"]["peak_bytes"] / 1e3 if reference else None
    budget = MEMORY_TARGET_BYTES * stages / MEMORY_STAGES
    rows.append(
        {
            "figure": "memory",
            "label": f"peak memory, one story of {stages:,} stages",
            "unit": "kB",
            "bare": None,
            "ours": our_kb,
            "reference": ref_kb,
            "ours_over_bare": None,
            "speedup": _ratio(ref_kb, our_kb),
            "target": f"< {budget / 1e6:g} MB",
            "result": "PASS" if ours["memory"]["peak_bytes"] < budget else "MISS",
        }
    )
    return rows


def _verdict(speedup: Optional[float], minimum: float) -> str:
    if speedup is None:
        return "SKIP (no reference)"
    return "PASS" if speedup >= minimum else "MISS"


def _fmt(value: Optional[float], suffix: str = "") -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}{suffix}"
    if value >= 10:
        return f"{value:.1f}{suffix}"
    return f"{value:.2f}{suffix}"


def print_report(
    rows: list[dict[str, Any]],
    ours: dict[str, Any],
    reference: Optional[dict[str, Any]],
) -> None:
    print(f"Python {ours['python']} on {platform.platform()}")
    print(f"ours:  runtime-narrative {ours['version']} from {ours['location']}")
    if reference is not None:
        print(
            f"1.5.4: runtime-narrative {reference['version']}"
            f" from {reference['location']}"
        )
    for name, side in (("ours", ours), ("1.5.4", reference)):
        if side is not None and side["optional_missing"]:
            missing = ", ".join(side["optional_missing"])
            print(f"note: {name} lacks optional modules: {missing}")
        if side is not None and side["import"]["optional_loaded"]:
            loaded = ", ".join(side["import"]["optional_loaded"])
            print(f"note: import runtime_narrative ({name}) imported: {loaded}")
    print()
    header = (
        f"{'figure':<48} {'bare':>7} {'ours':>9} {'1.5.4':>9}"
        f" {'ours/bare':>9} {'speed-up':>9}  {'target':<28} result"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        label = f"{row['label']} ({row['unit']})"
        print(
            f"{label:<48} {_fmt(row['bare']):>7} {_fmt(row['ours']):>9}"
            f" {_fmt(row['reference']):>9} {_fmt(row['ours_over_bare'], 'x'):>9}"
            f" {_fmt(row['speedup'], 'x'):>9}  {row['target']:<28} {row['result']}"
        )
    misses = [row["figure"] for row in rows if row["result"] == "MISS"]
    print()
    print(f"MISS: {', '.join(misses)}" if misses else "all measured targets: PASS")


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="a fast smoke run (noisy figures)"
    )
    parser.add_argument(
        "--json", action="store_true", help="print the figures as one JSON document"
    )
    parser.add_argument(
        "--no-reference",
        action="store_true",
        help="skip the published 1.5.4 (no venv, no network)",
    )
    parser.add_argument(
        "--fail-on-miss", action="store_true", help="exit 1 when a target is missed"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker is not None:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0

    sys.path.insert(0, str(HERE))
    from _reference import reference_python

    config: dict[str, Any] = {
        "repeats": 3 if args.quick else 7,
        "min_time": 0.005 if args.quick else 0.1,
        "memory_stages": 10_000 if args.quick else MEMORY_STAGES,
    }
    import_runs = 3 if args.quick else 15
    started = time.perf_counter()

    ours = _measure_side(
        sys.executable,
        _our_path(),
        {**config, "bare": True, "optional": OUR_OPTIONAL},
        import_runs,
    )
    reference = None
    if not args.no_reference:
        reference = _measure_side(
            str(reference_python()),
            [],
            {**config, "optional": REFERENCE_OPTIONAL},
            # Its import takes seconds: fewer runs keep the total near a minute.
            min(import_runs, 5),
        )
    rows = compare(ours, reference)

    if args.json:
        document = {
            "quick": args.quick,
            "seconds": time.perf_counter() - started,
            "figures": rows,
            "ours": ours,
            "reference": reference,
        }
        print(json.dumps(document, indent=2))
    else:
        print_report(rows, ours, reference)
        print(f"(measured in {time.perf_counter() - started:.0f} s)")
    missed = any(row["result"] == "MISS" for row in rows)
    return 1 if args.fail_on_miss and missed else 0


if __name__ == "__main__":
    sys.exit(main())
