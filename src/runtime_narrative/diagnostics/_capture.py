"""capture(): one exception, walked once, into plain FailureDiagnostics data.

Every step is guarded on its own: a step that fails leaves its part empty and
sets ``capture_error``, and the rest is still captured. Nothing here raises
into the program whose failure is being described.
"""

from __future__ import annotations

import functools
import linecache
import logging
import os
import sys
import sysconfig
import traceback
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import Any, Callable, Optional, TypeVar

from ._model import ChainLink, FailureDiagnostics, FrameInfo
from .config import FailureDiagnosticsConfig
from .redact import REDACTED, Redactor
from .saferepr import SafeRepr

__all__ = ["capture"]

logger = logging.getLogger("runtime_narrative")

_T = TypeVar("_T")

MAX_CHAIN_LINKS = 20
MAX_FRAMES = 200
MAX_GROUP_MEMBERS = 50
MAX_GROUP_DEPTH = 4
MAX_MESSAGE_CHARS = 2_000
MAX_LINE_CHARS = 240
MAX_ATTRIBUTE_CHARS = 300
_REDACTION_MARGIN = 512
_OUTERMOST_KEPT = 20
_FOLD_NAMES_SHOWN = 3

_APP_PSEUDO_FILES = ("<stdin>", "<console>", "<doctest", "<ipython-input")
_CAUSE_SEPARATOR = (
    "\nThe above exception was the direct cause of the following exception:\n\n"
)
_CONTEXT_SEPARATOR = (
    "\nDuring handling of the above exception, another exception occurred:\n\n"
)


@dataclass(frozen=True)
class _Place:
    """Where a file belongs, decided once per file name."""

    kind: str
    """``app``, ``library``, ``stdlib``, or ``own`` for this package."""
    display: str
    """A short path: relative to its app root, site-packages or stdlib."""
    package: str
    """The top-level package or module, for folded stack runs."""


@dataclass(frozen=True)
class _RawFrame:
    frame: FrameType
    filename: str
    lineno: int
    function: str
    place: _Place


def capture(exc: BaseException, config: FailureDiagnosticsConfig) -> FailureDiagnostics:
    """Describe ``exc`` as plain, redacted, bounded data. Never raises."""
    try:
        return _Capture(exc, config).run()
    except Exception as error:
        logger.warning("failure diagnostics capture failed", exc_info=True)
        return _minimal(exc, f"capture: {type(error).__name__}")


def _minimal(exc: BaseException, capture_error: str) -> FailureDiagnostics:
    """What is still known when capture as a whole failed."""
    error_type = str(getattr(type(exc), "__name__", "BaseException"))
    return FailureDiagnostics(
        error_type=error_type,
        error_message="",
        filename=None,
        lineno=None,
        function=None,
        source_line=None,
        exception_chain=error_type,
        exact_cause=f"{error_type} raised",
        traceback_text="",
        diagnostics_mode="lean",
        primary_frame_reason="innermost",
        frames=(),
        source_snippet=None,
        compressed_stack_summary="",
        hidden_frame_count=0,
        traceback_truncated=False,
        locals_by_frame=None,
        redaction_removed_keys=0,
        capture_error=capture_error,
    )


