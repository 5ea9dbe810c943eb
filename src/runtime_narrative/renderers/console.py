"""ConsoleRenderer: a story as readable lines on a terminal or any text stream.

Every event line starts with a ``[short_id]`` tag (the first six characters of
the story id), coloured the same for a whole story family, and is indented by
nesting depth, so a sub-story opened inside a stage reads as part of it::

    [ad8cc2] ▶ Story started: Import Customers  (3 stages)
    [ad8cc2]   ✔ Load CSV                              0.012s  [33%]
    [d17c63]     ▶ Story started: DB: INSERT customers
    [d17c63]       ✔ Execute Query                     0.021s
    [d17c63]     ✔ Story completed: DB: INSERT customers  (0.034s)
    [ad8cc2] ❌ Failure at: Insert Records
               ValueError: duplicate customer id
               Location:   examples/import_customers.py:47  insert_rows
               Chain:      ValueError ← IntegrityError
    [ad8cc2] ■ Story failed: Import Customers — ValueError  (0.031s, 1/3 stages)

A stage's completion is the hot path: its glyphs and colours are prepared once,
in the constructor, and formatting it parses nothing.
"""

from __future__ import annotations

import codecs
import logging
import os
import sys
import threading
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol

from runtime_narrative.events import (
    STORY_BODY,
    FailureOccurred,
    LLMAnalysisReady,
    LogRecorded,
    StageCompleted,
    StageStarted,
    StoryCompleted,
    StoryStarted,
)

__all__ = ["ConsoleRenderer"]

logger = logging.getLogger("runtime_narrative")

#: Visible column (after the tag) where a stage's duration ends up.
_DURATION_COLUMN = 40
_LABEL_WIDTH = 12
#: Stories started but never completed are forgotten beyond this many.
_MAX_TRACKED_STORIES = 10_000

_RESET = "\x1b[0m"
_BOLD = "\x1b[1m"
_DIM = "\x1b[2m"
_RED = "\x1b[31m"
_GREEN = "\x1b[32m"
_YELLOW = "\x1b[33m"
#: One colour per story family, picked by a stable hash of the root story id.
_FAMILY_COLOURS = (
    "\x1b[36m",
    "\x1b[35m",
    "\x1b[34m",
    "\x1b[33m",
    "\x1b[96m",
    "\x1b[95m",
)
_NO_STORY_TAG = "[------]"


class SupportsWrite(Protocol):
    """A text stream: anything with ``write(str)``."""

    def write(self, text: str, /) -> object: ...


@dataclass(frozen=True)
class _Glyphs:
    story_started: str
    stage_started: str
    ok: str
    failure: str
    story_failed: str
    cancelled: str
    analysis: str
    arrow: str
    dash: str
    levels: Mapping[str, str]
    unknown_level: str

    def sample(self) -> str:
        return "".join(
            (
                self.story_started,
                self.stage_started,
                self.ok,
                self.failure,
                self.story_failed,
                self.cancelled,
                self.analysis,
                self.arrow,
                self.dash,
                self.unknown_level,
                *self.levels.values(),
            )
        )


_UNICODE_GLYPHS = _Glyphs(
    story_started="▶",
    stage_started="▸",
    ok="✔",
    failure="❌",
    story_failed="■",
    cancelled="⊘",
    analysis="◆",
    arrow="←",
    dash="—",
    levels={
        "DEBUG": "·",
        "INFO": "ℹ",
        "WARNING": "⚠",
        "ERROR": "✖",
        "CRITICAL": "‼",
    },
    unknown_level="•",
)

_ASCII_GLYPHS = _Glyphs(
    story_started=">",
    stage_started=">",
    ok="[ok]",
    failure="[FAIL]",
    story_failed="[x]",
    cancelled="[-]",
    analysis="[*]",
    arrow="<-",
    dash="-",
    levels={
        "DEBUG": ".",
        "INFO": "[i]",
        "WARNING": "[!]",
        "ERROR": "[E]",
        "CRITICAL": "[!!]",
    },
    unknown_level="*",
)

