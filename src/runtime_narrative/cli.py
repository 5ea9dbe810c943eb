"""The ``runtime-narrative`` command: read stored stories back.

::

    runtime-narrative failures [--last N] [--stage NAME] [--story PATTERN]
    runtime-narrative story ID
    runtime-narrative stats [--story PATTERN] [--since DURATION]
    runtime-narrative report ID -o report.html

Every subcommand takes ``--db`` (a SQLite path or a ``postgresql://`` URL;
default ``$RUNTIME_NARRATIVE_DB`` or ``runtime_narrative.db``). Bad input
gives one line on stderr and exit status 1 (2 for a usage error), never a
traceback.
"""

from __future__ import annotations

import argparse
import codecs
import io
import json
import os
import re
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, NoReturn, Optional, TextIO

from .events import STORY_BODY, json_safe
from .renderers._store import StoredStory, StoreError, StoryReader, rebuild_failure

__all__ = ["main"]

PROG = "runtime-narrative"
DEFAULT_DB = "runtime_narrative.db"
DB_ENVIRONMENT_VARIABLE = "RUNTIME_NARRATIVE_DB"

#: A stage's latest run is flagged when it took this many times its median.
SLOW_FACTOR = 2.0
#: ...and only once the stage has this many earlier runs to compare with.
SLOW_MIN_RUNS = 4