class _Capture:
    def __init__(self, exc: BaseException, config: FailureDiagnosticsConfig) -> None:
        self.exc = exc
        self.config = config
        self.errors: list[str] = []
        # Replaced by the config's redactor in run(); this one stands in only
        # if building that fails.
        self.redactor = _fallback_redactor()

    def step(self, name: str, default: _T, func: Callable[[], _T]) -> _T:
        try:
            return func()
        except Exception as error:
            logger.warning("failure diagnostics: %s failed", name, exc_info=True)
            self.errors.append(f"{name}: {type(error).__name__}")
            return default

    def run(self) -> FailureDiagnostics:
        exc, config = self.exc, self.config
        self.redactor = self.step("redactor", self.redactor, lambda: _redactor(config))
        mode = self.step("mode", "lean", lambda: config.effective_mode)
        error_type = self.step("error type", "BaseException", lambda: _short_name(exc))
        message = self.step("message", "", lambda: _message(exc, self.redactor))

        no_frames: tuple[list[_RawFrame], int] = ([], 0)
        raw, omitted = self.step("frames", no_frames, lambda: _walk_frames(exc, config))
        no_primary: tuple[Optional[int], str] = (None, "innermost")
        primary, reason = self.step("primary", no_primary, lambda: _primary(raw))
        frames: list[FrameInfo] = self.step(
            "frame lines", [], lambda: _frame_infos(raw, primary, self.redactor)
        )
        where = raw[primary] if primary is not None else None

        snippet = self.step(
            "snippet", None, lambda: _snippet(where, config, self.redactor)
        )
        links: list[tuple[BaseException, Optional[str]]]
        links = self.step("chain", [], lambda: _chain(exc))
        chain: list[ChainLink] = self.step(
            "chain links", [], lambda: _chain_links(links, message, self.redactor)
        )
        groups: list[dict[str, Any]] = self.step(
            "group", [], lambda: _group_members(exc, self.redactor, 0)
        )
        summary, hidden = self.step(
            "stack summary", ("", 0), lambda: _stack_summary(raw, primary, omitted)
        )
        traceback_text, truncated = self.step(
            "traceback",
            ("", False),
            lambda: _traceback_text(exc, links, chain, config, self.redactor),
        )
        locals_by_frame: Optional[dict[str, Any]] = None
        removed = 0
        if mode == "rich":
            no_locals: tuple[dict[str, Any], int] = ({}, 0)
            locals_by_frame, removed = self.step(
                "locals",
                no_locals,
                lambda: _locals(raw, primary, frames, config, self.redactor),
            )

        return FailureDiagnostics(
            error_type=error_type,
            error_message=message,
            filename=where.filename if where else None,
            lineno=where.lineno if where else None,
            function=where.function if where else None,
            source_line=frames[primary].line
            if primary is not None and frames
            else None,
            exception_chain=_chain_text(chain) if chain else _one_link(exc, message),
            exact_cause=_exact_cause(error_type, message, where),
            traceback_text=traceback_text,
            diagnostics_mode=mode,
            primary_frame_reason=reason,
            frames=tuple(frames),
            source_snippet=snippet,
            compressed_stack_summary=summary,
            hidden_frame_count=hidden,
            traceback_truncated=truncated,
            locals_by_frame=locals_by_frame,
            redaction_removed_keys=removed,
            chain=tuple(chain),
            group_members=tuple(groups),
            capture_error="; ".join(self.errors) or None,
        )


# --- names and messages ------------------------------------------------------


def _redactor(config: FailureDiagnosticsConfig) -> Redactor:
    return Redactor.from_config(config)


@functools.lru_cache(maxsize=1)
def _fallback_redactor() -> Redactor:
    return Redactor()


def _short_name(exc: BaseException) -> str:
    return str(type(exc).__name__)


def _qualified_name(exc: BaseException) -> str:
    kind = type(exc)
    module = getattr(kind, "__module__", None)
    qualname = getattr(kind, "__qualname__", kind.__name__)
    if not module or module == "builtins":
        return str(qualname)
    return f"{module}.{qualname}"


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception as error:
        return f"<str() failed: {type(error).__name__}>"


def _bounded(text: str, limit: int, redactor: Redactor) -> str:
    """``text`` redacted over a little more than is kept, then cut."""
    window = text[: limit + _REDACTION_MARGIN]
    redacted = redactor.redact_text(window)
    rest = len(text) - len(window)
    if len(redacted) > limit:
        rest += len(redacted) - limit
        redacted = redacted[:limit]
    return f"{redacted}...(+{rest} chars)" if rest > 0 else redacted


def _message(exc: BaseException, redactor: Redactor) -> str:
    return _bounded(_safe_str(exc), MAX_MESSAGE_CHARS, redactor)


# --- frames ------------------------------------------------------------------


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.realpath(__file__))) + os.sep