_LEVEL_COLOURS = {
    "DEBUG": _DIM,
    "WARNING": _YELLOW,
    "ERROR": _RED,
    "CRITICAL": _BOLD + _RED,
}


class _StoryState:
    """What the renderer remembers about a running story: three small values."""

    __slots__ = ("base", "open_depth", "tag")

    def __init__(self, tag: str, base: int) -> None:
        self.tag = tag
        self.base = base
        # The depth of the innermost open stage; -1 while none is open.
        self.open_depth = -1


class ConsoleRenderer:
    """Write each event as human-readable lines.

    ``output`` is any object with ``write(str)`` (``flush()`` is called when
    present). ``None`` means ``sys.stderr`` as it is at the moment of each
    write, so redirections made after the renderer was created (such as
    pytest's ``capsys``) are honoured.

    Colour is used when ``color`` is true; when it is ``None`` it is decided
    from the environment: never when ``NO_COLOR`` is set to a non-empty value,
    always when ``FORCE_COLOR`` is, otherwise only when the stream is a TTY
    (and ``TERM`` is not ``dumb``). Unicode glyphs are used when the stream's
    encoding can encode them, ASCII ones (``>``, ``[ok]``, ``[FAIL]``, ``<-``)
    otherwise. Both choices are made once, from the stream at construction.

    Stage completions are shown (``show_stages``); stage starts are not unless
    ``show_stage_starts`` is true. The failure block shows the compressed stack
    instead of the full traceback unless ``show_traceback`` is true.

    ``log_renderer``, when given, formats every :class:`LogRecorded` event
    itself and returns the text to write. ``level_icons`` maps a log level
    name to the glyph shown in front of it, over the defaults.

    Each event is written with a single ``write()`` followed by ``flush()``,
    so lines from several threads never interleave. Events of other types are
    ignored.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        output: Optional[SupportsWrite] = None,
        log_renderer: Optional[Callable[[LogRecorded], str]] = None,
        level_icons: Optional[Mapping[str, str]] = None,
        *,
        color: Optional[bool] = None,
        show_stages: bool = True,
        show_stage_starts: bool = False,
        show_traceback: bool = False,
    ) -> None:
        self._output = output
        self._log_renderer = log_renderer
        self._show_stages = show_stages
        self._show_stage_starts = show_stage_starts
        self._show_traceback = show_traceback

        stream = output if output is not None else sys.stderr
        self._color = _wants_color(stream, color)
        glyphs = (
            _UNICODE_GLYPHS if _can_encode(stream, _UNICODE_GLYPHS) else _ASCII_GLYPHS
        )
        self._glyphs = glyphs
        self._level_icons = dict(glyphs.levels)
        if level_icons:
            self._level_icons.update({k.upper(): v for k, v in level_icons.items()})

        self._reset = _RESET if self._color else ""
        self._bold = _BOLD if self._color else ""
        self._dim = _DIM if self._color else ""
        self._story_started = self._paint(glyphs.story_started, _BOLD)
        self._stage_started = self._paint(glyphs.stage_started, _DIM)
        self._ok = self._paint(glyphs.ok, _GREEN)
        self._ok_width = len(glyphs.ok)
        self._failure = self._paint(glyphs.failure, _BOLD + _RED)
        self._story_failed = self._paint(glyphs.story_failed, _BOLD + _RED)
        self._cancelled = self._paint(glyphs.cancelled, _YELLOW)
        self._analysis = self._paint(glyphs.analysis, _BOLD)
        self._warning = self._paint(glyphs.levels["WARNING"], _YELLOW)

        self._stories: dict[str, _StoryState] = {}
        self._lock = threading.Lock()
        self._formatters: dict[type, Callable[[Any], Optional[str]]] = {
            StoryStarted: self._format_story_started,
            StageStarted: self._format_stage_started,
            StageCompleted: self._format_stage_completed,
            FailureOccurred: self._format_failure,
            StoryCompleted: self._format_story_completed,
            LLMAnalysisReady: self._format_analysis_ready,
            LogRecorded: self._format_log,
        }

    @property
    def wants_stage_started(self) -> bool:
        """False unless stage start lines are shown, so stages skip the event."""
        return self._show_stages and self._show_stage_starts

    def handle(self, event: object) -> None:
        """Write ``event``'s lines; ignore anything that is not a known event."""
        formatter = self._formatters.get(type(event))
        if formatter is None:
            return
        try:
            text = formatter(event)
        except Exception:
            logger.exception(
                "ConsoleRenderer could not format a %s event", type(event).__name__
            )
            text = f"{_NO_STORY_TAG} ? {type(event).__name__} (could not be shown)\n"
        if text:
            self._write(text)

    def _write(self, text: str) -> None:
        stream = self._output if self._output is not None else sys.stderr
        if stream is None:  # no console at all, as under pythonw
            return
        try:
            stream.write(text)
        except UnicodeEncodeError:
            # A story name or message the stream's encoding cannot hold is
            # escaped rather than lost.
            stream.write(_escape_for(stream, text))
        flush = getattr(stream, "flush", None)
        if flush is not None:
            flush()

    # -- story and stage lines -------------------------------------------------

    def _format_story_started(self, event: StoryStarted) -> str:
        state = self._track(event)
        # The module label is left to stores and filters: the runtime fills it
        # in for every story, and on each start line it would be noise.
        total = event.total_stages
        suffix = f"  {self._dim}({total} stages){self._reset}" if total else ""
        return (
            f"{state.tag} {_indent(state.base)}{self._story_started} Story started: "
            f"{self._bold}{event.story_name}{self._reset}{suffix}\n"
        )

    def _format_stage_started(self, event: StageStarted) -> Optional[str]:
        state = self._stories.get(event.story_id)
        if state is not None:
            state.open_depth = event.depth
        if not (self._show_stages and self._show_stage_starts):
            return None
        tag, base = self._tag_and_base(state, event.story_id, event.root_story_id)
        indent = _indent(base + 1 + event.depth)
        return f"{tag} {indent}{self._stage_started} {event.stage_name}\n"

    def _format_stage_completed(self, event: StageCompleted) -> Optional[str]:
        state = self._stories.get(event.story_id)
        if state is not None:
            state.open_depth = event.depth - 1
        if not self._show_stages:
            return None
        tag, base = self._tag_and_base(state, event.story_id, event.root_story_id)
        indent = _indent(base + 1 + event.depth)
        name = event.stage_name
        visible = len(indent) + self._ok_width + 1 + len(name)
        padding = " " * max(2, _DURATION_COLUMN - visible)
        duration = _format_duration(event.duration_seconds)
        return (
            f"{tag} {indent}{self._ok} {name}{padding}"
            f"{self._dim}{duration:>8}{self._reset}{self._progress(event)}\n"
        )

    def _progress(self, event: StageCompleted) -> str:
        percent = event.progress_percent
        if percent is None:
            return ""
        # The counts are read when the event carries them (not every version's
        # StageCompleted does); the percentage alone is shown otherwise.
        done = getattr(event, "completed_stages", None)
        total = getattr(event, "total_stages", None)
        counts = f"{done}/{total} " if done is not None and total else ""
        return f"  {self._dim}[{counts}{percent}%]{self._reset}"

    def _format_story_completed(self, event: StoryCompleted) -> str:
        with self._lock:
            state = self._stories.pop(event.story_id, None)
        tag, base = self._tag_and_base(state, event.story_id, event.root_story_id)
        glyphs = self._glyphs

        if event.success:
            glyph, verb = self._ok, "completed"
        elif event.status in ("cancelled", "interrupted"):
            glyph, verb = self._cancelled, event.status
        else:
            glyph, verb = self._story_failed, "failed"

        notes = [] if event.success or not event.error_type else [event.error_type]
        if event.outcome:
            notes.append(event.outcome)
        note = "".join(f" {glyphs.dash} {n}" for n in notes)

        timing = _format_duration(event.duration_seconds)
        if not event.success and event.total_stages:
            timing += f", {event.completed_stages}/{event.total_stages} stages"
        return (
            f"{tag} {_indent(base)}{glyph} Story {verb}: "
            f"{self._bold}{event.story_name}{self._reset}{note}"
            f"  {self._dim}({timing}){self._reset}\n"
        )

    # -- failures and analyses -------------------------------------------------

    def _format_failure(self, event: FailureOccurred) -> str:
        state = self._stories.get(event.story_id)
        tag, base = self._tag_and_base(state, event.story_id, event.root_story_id)
        recorded = "  (recorded; the story continues)" if event.recorded else ""
        header = (
            f"{tag} {_indent(base)}{self._failure} Failure at: "
            f"{self._bold}{_stage_label(event.stage_name)}{self._reset}{recorded}"
        )
        pad = " " * (len(_NO_STORY_TAG) + 1) + _indent(base + 1)
        lines = [header, *self._failure_details(event, pad)]
        return "\n".join(lines) + "\n"

    def _failure_details(self, event: FailureOccurred, pad: str) -> list[str]:
        error = f"{self._bold}{_RED if self._color else ''}{event.error_type}"
        message = f": {event.error_message}" if event.error_message else ""
        lines = [f"{pad}{error}{self._reset}{message}"]

        if event.filename:
            shown = _display_path(event.filename)
            where = f"{shown}:{event.lineno}" if event.lineno else shown
            function = f"  {event.function}" if event.function else ""
            lines.append(self._labelled(pad, "Location:", where + function))
        if event.source_line:
            lines.append(self._labelled(pad, "Code:", event.source_line.strip()))
        chain = _chain_types(event)
        if len(chain) > 1:
            arrow = f" {self._glyphs.arrow} "
            lines.append(self._labelled(pad, "Chain:", arrow.join(chain)))
        lines.extend(self._group_lines(event, pad))
        if event.source_snippet:
            lines.append(self._labelled(pad, "Snippet:", ""))
            lines.extend(_block(event.source_snippet, pad + "    "))
        lines.extend(self._stack_lines(event, pad))
        if event.locals_by_frame:
            lines.append(self._labelled(pad, "Locals:", ""))
            lines.extend(_locals_lines(event.locals_by_frame, pad + "  "))
        if self._show_traceback and event.traceback_text:
            cut = "  (truncated)" if event.traceback_truncated else ""
            lines.append(self._labelled(pad, "Traceback:", cut.strip()))
            lines.extend(_block(event.traceback_text, pad + "    "))
        if event.redaction_removed_keys:
            removed = f"{event.redaction_removed_keys} value(s) hidden by key name"
            lines.append(self._labelled(pad, "Redacted:", removed))

        lines.extend(self._analysis_lines(event.rules_analysis, None, pad))
        lines.extend(self._analysis_lines(event.llm_analysis, "LLM analysis:", pad))
        return lines

    def _stack_lines(self, event: FailureOccurred, pad: str) -> list[str]:
        summary = event.compressed_stack_summary.strip()
        if not summary:
            return []
        if "\n" not in summary:
            return [self._labelled(pad, "Stack:", summary)]
        return [self._labelled(pad, "Stack:", ""), *_block(summary, pad + "    ")]

    def _group_lines(self, event: FailureOccurred, pad: str) -> list[str]:
        if not event.exception_group:
            return []
        lines = [self._labelled(pad, "Group:", f"{len(event.exception_group)} errors")]
        for member in event.exception_group:
            lines.append(f"{pad}    - {_member_summary(member)}")
        return lines

    def _analysis_lines(
        self, analysis: Optional[str], label: Optional[str], pad: str
    ) -> list[str]:
        if not analysis or not analysis.strip():
            return []
        lines = [""]
        if label:
            lines.append(f"{pad}{self._dim}{label}{self._reset}")
        lines.extend(_markdown_lines(analysis, pad, self._bold, self._reset))
        return lines

    def _format_analysis_ready(self, event: LLMAnalysisReady) -> str:
        state = self._stories.get(event.story_id)
        tag, base = self._tag_and_base(state, event.story_id, event.root_story_id)
        stage = _stage_label(event.stage_name)
        indent = _indent(base)
        if event.abandoned:
            return (
                f"{tag} {indent}{self._warning} Analysis for {stage} did not finish\n"
            )
        if not event.llm_analysis or not event.llm_analysis.strip():
            return (
                f"{tag} {indent}{self._analysis} Analysis for {stage}: none returned\n"
            )
        header = f"{tag} {indent}{self._analysis} Analysis for {self._bold}{stage}"
        pad = " " * (len(_NO_STORY_TAG) + 1) + _indent(base + 1)
        body = _markdown_lines(event.llm_analysis, pad, self._bold, self._reset)
        return "\n".join([header + self._reset, *body]) + "\n"

    # -- log records -----------------------------------------------------------

    def _format_log(self, event: LogRecorded) -> Optional[str]:
        if self._log_renderer is not None:
            custom = self._render_log_with_callable(event)
            if custom is not None:
                return custom if not custom or custom.endswith("\n") else custom + "\n"

        state = self._stories.get(event.story_id) if event.story_id else None
        if event.story_id is None:
            tag, level = _NO_STORY_TAG, 0
        else:
            tag, base = self._tag_and_base(state, event.story_id, event.root_story_id)
            # Inside the innermost open stage, one level below its own line.
            level = base + 2 + state.open_depth if state is not None else base + 1

        name = str(event.level).upper()
        icon = self._level_icons.get(name, self._glyphs.unknown_level)
        colour = _LEVEL_COLOURS.get(name, "") if self._color else ""
        reset = self._reset if colour else ""
        fields = "".join(f"  {k}={_field_value(v)}" for k, v in event.fields.items())
        pad = " " * (len(_NO_STORY_TAG) + 1) + _indent(level + 1)
        message = "\n".join(_continued(event.message, pad))
        lines = [
            f"{tag} {_indent(level)}{colour}{icon} {name}{reset} "
            f"{event.logger_name}: {message}{self._dim}{fields}{self._reset}"
        ]
        if event.exc_text:
            lines.extend(_block(event.exc_text, pad))
        return "\n".join(lines) + "\n"

    def _render_log_with_callable(self, event: LogRecorded) -> Optional[str]:
        render = self._log_renderer
        if render is None:
            return None
        try:
            return str(render(event))
        except Exception:
            # Like a failing hook, a failing formatter is switched off once and
            # reported once, rather than on every later record.
            self._log_renderer = None
            logger.exception(
                "ConsoleRenderer's log_renderer raised; "
                "log records now use the default format"
            )
            return None

    # -- helpers ---------------------------------------------------------------

    def _track(self, event: StoryStarted) -> _StoryState:
        parent = (
            self._stories.get(event.parent_story_id) if event.parent_story_id else None
        )
        if parent is not None:
            # A sub-story sits one level below the parent's innermost open stage.
            base = parent.base + 2 + parent.open_depth
        else:
            base = 1 if event.parent_story_id else 0
        family = event.root_story_id or event.parent_story_id or event.story_id
        state = _StoryState(self._tag(event.story_id, family), base)
        with self._lock:
            while len(self._stories) >= _MAX_TRACKED_STORIES:
                del self._stories[next(iter(self._stories))]
            self._stories[event.story_id] = state
        return state

    def _tag_and_base(
        self, state: Optional[_StoryState], story_id: str, root_story_id: Optional[str]
    ) -> tuple[str, int]:
        if state is not None:
            return state.tag, state.base
        return self._tag(story_id, root_story_id or story_id), 0

    def _tag(self, story_id: str, family: str) -> str:
        text = f"[{str(story_id)[:6]}]"
        if not self._color:
            return text
        key = str(family).encode("utf-8", "surrogatepass")
        colour = _FAMILY_COLOURS[zlib.crc32(key) % len(_FAMILY_COLOURS)]
        return f"{colour}{text}{_RESET}"

    def _paint(self, text: str, colour: str) -> str:
        return f"{colour}{text}{_RESET}" if self._color else text

    def _labelled(self, pad: str, label: str, value: str) -> str:
        if not value:
            return f"{pad}{self._dim}{label}{self._reset}"
        gap = " " * max(1, _LABEL_WIDTH - len(label))
        return f"{pad}{self._dim}{label}{self._reset}{gap}{value}"