_SHORT_ID = 8


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error reported as one line."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{message} (see {self.prog} --help)")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command with ``argv`` (default: ``sys.argv[1:]``); return the
    exit status."""
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        _error(str(exc))
        return 2
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else 0
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(func(args))
    except (StoreError, _UsageError) as exc:
        _error(str(exc))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader of our output (``| head``) went away; nothing to report.
        _silence_stdout()
        return 0
    except Exception as exc:  # the promise: one line, never a traceback
        _error(f"unexpected {type(exc).__name__}: {_first_line(exc)}")
    return 1


def _error(message: str) -> None:
    sys.stderr.write(f"{PROG}: error: {message}\n")


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else ""


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        pass


# -- the parser ----------------------------------------------------------------


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Read the stories that SqliteStoryRenderer or"
        " PostgresStoryRenderer stored.",
    )
    from . import __version__

    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}"
    )
    common = _Parser(add_help=False)
    common.add_argument(
        "--db",
        default=None,
        help="a SQLite file or a postgresql:// URL (default: $"
        f"{DB_ENVIRONMENT_VARIABLE} or {DEFAULT_DB})",
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")

    failures = subparsers.add_parser(
        "failures", parents=[common], help="the most recent failures, newest first"
    )
    failures.add_argument("--last", type=_positive_int, default=10, metavar="N")
    failures.add_argument("--stage", metavar="NAME", help="stage name (LIKE pattern)")
    failures.add_argument(
        "--story", metavar="PATTERN", help="story name (LIKE pattern)"
    )
    failures.add_argument("--json", action="store_true", help="print JSON")
    failures.set_defaults(func=_cmd_failures)

    story = subparsers.add_parser(
        "story", parents=[common], help="one story: stages, failure and analysis"
    )
    story.add_argument("story_id", metavar="ID", help="a story id or its prefix")
    story.add_argument("--json", action="store_true", help="print JSON")
    story.set_defaults(func=_cmd_story)

    stats = subparsers.add_parser(
        "stats", parents=[common], help="runs, failure rate and durations per stage"
    )
    stats.add_argument("--story", metavar="PATTERN", help="story name (LIKE pattern)")
    stats.add_argument(
        "--since", metavar="DURATION", type=_duration, help="e.g. 30m, 12h, 7d, 2w"
    )
    stats.add_argument("--json", action="store_true", help="print JSON")
    stats.set_defaults(func=_cmd_stats)

    report = subparsers.add_parser(
        "report", parents=[common], help="write the HTML report of a stored story"
    )
    report.add_argument("story_id", metavar="ID", help="a story id or its prefix")
    report.add_argument(
        "-o", "--output", required=True, metavar="FILE", help="the HTML file to write"
    )
    report.set_defaults(func=_cmd_report)

    try:
        from . import _cli_run
    except ImportError:
        pass  # the run subcommand is not part of this installation
    else:
        _cli_run.add_parser(subparsers)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _duration(text: str) -> timedelta:
    match = _DURATION.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(
            f"not a duration: {text!r} (use a number and s, m, h, d or w, as in 12h)"
        )
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2).lower()])


# -- opening a store -----------------------------------------------------------


def _db_target(args: argparse.Namespace) -> str:
    return str(args.db or os.environ.get(DB_ENVIRONMENT_VARIABLE) or DEFAULT_DB)


def open_reader(target: str) -> StoryReader:
    """A reader for a SQLite path or a PostgreSQL URL; StoreError if unusable."""
    if target.startswith(("postgresql://", "postgres://")):
        try:
            from .renderers.postgres import open_postgres_reader
        except ImportError as exc:
            raise StoreError(str(exc)) from exc
        return open_postgres_reader(target)
    from .renderers.sqlite import open_sqlite_reader

    return open_sqlite_reader(target)


# -- output helpers ------------------------------------------------------------


class _Style:
    def __init__(self, stream: TextIO) -> None:
        self.color = _wants_color(stream)
        self.unicode = _can_encode(stream, "✔✘…▶—←")
        self.ok = "✔" if self.unicode else "ok"
        self.failed = "✘" if self.unicode else "x"
        self.open = "…" if self.unicode else "?"
        self.sub = "▶" if self.unicode else ">"

    def paint(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color else text

    def bold(self, text: str) -> str:
        return self.paint(text, "1")

    def red(self, text: str) -> str:
        return self.paint(text, "31")

    def green(self, text: str) -> str:
        return self.paint(text, "32")

    def dim(self, text: str) -> str:
        return self.paint(text, "2")


def _wants_color(stream: TextIO) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    if os.environ.get("TERM") == "dumb":
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _can_encode(stream: TextIO, sample: str) -> bool:
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        codecs.lookup(encoding).encode(sample)
    except (LookupError, UnicodeError):
        return False
    return True


def _when(value: Any) -> str:
    if not isinstance(value, datetime):
        return "-"
    moment: datetime = value
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _seconds(value: Any) -> str:
    if value is None:
        return "-"
    seconds = float(value)
    if seconds < 60:
        return f"{seconds:.3f}s"
    minutes, rest = divmod(seconds, 60)
    if minutes < 60:
        return f"{int(minutes)}m{rest:04.1f}s"
    hours, minutes = divmod(minutes, 60)
    return f"{int(hours)}h{int(minutes):02d}m"


def _cut(text: Any, width: int) -> str:
    value = " ".join(str(text if text is not None else "").split())
    return value if len(value) <= width else value[: width - 1] + "…"


def _table(rows: list[list[str]], header: list[str], style: _Style) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for index, row in enumerate([header, *rows]):
        cells = [cell.ljust(width) for cell, width in zip(row, widths)]
        line = "  ".join(cells).rstrip()
        lines.append(style.bold(line) if index == 0 else line)
    return "\n".join(lines) + "\n"


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(json_safe(value), indent=2, ensure_ascii=False) + "\n")


# -- failures --------------------------------------------------------------------


def _cmd_failures(args: argparse.Namespace) -> int:
    reader = open_reader(_db_target(args))
    try:
        rows = reader.failures(last=args.last, stage=args.stage, story=args.story)
    finally:
        reader.close()
    if args.json:
        _print_json([{**row, "recorded": bool(row.get("recorded"))} for row in rows])
        return 0
    if not rows:
        sys.stderr.write("no failures recorded" + _filters_note(args) + "\n")
        return 0
    style = _Style(sys.stdout)
    table = [
        [
            _when(row["occurred_at"]),
            str(row["story_id"])[:_SHORT_ID],
            _cut(row["story_name"] or "?", 28),
            _cut(_stage_label(row["stage_name"]), 28),
            _cut(_error_label(row), 60),
        ]
        for row in rows
    ]
    header = ["WHEN (UTC)", "STORY", "NAME", "STAGE", "ERROR"]
    sys.stdout.write(_table(table, header, style))
    return 0


def _error_label(row: dict[str, Any]) -> str:
    """``"Type: message"``; the outcome alone for a story failed by its status."""
    error_type, message = row.get("error_type"), row.get("error_message")
    if not error_type:
        return str(message or "failed")
    return f"{error_type}: {message}"


def _filters_note(args: argparse.Namespace) -> str:
    notes = []
    if args.stage:
        notes.append(f"stage like {args.stage!r}")
    if args.story:
        notes.append(f"story like {args.story!r}")
    return f" ({', '.join(notes)})" if notes else ""


def _stage_label(name: Any) -> str:
    return "(story body)" if name == STORY_BODY else str(name)


# -- story ---------------------------------------------------------------------


def _load_story(args: argparse.Namespace) -> StoredStory:
    reader = open_reader(_db_target(args))
    try:
        return reader.story(reader.resolve(args.story_id))
    finally:
        reader.close()


def _cmd_story(args: argparse.Namespace) -> int:
    stored = _load_story(args)
    if args.json:
        _print_json(_story_as_dict(stored))
        return 0
    style = _Style(sys.stdout)
    sys.stdout.write("\n".join(_story_lines(stored, style, 0)) + "\n")
    for failure in _all_failures(stored):
        sys.stdout.write("\n" + _failure_block(failure, style))
    return 0


def _story_as_dict(stored: StoredStory) -> dict[str, Any]:
    return {
        **stored.story,
        "stages": stored.stages,
        "failures": [_failure_row_for_json(row) for row in stored.failures],
        "sub_stories": [_story_as_dict(child) for child in stored.children],
    }


def _failure_row_for_json(row: dict[str, Any]) -> dict[str, Any]:
    data = dict(row)
    data.pop("id", None)
    raw = data.pop("diagnostics_json", None)
    try:
        data["diagnostics"] = json.loads(raw) if raw else None
    except ValueError:
        data["diagnostics"] = raw
    return data


def _all_failures(stored: StoredStory) -> list[tuple[dict[str, Any], str]]:
    found = [(row, str(stored.story.get("name") or "")) for row in stored.failures]
    for child in stored.children:
        found.extend(_all_failures(child))
    return found


def _status(story: dict[str, Any], style: _Style) -> str:
    status = story.get("status")
    success = story.get("success")
    if success is None and status in (None, "running"):
        return style.dim("not completed")
    if success:
        return style.green("succeeded")
    label = status if status and status != "success" else "failed"
    error = story.get("error_type")
    return style.red(f"{label} — {error}" if error else label)


def _story_lines(stored: StoredStory, style: _Style, level: int) -> list[str]:
    story = stored.story
    pad = "  " * level
    name = story.get("name") or "(story start not recorded)"
    lines = [
        f"{pad}{style.bold(str(name))}  [{str(story['story_id'])[:_SHORT_ID]}]"
        f"  {_status(story, style)}"
    ]
    details = [
        ("id", story.get("story_id")),
        ("started", _when(story.get("started_at")) + " UTC"),
        ("duration", _seconds(story.get("duration_seconds"))),
    ]
    if story.get("total_stages"):
        done = story.get("completed_stages") or 0
        details.append(("stages", f"{done}/{story['total_stages']} completed"))
    if story.get("outcome"):
        details.append(("outcome", story["outcome"]))
    if story.get("parent_story_id"):
        details.append(("parent", str(story["parent_story_id"])[:_SHORT_ID]))
    lines.extend(
        f"{pad}  {style.dim(label.ljust(9))}{value}" for label, value in details
    )
    lines.append("")
    lines.extend(_stage_tree(stored, style, level))
    return lines


def _stage_tree(stored: StoredStory, style: _Style, level: int) -> list[str]:
    children = list(stored.children)
    lines: list[str] = []
    if not stored.stages and not children:
        return [f"{'  ' * level}  {style.dim('(no stages)')}"]
    for stage in stored.stages:
        depth = int(stage.get("depth") or 0)
        pad = "  " * (level + 1 + depth)
        if stage.get("failed"):
            glyph, note = style.red(style.failed), style.red("failed")
        elif stage.get("completed"):
            glyph, note = style.green(style.ok), _seconds(stage.get("duration_seconds"))
        else:
            glyph, note = style.dim(style.open), style.dim("did not complete")
        name = _stage_label(stage.get("stage_name"))
        gap = " " * max(2, 44 - len(pad) - len(name))
        lines.append(f"{pad}{glyph} {name}{gap}{note}")
        # Sub-stories that started inside this stage are shown under it.
        for child in _started_within(children, stage):
            children.remove(child)
            lines.extend(_sub_story_lines(child, style, level + 2 + depth))
    for child in children:
        lines.extend(_sub_story_lines(child, style, level + 1))
    return lines


def _sub_story_lines(child: StoredStory, style: _Style, level: int) -> list[str]:
    pad = "  " * level
    story = child.story
    outcome = story.get("outcome")
    shown = f"  {outcome}" if outcome and not story.get("success") else ""
    head = (
        f"{pad}{style.sub} sub-story {style.bold(str(story.get('name') or '?'))}"
        f"  [{str(story['story_id'])[:_SHORT_ID]}]  {_status(story, style)}"
        f"{shown}  {_seconds(story.get('duration_seconds'))}"
    )
    return [head, *_stage_tree(child, style, level)]


def _started_within(
    children: list[StoredStory], stage: dict[str, Any]
) -> list[StoredStory]:
    start, end = stage.get("started_at"), stage.get("completed_at")
    if not isinstance(start, datetime):
        return []
    found = []
    for child in children:
        begun = child.story.get("started_at")
        if (
            isinstance(begun, datetime)
            and begun >= start
            and (not isinstance(end, datetime) or begun <= end)
        ):
            found.append(child)
    return found


def _failure_block(failure: tuple[dict[str, Any], str], style: _Style) -> str:
    from .renderers.console import ConsoleRenderer

    row, story_name = failure
    event = rebuild_failure(row, story_name)
    buffer = io.StringIO()
    ConsoleRenderer(output=buffer, color=style.color, show_traceback=True).handle(event)
    return buffer.getvalue()


# -- stats -----------------------------------------------------------------------


def _cmd_stats(args: argparse.Namespace) -> int:
    since = datetime.now(timezone.utc) - args.since if args.since else None
    reader = open_reader(_db_target(args))
    try:
        stage_runs = reader.stage_runs(story=args.story, since=since)
        story_runs = reader.story_runs(story=args.story, since=since)
    finally:
        reader.close()
    rows = _stats(story_runs, stage_runs)
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        sys.stderr.write("no stories recorded" + _stats_note(args) + "\n")
        return 0
    style = _Style(sys.stdout)
    table = []
    for row in rows:
        flag = ""
        if row["slower_than_usual"]:
            flag = style.red(
                f"latest {_seconds(row['latest_seconds'])}"
                f" vs usual {_seconds(row['usual_seconds'])}"
            )
        table.append(
            [
                _cut(row["story"], 28),
                _cut(
                    _stage_label(row["stage"]) if row["stage"] else "(whole story)", 28
                ),
                str(row["runs"]),
                f"{row['failure_rate'] * 100:.0f}%",
                _seconds(row["p50_seconds"]),
                _seconds(row["p95_seconds"]),
                _seconds(row["max_seconds"]),
                flag,
            ]
        )
    header = ["STORY", "STAGE", "RUNS", "FAILED", "P50", "P95", "MAX", "SLOWER"]
    sys.stdout.write(_table(table, header, style))
    return 0


def _stats_note(args: argparse.Namespace) -> str:
    notes = []
    if args.story:
        notes.append(f"story like {args.story!r}")
    if args.since:
        notes.append(f"in the last {args.since}")
    return f" ({', '.join(notes)})" if notes else ""


def _stats(
    story_runs: list[dict[str, Any]], stage_runs: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    groups: dict[tuple[str, Optional[str]], list[dict[str, Any]]] = {}
    for run in story_runs:
        groups.setdefault((str(run["story_name"]), None), []).append(
            {"duration_seconds": run["duration_seconds"], "failed": not run["success"]}
        )
    for run in stage_runs:
        key = (str(run["story_name"]), str(run["stage_name"]))
        groups.setdefault(key, []).append(run)
    result = []
    for (story, stage), runs in sorted(
        groups.items(), key=lambda item: (item[0][0], item[0][1] is not None)
    ):
        durations = [
            float(r["duration_seconds"])
            for r in runs
            if r.get("duration_seconds") is not None
        ]
        failed = sum(1 for r in runs if r.get("failed"))
        usual = _percentile(durations[:-1], 50) if len(durations) > 1 else None
        latest = durations[-1] if durations else None
        slower = (
            usual is not None
            and latest is not None
            and len(durations) - 1 >= SLOW_MIN_RUNS
            and latest > SLOW_FACTOR * usual
            and latest > max(durations[:-1])
        )
        result.append(
            {
                "story": story,
                "stage": stage,
                "runs": len(runs),
                "failures": failed,
                "failure_rate": failed / len(runs) if runs else 0.0,
                "p50_seconds": _percentile(durations, 50),
                "p95_seconds": _percentile(durations, 95),
                "max_seconds": max(durations) if durations else None,
                "latest_seconds": latest,
                "usual_seconds": usual,
                "slower_than_usual": bool(slower),
            }
        )
    return result


def _percentile(values: list[float], percent: float) -> Optional[float]:
    """The nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * percent // 100))
    return ordered[int(rank) - 1]


# -- report --------------------------------------------------------------------


def _cmd_report(args: argparse.Namespace) -> int:
    from .renderers.html import build_report, report_from_stored

    stored = _load_story(args)
    html_text = build_report(report_from_stored(stored))
    try:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(html_text)
    except OSError as exc:
        raise StoreError(f"cannot write {args.output}: {exc.strerror or exc}") from exc
    sys.stderr.write(f"wrote {args.output}\n")
    return 0