@functools.lru_cache(maxsize=1)
def _stdlib_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    candidates = [
        paths.get("stdlib"),
        paths.get("platstdlib"),
        os.path.dirname(os.__file__),
    ]
    dirs = {os.path.realpath(p) + os.sep for p in candidates if p}
    return tuple(sorted(dirs, key=len, reverse=True))


@functools.lru_cache(maxsize=64)
def _resolve_roots(app_roots: tuple[str, ...], cwd: str) -> tuple[str, ...]:
    roots = app_roots or ((cwd,) if cwd else ())
    resolved = (os.path.realpath(os.path.expanduser(root)) for root in roots)
    return tuple(root.rstrip(os.sep) + os.sep for root in resolved)


def _app_roots(config: FailureDiagnosticsConfig) -> tuple[str, ...]:
    cwd = ""
    if not config.app_roots:
        try:
            cwd = os.getcwd()
        except OSError:
            cwd = ""
    return _resolve_roots(config.app_roots, cwd)


def _module_label(relative: str) -> str:
    head = relative.split(os.sep, 1)[0]
    return head[:-3] if head.endswith(".py") else head


@functools.lru_cache(maxsize=4096)
def _place(filename: str, roots: tuple[str, ...]) -> _Place:
    if filename.startswith("<"):
        if filename.startswith("<frozen"):
            return _Place("stdlib", filename, filename.strip("<>").split(" ")[-1])
        kind = "app" if filename.startswith(_APP_PSEUDO_FILES) else "library"
        return _Place(kind, filename, filename)
    path = os.path.realpath(filename)
    if path.startswith(_PACKAGE_DIR):
        return _Place("own", path, "runtime_narrative")
    parts = path.split(os.sep)
    for marker in ("site-packages", "dist-packages"):
        if marker in parts:
            position = len(parts) - 1 - parts[::-1].index(marker)
            relative = os.sep.join(parts[position + 1 :])
            return _Place("library", relative, _module_label(relative))
    for stdlib in _stdlib_dirs():
        if path.startswith(stdlib):
            relative = path[len(stdlib) :]
            return _Place("stdlib", relative, _module_label(relative))
    for root in roots:
        if path.startswith(root):
            relative = path[len(root) :]
            return _Place("app", relative, _module_label(relative))
    return _Place(
        "library", os.path.basename(path), _module_label(os.path.basename(path))
    )


def _walk_frames(
    exc: BaseException, config: FailureDiagnosticsConfig
) -> tuple[list[_RawFrame], int]:
    """The traceback's frames outside this package, and how many were dropped.

    A very deep stack keeps its outermost and innermost frames only.
    """
    roots = _app_roots(config)
    frames: list[_RawFrame] = []
    tb: Optional[TracebackType] = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        code = frame.f_code
        filename = code.co_filename or "<unknown>"
        place = _place(filename, roots)
        if place.kind != "own":
            lineno = tb.tb_lineno or 0
            frames.append(_RawFrame(frame, filename, lineno, code.co_name, place))
        tb = tb.tb_next
    if len(frames) <= MAX_FRAMES:
        return frames, 0
    innermost = MAX_FRAMES - _OUTERMOST_KEPT
    omitted = len(frames) - MAX_FRAMES
    return frames[:_OUTERMOST_KEPT] + frames[-innermost:], omitted


def _primary(frames: list[_RawFrame]) -> tuple[Optional[int], str]:
    if not frames:
        return None, "innermost"
    for kind, reason in (("app", "innermost_app"), ("library", "innermost_library")):
        for position in range(len(frames) - 1, -1, -1):
            if frames[position].place.kind == kind:
                return position, reason
    return len(frames) - 1, "innermost"


def _source_line(filename: str, lineno: int) -> str:
    return linecache.getline(filename, lineno)


def _clean_line(line: str, redactor: Redactor) -> str:
    line = line.strip()
    if len(line) > MAX_LINE_CHARS:
        return _bounded(line, MAX_LINE_CHARS, redactor)
    return redactor.redact_text(line)