def _indent(level: int) -> str:
    return "  " * level


def _stage_label(stage_name: str) -> str:
    return "(story body)" if stage_name == STORY_BODY else stage_name


def _format_duration(seconds: float) -> str:
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.3f}s"
    minutes, rest = divmod(seconds, 60)
    if minutes < 60:
        return f"{int(minutes)}m{rest:04.1f}s"
    hours, minutes = divmod(minutes, 60)
    return f"{int(hours)}h{int(minutes):02d}m"


def _chain_types(event: FailureOccurred) -> list[str]:
    """The chain's exception types, outermost first."""
    if event.chain:
        return [
            str(link.get("short_type") or link.get("error_type") or "?")
            for link in event.chain
        ]
    if not event.exception_chain:
        return []
    # The text form is "ValueError: msg <- IntegrityError: msg"; a message that
    # itself contains " <- " can mislead this split, which is why the data form
    # above is preferred.
    return [
        part.split(":", 1)[0].strip() for part in event.exception_chain.split(" <- ")
    ]


def _member_summary(member: Mapping[str, Any]) -> str:
    kind = member.get("short_type") or member.get("error_type") or "?"
    message = member.get("message") or member.get("error_message") or ""
    return f"{kind}: {message}" if message else str(kind)


def _block(text: str, pad: str) -> list[str]:
    """``text``'s lines, each indented by ``pad``; blank lines stay empty."""
    return [
        f"{pad}{line}" if line.strip() else "" for line in text.rstrip().split("\n")
    ]


