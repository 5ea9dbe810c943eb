"""``runtime-narrative run``: a program run as a story."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Optional

import pytest

from runtime_narrative import _cli_run

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SRC = ROOT / "src"


def run(
    *args: str, stdin: str = "", cwd: Optional[Path] = None
) -> subprocess.CompletedProcess[str]:
    """``python -m runtime_narrative run ARGS`` in a fresh interpreter."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(SRC), *filter(None, [env.get("PYTHONPATH")])]
    )
    env.pop("RUNTIME_NARRATIVE_RICH_LOG_CONSOLE", None)
    env["NO_COLOR"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    return subprocess.run(
        [sys.executable, "-m", "runtime_narrative", "run", *args],
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=cwd or ROOT,
        env=env,
        timeout=60,
        check=False,
    )


def plain_python(
    script: Path, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script), *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def write(directory: Path, relative: str, source: str) -> Path:
    path = directory / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return path


# -- the examples -------------------------------------------------------------------


def test_failing_script_shows_stages_failure_block_and_keeps_its_status() -> None:
    script = EXAMPLES / "failing_report.py"
    expected = plain_python(script, "--month", "may")

    result = run(str(script), "--month", "may")

    assert expected.returncode == 1
    assert result.returncode == 1
    assert result.stdout == expected.stdout
    stderr = result.stderr
    for line in (
        "Story started: failing_report.py",
        "✔ Load Sales",
        "✔ SalesLedger.totals",
        "Failure at: Average Order Value",
        "ZeroDivisionError: float division by zero",
        "Story failed: failing_report.py",
    ):
        assert line in stderr
    # Python's own traceback comes after the failure block, without our frames.
    traceback_text = stderr[stderr.index("Traceback (most recent call last)") :]
    assert stderr.index("Failure at:") < stderr.index("Traceback")
    assert traceback_text.rstrip().endswith("ZeroDivisionError: float division by zero")
    assert "runtime_narrative" not in traceback_text
    assert "runpy" not in traceback_text
    assert 'failing_report.py", line' in traceback_text


def test_passing_script_output_is_unchanged_and_story_goes_to_stderr() -> None:
    script = EXAMPLES / "passing_report.py"
    expected = plain_python(script, stdin="3\n4\n5\n")

    result = run(str(script), stdin="3\n4\n5\n")

    assert result.returncode == expected.returncode == 0
    assert result.stdout == expected.stdout == "count 3\nsum 12\nmean 4\n"
    assert expected.stderr == ""
    assert "✔ Read Numbers" in result.stderr
    assert "✔ Summary.add" in result.stderr
    assert "Story completed: passing_report.py" in result.stderr


# -- what the program sees ------------------------------------------------------------


def test_main_semantics_argv_path_and_pickling_are_preserved(tmp_path: Path) -> None:
    write(tmp_path, "sibling.py", "def helper():\n    return 'helped'\n")
    script = write(
        tmp_path,
        "prog.py",
        """
        import pickle
        import sys

        import sibling


        def double(x):
            return 2 * x


        if __name__ == "__main__":
            print(__name__, sys.argv[1:], sys.argv[0] == __file__)
            print(sys.path[0] == __import__("os").path.dirname(__file__))
            print(sys.modules["__main__"].double is double)
            print(pickle.loads(pickle.dumps(double))(21))
            print(sibling.helper(), input())
        """,
    )

    result = run(str(script), "-x", "--flag", "value", stdin="typed\n")

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "__main__ ['-x', '--flag', 'value'] True",
        "True",
        "True",
        "42",
        "helped typed",
    ]
    assert "✔ Double" in result.stderr
    assert "✔ Helper" in result.stderr