def _frame_infos(
    frames: list[_RawFrame], primary: Optional[int], redactor: Redactor
) -> list[FrameInfo]:
    return [
        FrameInfo(
            index=index,
            filename=raw.filename,
            lineno=raw.lineno,
            function=raw.function,
            kind=raw.place.kind,
            line=_clean_line(_source_line(raw.filename, raw.lineno), redactor),
            is_primary=index == primary,
        )
        for index, raw in enumerate(frames)
    ]


def _snippet(
    where: Optional[_RawFrame], config: FailureDiagnosticsConfig, redactor: Redactor
) -> Optional[str]:
    if where is None or where.lineno <= 0:
        return None
    context = max(config.snippet_context_lines, 0)
    first = max(where.lineno - context, 1)
    last = where.lineno + context
    width = len(str(last))
    rows = []
    lines = []
    for number in range(first, last + 1):
        line = _source_line(where.filename, number)
        lines.append(line.strip())
        if not line and number > where.lineno:
            break
        text = line.rstrip("\r\n")
        if len(text) > MAX_LINE_CHARS:
            text = text[:MAX_LINE_CHARS] + "..."
        mark = ">" if number == where.lineno else " "
        rows.append(f"{mark}   {number:>{width}} | {text}")
    if not any(row.startswith(">") for row in rows) or not "".join(lines):
        return None
    return redactor.redact_text("\n".join(rows))


# --- the exception chain -----------------------------------------------------


def _chain(exc: BaseException) -> list[tuple[BaseException, Optional[str]]]:
    """``(exception, relation to the next)`` pairs, outermost first.

    Follows ``__cause__``, then ``__context__`` unless suppressed; stops at a
    cycle or after MAX_CHAIN_LINKS.
    """
    links: list[tuple[BaseException, Optional[str]]] = []
    seen: set[int] = set()
    current: Optional[BaseException] = exc
    while current is not None and id(current) not in seen:
        if len(links) >= MAX_CHAIN_LINKS:
            break
        seen.add(id(current))
        cause = getattr(current, "__cause__", None)
        context = getattr(current, "__context__", None)
        if isinstance(cause, BaseException):
            following, relation = cause, "cause"
        elif isinstance(context, BaseException) and not getattr(
            current, "__suppress_context__", False
        ):
            following, relation = context, "context"
        else:
            following, relation = None, None
        if following is not None and id(following) in seen:
            following, relation = None, None
        links.append((current, relation))
        current = following
    return links


def _innermost(exc: BaseException) -> Optional[TracebackType]:
    tb = exc.__traceback__
    steps = 0
    while tb is not None and tb.tb_next is not None and steps < 100_000:
        tb = tb.tb_next
        steps += 1
    return tb


def _chain_links(
    links: list[tuple[BaseException, Optional[str]]],
    first_message: str,
    redactor: Redactor,
) -> list[ChainLink]:
    result = []
    for position, (link, relation) in enumerate(links):
        message = first_message if position == 0 else _message(link, redactor)
        tb = _innermost(link)
        code = tb.tb_frame.f_code if tb is not None else None
        result.append(
            ChainLink(
                error_type=_qualified_name(link),
                short_type=_short_name(link),
                message=message,
                relation=relation,
                filename=code.co_filename if code is not None else None,
                lineno=(tb.tb_lineno or 0) if tb is not None else None,
                function=code.co_name if code is not None else None,
                attributes=_attributes(link, redactor),
            )
        )
    return result


def _plain(value: Any, redactor: Redactor) -> Any:
    """A JSON-safe, redacted, bounded form of one attribute value."""
    if value is None or isinstance(value, (bool, int, float)):
        return (
            value
            if not isinstance(value, int) or value.bit_length() < 64
            else str(value)
        )
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value[:MAX_ATTRIBUTE_CHARS]).decode("utf-8", "backslashreplace")
    if isinstance(value, str):
        return _bounded(value, MAX_ATTRIBUTE_CHARS, redactor)
    return SafeRepr(MAX_ATTRIBUTE_CHARS, 2, redactor).repr(value)