def _continued(text: str, pad: str) -> list[str]:
    first, *rest = str(text).split("\n")
    return [first, *(f"{pad}{line}" for line in rest)]


def _locals_lines(locals_by_frame: Mapping[str, Any], pad: str) -> list[str]:
    lines = []
    for key, frame in locals_by_frame.items():
        if not isinstance(frame, Mapping):
            lines.append(f"{pad}{key}: {frame}")
            continue
        where = f"{frame.get('filename', '?')}:{frame.get('lineno', '?')}"
        lines.append(f"{pad}{frame.get('function', key)}  {where}")
        variables = frame.get("locals")
        if isinstance(variables, Mapping):
            lines.extend(
                f"{pad}  {name} = {value}" for name, value in variables.items()
            )
    return lines


def _markdown_lines(text: str, pad: str, bold: str, reset: str) -> list[str]:
    """Headings at ``pad``, their text indented two more; no blank runs."""
    lines: list[str] = []
    body_pad = pad
    for raw in text.strip().split("\n"):
        line = raw.rstrip()
        if line.lstrip().startswith("#"):
            if lines and lines[-1]:
                lines.append("")
            lines.append(f"{pad}{bold}{line.strip()}{reset}")
            body_pad = pad + "  "
        elif not line.strip():
            if lines and lines[-1]:
                lines.append("")
        else:
            lines.append(f"{body_pad}{line}")
    return lines


def _field_value(value: Any) -> str:
    if isinstance(value, str) and value and not any(c.isspace() for c in value):
        return value
    try:
        return repr(value)
    except Exception:  # a user's __repr__ may raise anything
        return f"<{type(value).__name__}>"


def _wants_color(stream: object, color: Optional[bool]) -> bool:
    if color is not None:
        return color
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    if os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    if isatty is None:
        return False
    try:
        return bool(isatty())
    except Exception:  # a closed or detached stream answers with an error
        return False


def _escape_for(stream: object, text: str) -> str:
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        codecs.lookup(encoding)
    except (LookupError, TypeError):
        encoding = "ascii"
    return text.encode(encoding, "backslashreplace").decode(encoding, "replace")


def _can_encode(stream: object, glyphs: _Glyphs) -> bool:
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        codecs.lookup(encoding).encode(glyphs.sample())
    except (LookupError, UnicodeError, TypeError):
        return False
    return True


def _display_path(filename: str) -> str:
    """A path under the working directory is shown relative to it."""
    try:
        relative = os.path.relpath(filename)
    except ValueError:  # another drive on Windows
        return filename
    return filename if relative.startswith("..") else relative
