"""The published runtime-narrative 1.5.4, in a throwaway venv, to measure against.

The venv is built once with ``python -m venv`` and pip, under the system temp
directory in a folder named after the version and the Python it was built
with, and reused by later runs. Only the published package's public API is
called, from a measurement script run in that venv as a subprocess; the
script prints one JSON document on its last line of output.

Other benchmarks may import this module::

    from _reference import reference_python, run_json

    numbers = run_json(reference_python(), ["my_bench.py", "--worker"], isolated=True)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

__all__ = [
    "REFERENCE_REQUIREMENT",
    "REFERENCE_VERSION",
    "reference_dir",
    "reference_python",
    "run_json",
]

REFERENCE_VERSION = "1.5.4"
#: Installed with every extra, so its import time is measured like ours.
REFERENCE_REQUIREMENT = f"runtime-narrative[all]=={REFERENCE_VERSION}"

_MARKER = "reference-ready.json"
_INSTALL_TIMEOUT = 600.0


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def reference_dir() -> Path:
    """Where the venv lives: one folder per published version and Python."""
    tag = f"py{sys.version_info[0]}{sys.version_info[1]}"
    name = f"runtime-narrative-{REFERENCE_VERSION}-reference-{tag}"
    return Path(tempfile.gettempdir()) / name


def _venv_python(venv: Path) -> Path:
    if os.name == "nt":
        return venv / "Scripts" / "python.exe"
    return venv / "bin" / "python"


def _is_ready(venv: Path) -> bool:
    marker = venv / _MARKER
    if not marker.is_file() or not _venv_python(venv).exists():
        return False
    try:
        recorded = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(
        recorded.get("requirement") == REFERENCE_REQUIREMENT
        and recorded.get("python") == sys.version
    )


def reference_python() -> Path:
    """The venv's interpreter, building the venv first when it is missing.

    A venv left half-built by an interrupted run has no marker file and is
    built again from scratch.
    """
    venv = reference_dir()
    if _is_ready(venv):
        return _venv_python(venv)

    _say(f"building a venv with {REFERENCE_REQUIREMENT} in {venv} (once)")
    if venv.exists():
        shutil.rmtree(venv)
    _run([sys.executable, "-m", "venv", str(venv)])
    python = _venv_python(venv)
    _run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            REFERENCE_REQUIREMENT,
        ]
    )

    marker = {"requirement": REFERENCE_REQUIREMENT, "python": sys.version}
    (venv / _MARKER).write_text(json.dumps(marker), encoding="utf-8")
    return python


def _run(argv: Sequence[str]) -> None:
    result = subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        timeout=_INSTALL_TIMEOUT,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} failed with exit code {result.returncode}:\n"
            f"{result.stdout[-2000:]}{result.stderr[-4000:]}"
        )


def run_json(
    python: Path | str,
    argv: Sequence[str],
    *,
    env: Optional[Mapping[str, str]] = None,
    isolated: bool = False,
    timeout: float = 600.0,
) -> Any:
    """Run ``python argv...`` and return the JSON on its last line of stdout.

    ``isolated`` adds ``-I``: no PYTHONPATH, no user site, no script folder on
    ``sys.path``, so the reference venv sees only what is installed in it.
    ``env`` replaces the environment (``None`` keeps the current one).
    """
    command = [str(python), *(["-I"] if isolated else []), *argv]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=dict(env) if env is not None else None,
        timeout=timeout,
        check=False,
    )
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        raise RuntimeError(
            f"{' '.join(command[:3])} ... failed with exit code"
            f" {result.returncode}:\n{result.stderr[-4000:]}"
        )
    return json.loads(lines[-1])