def _attributes(exc: BaseException, redactor: Redactor) -> dict[str, Any]:
    found: dict[str, Any] = {}
    names: tuple[str, ...] = ()
    if isinstance(exc, OSError):
        names = ("errno", "strerror", "filename", "filename2")
    elif isinstance(exc, ImportError):
        names = ("name", "path")
    elif isinstance(exc, SyntaxError):
        names = ("filename", "lineno", "offset", "text")
    elif isinstance(exc, SystemExit):
        names = ("code",)
    for name in names:
        value = getattr(exc, name, None)
        if value is not None:
            found[name] = _plain(value, redactor)
    found.update(_decode_attributes(exc, redactor))
    if isinstance(exc, KeyError) and exc.args:
        found["key"] = SafeRepr(MAX_ATTRIBUTE_CHARS, 2, redactor).repr(exc.args[0])
    found["args"] = SafeRepr(MAX_ATTRIBUTE_CHARS, 2, redactor).repr(exc.args)
    return found


def _decode_attributes(exc: BaseException, redactor: Redactor) -> dict[str, Any]:
    json_module = sys.modules.get("json")
    decode_error = getattr(json_module, "JSONDecodeError", None)
    if isinstance(decode_error, type) and isinstance(exc, decode_error):
        doc = getattr(exc, "doc", "") or ""
        pos = int(getattr(exc, "pos", 0) or 0)
        excerpt = doc[max(pos - 40, 0) : pos + 40] if isinstance(doc, str) else ""
        return {
            "lineno": getattr(exc, "lineno", None),
            "colno": getattr(exc, "colno", None),
            "pos": pos,
            "msg": _plain(getattr(exc, "msg", ""), redactor),
            "doc_excerpt": _plain(excerpt, redactor),
        }
    if isinstance(exc, UnicodeError):
        found: dict[str, Any] = {}
        for name in ("encoding", "start", "end", "reason"):
            value = getattr(exc, name, None)
            if value is not None:
                found[name] = _plain(value, redactor)
        obj = getattr(exc, "object", None)
        start, end = getattr(exc, "start", None), getattr(exc, "end", None)
        if isinstance(start, int) and isinstance(end, int):
            end = min(end, start + 16)
            if isinstance(obj, (bytes, bytearray)):
                found["bad_bytes"] = bytes(obj[start:end]).hex(" ")
            elif isinstance(obj, str):
                found["bad_chars"] = _plain(obj[start:end], redactor)
        return found
    return {}


def _chain_text(chain: list[ChainLink]) -> str:
    return " <- ".join(
        f"{link.short_type}: {link.message}" if link.message else link.short_type
        for link in chain
    )


def _one_link(exc: BaseException, message: str) -> str:
    name = _short_name(exc)
    return f"{name}: {message}" if message else name


# --- exception groups --------------------------------------------------------


def _is_group(exc: BaseException) -> bool:
    members = getattr(exc, "exceptions", None)
    if not isinstance(members, (tuple, list)):
        return False
    return any(
        kind.__name__ in ("BaseExceptionGroup", "ExceptionGroup")
        for kind in type(exc).__mro__
    )


def _group_members(
    exc: BaseException, redactor: Redactor, depth: int
) -> list[dict[str, Any]]:
    if depth >= MAX_GROUP_DEPTH or not _is_group(exc):
        return []
    members = []
    for member in list(getattr(exc, "exceptions", ()))[:MAX_GROUP_MEMBERS]:
        if not isinstance(member, BaseException):
            continue
        tb = _innermost(member)
        members.append(
            {
                "type": _short_name(member),
                "qualified_type": _qualified_name(member),
                "message": _message(member, redactor),
                "filename": tb.tb_frame.f_code.co_filename if tb else None,
                "lineno": (tb.tb_lineno or 0) if tb else None,
                "function": tb.tb_frame.f_code.co_name if tb else None,
                "nested": _group_members(member, redactor, depth + 1),
            }
        )
    return members