@pytest.mark.parametrize(
    ("body", "status", "stderr_line"),
    [
        ("sys.exit(3)", 3, None),
        ("sys.exit(0)", 0, None),
        ("sys.exit()", 0, None),
        ("sys.exit('bad input')", 1, "bad input"),
        ("raise KeyboardInterrupt", 130, "KeyboardInterrupt"),
    ],
)
def test_exit_status_is_the_programs(
    tmp_path: Path, body: str, status: int, stderr_line: Optional[str]
) -> None:
    script = write(tmp_path, "exits.py", f"import sys\nprint('before')\n{body}\n")

    result = run(str(script))

    assert result.returncode == status
    assert result.stdout == "before\n"
    if stderr_line is not None:
        assert stderr_line in result.stderr


def test_module_mode_runs_package_main_with_its_modules_as_stages(
    tmp_path: Path,
) -> None:
    write(tmp_path, "shop/__init__.py", "")
    write(
        tmp_path,
        "shop/orders.py",
        """
        class Cart:
            def total(self, prices):
                return sum(prices)
        """,
    )
    write(
        tmp_path,
        "shop/__main__.py",
        """
        import sys

        from shop.orders import Cart


        def checkout(args):
            return Cart().total(int(a) for a in args)


        if __name__ == "__main__":
            print(__name__, sys.argv[0].endswith("__main__.py"), checkout(sys.argv[1:]))
            sys.exit(4)
        """,
    )

    result = run("--name", "Checkout", "-m", "shop", "1", "2", cwd=tmp_path)

    assert result.returncode == 4, result.stderr
    assert result.stdout == "__main__ True 3\n"
    assert "Story started: Checkout" in result.stderr
    assert "✔ Cart.total" in result.stderr
    assert "✔ Checkout" in result.stderr


def test_module_mode_failure_shows_the_failure_block(tmp_path: Path) -> None:
    write(
        tmp_path,
        "jobs.py",
        """
        def parse(value):
            return int(value)

        parse("twelve")
        """,
    )

    result = run("-m", "jobs", cwd=tmp_path)

    assert result.returncode == 1
    assert "Failure at: Parse" in result.stderr
    assert result.stderr.rstrip().endswith(
        "ValueError: invalid literal for int() with base 10: 'twelve'"
    )


def test_json_renderer_writes_events_to_stderr(tmp_path: Path) -> None:
    script = write(tmp_path, "job.py", "def work():\n    print('out')\n\nwork()\n")

    result = run("--renderer", "json", str(script))

    events = [json.loads(line) for line in result.stderr.splitlines()]
    assert result.returncode == 0
    assert result.stdout == "out\n"
    assert [event["event"] for event in events] == [
        "StoryStarted",
        "StageStarted",
        "StageCompleted",
        "StoryCompleted",
    ]
    assert events[1]["stage_name"] == "Work"


def test_a_missing_script_is_a_usage_error() -> None:
    result = run("no/such/script.py")

    assert result.returncode == 2
    assert "can't open file" in result.stderr


# -- in process ------------------------------------------------------------------


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="runtime-narrative")
    _cli_run.add_parser(parser.add_subparsers())
    return parser.parse_args(["run", *argv])


def test_add_parser_registers_run_with_its_function() -> None:
    args = parse(["--name", "N", "--renderer", "none", "-m", "pkg.mod", "--flag"])

    assert args.func is _cli_run.run_command
    assert args.name == "N"
    assert args.as_module is True
    assert args.program == ["pkg.mod", "--flag"]


def test_run_command_restores_the_interpreter_state(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = write(tmp_path, "quiet.py", "import sys\nprint(sys.argv[1])\n")
    argv, path, meta_path = list(sys.argv), list(sys.path), list(sys.meta_path)
    main = sys.modules["__main__"]

    status = _cli_run.run_command(parse(["--renderer", "none", str(script), "arg"]))

    assert status == 0
    assert capsys.readouterr().out == "arg\n"
    assert (sys.argv, sys.path, sys.meta_path) == (argv, path, meta_path)
    assert sys.modules["__main__"] is main


def test_run_without_a_program_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = _cli_run.run_command(parse([]))

    assert status == 2
    assert "give a script" in capsys.readouterr().err
