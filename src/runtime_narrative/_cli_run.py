"""``runtime-narrative run``: run a Python program as a story.

::

    runtime-narrative run [--name NAME] [--renderer console|json|none]
                          [--app-root DIR] script.py [args ...]
    runtime-narrative run [options] -m package.module [args ...]

The program's own code (the script's directory, or the current directory
for ``-m``, unless ``--app-root`` says otherwise) is instrumented as it is
imported and run, so its functions and methods become stages. The program
runs as ``python script.py`` / ``python -m package.module`` would run it:
``__name__ == "__main__"``, ``sys.argv``, ``sys.path[0]``, stdin and stdout
are its own. Story lines go to stderr, so its stdout is unchanged.

The exit status is the program's: its ``SystemExit`` code, or 1 after an
uncaught exception, whose traceback is printed after the story's failure
block, as Python prints it (without the frames of this command).
"""

from __future__ import annotations

import argparse
import builtins
import importlib.machinery
import os
import runpy
import sys
import traceback
import types
from collections.abc import Sequence
from typing import Any

from .instrument import auto_instrument, compile_instrumented
from .story import story

__all__ = ["add_parser", "run_command"]

RENDERERS = ("console", "json", "none")
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``run`` subcommand on ``subparsers``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "run",
        help="run a Python program as a story, its functions as stages",
        description=(
            "Run a Python script (or -m module) as a story: its own functions"
            " and methods become stages, and a crash shows the failure block"
            " and diagnosis. Story lines go to stderr; the program's stdin,"
            " stdout, arguments and exit status are its own."
        ),
    )
    parser.add_argument("--name", help="the story's name (default: the program's)")
    parser.add_argument(
        "--renderer",
        action="append",
        choices=RENDERERS,
        help="where the story goes, on stderr (repeatable; default: console)",
    )
    parser.add_argument(
        "--app-root",
        action="append",
        metavar="DIR",
        help=(
            "instrument modules under DIR (repeatable; default: the script's"
            " directory, or the current directory with -m)"
        ),
    )
    parser.add_argument(
        "-m",
        dest="as_module",
        action="store_true",
        help="run a module as a script, like python -m",
    )
    parser.add_argument(
        "program",
        nargs=argparse.REMAINDER,
        metavar="script.py | module",
        help="the program, then its own arguments",
    )
    parser.set_defaults(func=run_command)
    return parser


def run_command(args: argparse.Namespace) -> int:
    """Run the program ``args`` describes; return its exit status."""
    program: list[str] = list(args.program)
    if program and program[0] == "--":
        program = program[1:]
    if not program:
        _error("give a script (script.py) or a module (-m package.module) to run")
        return 2

    target = program[0]
    if args.as_module:
        roots = args.app_root or [os.getcwd()]
        name = args.name or target
        path_entry = os.getcwd()
    else:
        if not os.path.exists(target):
            _error(f"can't open file {target!r}: no such file or directory")
            return 2
        path_entry = os.path.dirname(os.path.abspath(target))
        roots = args.app_root or [path_entry]
        name = args.name or os.path.basename(os.path.abspath(target))

    renderers = _renderers(args.renderer or ["console"])
    return _run(program, args.as_module, name, roots, path_entry, renderers)


def _run(
    program: list[str],
    as_module: bool,
    name: str,
    roots: Sequence[str],
    path_entry: str,
    renderers: list[object],
) -> int:
    saved_argv, saved_path = sys.argv, list(sys.path)
    finder = auto_instrument(app_roots=roots)
    sys.argv = list(program)
    if sys.path:
        sys.path[0] = path_entry
    else:
        sys.path.append(path_entry)
    try:
        with story(name, renderers=renderers, app_roots=roots):
            if as_module:
                runpy.run_module(program[0], run_name="__main__", alter_sys=True)
            else:
                _run_script(program[0])
    except SystemExit as exc:
        return _exit_status(exc.code)
    except KeyboardInterrupt as exc:
        _print_exception(exc)
        return 130
    except BaseException as exc:  # the program's crash, reported as Python does
        _print_exception(exc)
        return 1
    finally:
        if finder in sys.meta_path:
            sys.meta_path.remove(finder)
        sys.argv = saved_argv
        sys.path[:] = saved_path
    return 0


def _run_script(path: str) -> None:
    """Run ``path`` as ``__main__``, instrumenting its definitions as they run."""
    if not os.path.isfile(path):  # a directory or zip file with __main__.py
        runpy.run_path(path, run_name="__main__")
        return
    with open(path, "rb") as file:  # bytes: the source's coding cookie applies
        source = file.read()
    filename = os.path.abspath(path)
    code = compile_instrumented(source, filename)

    main = types.ModuleType("__main__")
    main.__file__ = filename
    main.__cached__ = None  # type: ignore[attr-defined]
    main.__loader__ = importlib.machinery.SourceFileLoader("__main__", filename)
    main.__spec__ = None
    main.__package__ = None
    main.__builtins__ = builtins  # type: ignore[attr-defined]

    saved_main = sys.modules.get("__main__")
    sys.modules["__main__"] = main
    try:
        exec(code, vars(main))
    finally:
        if saved_main is not None:
            sys.modules["__main__"] = saved_main


def _renderers(names: Sequence[str]) -> list[object]:
    renderers: list[object] = []
    for name in dict.fromkeys(names):
        if name == "console":
            from .renderers.console import ConsoleRenderer

            renderers.append(ConsoleRenderer())
        elif name == "json":
            from .renderers.json import JsonRenderer

            renderers.append(JsonRenderer(output=_Stderr()))
    return renderers


class _Stderr:
    """``sys.stderr`` as it is at each write, so the program's stdout stays its own."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _exit_status(code: object) -> int:
    """The status Python exits with for ``sys.exit(code)``."""
    if code is None:
        return 0
    if isinstance(code, int):
        return int(code)
    sys.stderr.write(f"{code}\n")
    return 1


def _print_exception(exc: BaseException) -> None:
    """Print ``exc`` as Python would, leaving out this command's own frames."""
    sys.stdout.flush()
    report = traceback.TracebackException(type(exc), exc, exc.__traceback__)
    _drop_own_frames(report, set())
    sys.stderr.write("".join(report.format()))
    sys.stderr.flush()


def _drop_own_frames(report: traceback.TracebackException, seen: set[int]) -> None:
    if id(report) in seen:
        return
    seen.add(id(report))
    report.stack = traceback.StackSummary.from_list(
        [frame for frame in report.stack if not _is_own_frame(frame.filename)]
    )
    for linked in (report.__cause__, report.__context__):
        if linked is not None:
            _drop_own_frames(linked, seen)
    for member in getattr(report, "exceptions", None) or ():
        _drop_own_frames(member, seen)


def _is_own_frame(filename: str) -> bool:
    if filename in ("<frozen runpy>", runpy.__file__):
        return True
    directory = os.path.dirname(os.path.abspath(filename))
    return directory == _PACKAGE_DIR or directory.startswith(_PACKAGE_DIR + os.sep)


def _error(message: str) -> None:
    sys.stderr.write(f"runtime-narrative run: error: {message}\n")