# --- the compressed stack summary --------------------------------------------


def _stack_summary(
    frames: list[_RawFrame], primary: Optional[int], omitted: int
) -> tuple[str, int]:
    """App frames, the primary and the innermost frame; other runs folded."""
    keep = {position for position, raw in enumerate(frames) if raw.place.kind == "app"}
    keep.add(len(frames) - 1)
    if primary is not None:
        keep.add(primary)
    segments: list[str] = []
    run: list[_RawFrame] = []
    hidden = omitted
    for position, raw in enumerate(frames):
        if omitted and position == _OUTERMOST_KEPT:
            hidden += _flush(run, segments)
            segments.append(f"[{omitted} frames omitted]")
        if position in keep:
            hidden += _flush(run, segments)
            segments.append(f"{raw.place.display}:{raw.lineno} {raw.function}")
        else:
            run.append(raw)
    hidden += _flush(run, segments)
    return "\n→ ".join(segments), hidden


def _flush(run: list[_RawFrame], segments: list[str]) -> int:
    """Fold a pending run of frames into one segment; return how many."""
    if not run:
        return 0
    count = len(run)
    segments.append(_fold(run))
    run.clear()
    return count


def _fold(run: list[_RawFrame]) -> str:
    kinds = sorted({raw.place.kind for raw in run})
    names = list(dict.fromkeys(raw.place.package for raw in run))
    label = "/".join(kinds)
    plural = "frame" if len(run) == 1 else "frames"
    shown = ", ".join(names[:_FOLD_NAMES_SHOWN])
    more = "…" if len(names) > _FOLD_NAMES_SHOWN else ""
    return f"[{len(run)} {label} {plural}: {shown}{more}]"


# --- the traceback text ------------------------------------------------------


def _traceback_text(
    exc: BaseException,
    links: list[tuple[BaseException, Optional[str]]],
    chain: list[ChainLink],
    config: FailureDiagnosticsConfig,
    redactor: Redactor,
) -> tuple[str, bool]:
    text = None
    # The interpreter's own formatter costs ~100 µs (it recompiles source
    # for its ``^^^`` markers); the plain layout built from the captured
    # chain costs a fifth of that. It is used unless the chain holds what
    # only the interpreter lays out fully: notes and exception groups.
    needs_stdlib = any(
        getattr(link, "__notes__", None) or _is_group(link) for link, _ in links
    )
    if needs_stdlib and not (chain and chain[0].message.startswith("<str() failed:")):
        try:
            text = "".join(
                traceback.format_exception(type(exc), exc, exc.__traceback__)
            )
        except Exception:
            text = None
    if text is None:
        text = _build_traceback(links, chain)
    return _cap(text, config.traceback_cap, redactor)


def _build_traceback(
    links: list[tuple[BaseException, Optional[str]]], chain: list[ChainLink]
) -> str:
    """A traceback in the interpreter's layout, from the captured chain."""
    blocks = []
    for (link, _), described in zip(reversed(links), reversed(chain)):
        lines = []
        tb = link.__traceback__
        if tb is not None:
            lines.append("Traceback (most recent call last):\n")
        while tb is not None and len(lines) <= MAX_FRAMES:
            code = tb.tb_frame.f_code
            lineno = tb.tb_lineno or 0
            lines.append(
                f'  File "{code.co_filename}", line {lineno}, in {code.co_name}\n'
            )
            source = linecache.getline(code.co_filename, lineno).strip()
            if source:
                lines.append(f"    {source}\n")
            tb = tb.tb_next
        message = f": {described.message}" if described.message else ""
        lines.append(f"{described.error_type}{message}\n")
        blocks.append("".join(lines))
    pieces = []
    for position, block in enumerate(blocks):
        if position:
            relation = chain[len(chain) - 1 - position].relation
            pieces.append(
                _CAUSE_SEPARATOR if relation == "cause" else _CONTEXT_SEPARATOR
            )
        pieces.append(block)
    return "".join(pieces)


