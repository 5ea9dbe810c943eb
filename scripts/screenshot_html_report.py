"""Render an HTML report in headless Chromium: a screenshot, or the DOM.

    python scripts/screenshot_html_report.py report.html --screenshot shot.png
    python scripts/screenshot_html_report.py report.html --dump-dom

The browser runs with a fresh profile in a temporary directory and with its
background network features off; the report itself loads nothing.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser")


def find_chromium() -> Optional[str]:
    """The Chromium executable, or None when none is installed."""
    for candidate in CHROMIUM_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


def run_chromium(
    report: Path, *, screenshot: Optional[Path] = None, dump_dom: bool = False
) -> str:
    """Run headless Chromium on ``report``; return what it printed (the DOM)."""
    chromium = find_chromium()
    if chromium is None:
        raise FileNotFoundError("chromium is not installed")
    with tempfile.TemporaryDirectory(prefix="rn-chromium-") as profile:
        command = [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--window-size=1200,1600",
        ]
        if screenshot is not None:
            command.append(f"--screenshot={screenshot.resolve()}")
        if dump_dom:
            command.append("--dump-dom")
        command.append(report.resolve().as_uri())
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=60, check=False
        )
    if result.returncode != 0:
        raise RuntimeError(f"chromium exited with {result.returncode}: {result.stderr}")
    return result.stdout


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("--screenshot", type=Path)
    parser.add_argument("--dump-dom", action="store_true")
    args = parser.parse_args(argv)
    if args.screenshot is None and not args.dump_dom:
        args.screenshot = args.report.with_suffix(".png")
    output = run_chromium(
        args.report, screenshot=args.screenshot, dump_dom=args.dump_dom
    )
    if args.dump_dom:
        sys.stdout.write(output)
    if args.screenshot is not None:
        sys.stderr.write(f"wrote {args.screenshot}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
