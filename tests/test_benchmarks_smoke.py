"""benchmarks/bench_core.py runs and reports every figure (no timing asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks" / "bench_core.py"

FIGURES = (
    "sync_stage",
    "async_stage",
    "json_stage",
    "lean_failure_1",
    "lean_failure_50",
    "import",
    "memory",
)
LABELS = (
    "empty sync stage, no-op renderer",
    "empty async stage, no-op renderer",
    "stage, JsonRenderer to /dev/null",
    "lean failure, 1 frame deep",
    "lean failure, 50 frames deep",
    "import runtime_narrative, all extras installed",
    "peak memory, one story of 10,000 stages",
)


def _run_quick(*extra: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "src"), *filter(None, [env.get("PYTHONPATH")])]
    )
    return subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--no-reference", *extra],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=100,
        check=False,
    )


def test_quick_run_prints_every_figure_with_its_target() -> None:
    result = _run_quick()

    assert result.returncode == 0, result.stderr
    for label in LABELS:
        assert label in result.stdout
    assert "building a venv" not in result.stderr
    assert "SKIP (no reference)" in result.stdout
    assert "< 25 ms" in result.stdout


def test_quick_json_run_has_every_figure_measured_for_us_and_bare() -> None:
    result = _run_quick("--json")

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    rows = {row["figure"]: row for row in document["figures"]}
    assert tuple(rows) == FIGURES
    assert document["reference"] is None
    for name in FIGURES:
        assert rows[name]["ours"] > 0
        assert rows[name]["reference"] is None
    for name in FIGURES[:5]:
        assert rows[name]["bare"] > 0
        assert rows[name]["ours_over_bare"] > 0
    assert document["ours"]["memory"]["stages"] == 10_000
    assert document["ours"]["import"]["optional_loaded"] == []