def _cap(text: str, cap: Optional[int], redactor: Redactor) -> tuple[str, bool]:
    """Redact, then keep the end (the most recent frames) within ``cap``."""
    if cap is None:
        return redactor.redact_text(text), False
    window = text[-(cap + _REDACTION_MARGIN) :]
    redacted = redactor.redact_text(window)
    if len(redacted) <= cap and len(window) == len(text):
        return redacted, False
    template = "[traceback truncated: {} earlier characters omitted]\n"
    keep = max(cap - len(template) - len(str(len(text))) + 2, 0)
    tail = redacted[-keep:] if keep else ""
    newline = tail.find("\n", 0, 200)
    if newline != -1:
        tail = tail[newline + 1 :]
    marker = template.format(len(text) - len(tail))
    if len(marker) + len(tail) > cap:
        return redacted[-cap:] if cap > 0 else "", True
    return marker + tail, True


# --- the one-sentence cause --------------------------------------------------


def _exact_cause(error_type: str, message: str, where: Optional[_RawFrame]) -> str:
    short = message if len(message) <= 200 else message[:200] + "..."
    said = f": {short}" if short else ""
    if where is None:
        return f"{error_type} raised{said}"
    place = f"{where.place.display}:{where.lineno} in {where.function}"
    return f"{error_type} raised at {place}{said}"


# --- rich mode locals --------------------------------------------------------


def _locals(
    frames: list[_RawFrame],
    primary: Optional[int],
    infos: list[FrameInfo],
    config: FailureDiagnosticsConfig,
    redactor: Redactor,
) -> tuple[dict[str, Any], int]:
    """Bounded, redacted locals from the primary frame outward."""
    if primary is None:
        return {}, 0
    reprs = SafeRepr(config.max_local_value_len, config.max_local_depth, redactor)
    removed = 0
    result: dict[str, Any] = {}
    last = max(primary - max(config.max_frames_with_locals, 0), -1)
    for position in range(primary, last, -1):
        raw = frames[position]
        values, omitted, by_key = _frame_locals(raw.frame, config, reprs, redactor)
        removed += by_key
        result[f"frame_{position}"] = {
            "filename": raw.filename,
            "lineno": raw.lineno,
            "function": raw.function,
            "locals": values,
            "omitted_locals": omitted,
        }
    return result, removed + reprs.redacted_keys


def _frame_locals(
    frame: FrameType,
    config: FailureDiagnosticsConfig,
    reprs: SafeRepr,
    redactor: Redactor,
) -> tuple[dict[str, str], int, int]:
    # A module's namespace is its globals: never captured.
    if frame.f_code.co_name == "<module>":
        return {}, 0, 0
    namespace = frame.f_locals
    if namespace is frame.f_globals:
        return {}, 0, 0
    names = sorted(
        name
        for name in namespace
        if isinstance(name, str) and not (name.startswith("__") and name.endswith("__"))
    )
    limit = max(config.max_locals_per_frame, 0)
    values: dict[str, str] = {}
    removed = 0
    for name in names[:limit]:
        if redactor.is_secret_key(name):
            values[name] = REDACTED
            removed += 1
            continue
        try:
            value = namespace[name]
        except Exception as error:
            values[name] = f"<unavailable: {type(error).__name__}>"
            continue
        values[name] = reprs.repr(value)
    return values, max(len(names) - limit, 0), removed


def build_enriched_failure(
    exc: BaseException,
    config: Optional[FailureDiagnosticsConfig] = None,
    **overrides: Any,
) -> FailureDiagnostics:
    """Capture ``exc`` outside any story, as a story would on failure.

    ``config`` defaults to the environment's (``FailureDiagnosticsConfig.
    from_env()``); keyword overrides are merged into it, as ``story()``
    merges its arguments. For code that reports an exception it caught by
    itself: the result is the same redacted plain data renderers receive.
    """
    base = config if config is not None else FailureDiagnosticsConfig.from_env()
    return capture(exc, base.merge(**overrides) if overrides else base)
