"""Plain data produced by capturing one failure.

Capture walks the traceback once; everything downstream (events, renderers,
analyzers, stores) reads these objects and never the traceback itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

__all__ = ["ChainLink", "FailureDiagnostics", "FrameInfo"]


@dataclass(frozen=True)
class FrameInfo:
    """One traceback frame, outermost first, as plain data."""

    index: int
    filename: str
    lineno: int
    function: str
    kind: str
    """``app`` (under the app roots), ``library`` (site-packages) or ``stdlib``."""
    line: str
    is_primary: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "filename": self.filename,
            "lineno": self.lineno,
            "function": self.function,
            "kind": self.kind,
            "line": self.line,
            "is_primary": self.is_primary,
        }


@dataclass(frozen=True)
class ChainLink:
    """One exception of a chain, outermost (the one raised last) first."""

    error_type: str
    """The qualified name for non-builtins (``sqlite3.IntegrityError``)."""
    short_type: str
    """The bare class name (``IntegrityError``)."""
    message: str
    """Redacted ``str(exc)``, or a marker when ``__str__`` raised."""
    relation: Optional[str]
    """How this link leads to the next: ``cause``, ``context`` or ``None``."""
    filename: Optional[str] = None
    lineno: Optional[int] = None
    function: Optional[str] = None
    attributes: dict[str, Any] = field(default_factory=dict)
    """Redacted, JSON-safe attributes useful to analyzers (``errno``,
    ``filename``, ``lineno``/``colno``/``doc`` excerpts, ``name``, ``args``...)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "error_type": self.error_type,
            "short_type": self.short_type,
            "message": self.message,
            "relation": self.relation,
            "filename": self.filename,
            "lineno": self.lineno,
            "function": self.function,
            "attributes": dict(self.attributes),
        }


@dataclass(frozen=True)
class FailureDiagnostics:
    """Everything captured about one exception, redacted and bounded."""

    error_type: str
    """The exception's class name (``ValueError``), as the published package."""
    error_message: str
    """Redacted message."""
    filename: Optional[str]
    lineno: Optional[int]
    function: Optional[str]
    source_line: Optional[str]
    exception_chain: str
    """``ValueError: msg <- IntegrityError: msg`` (redacted)."""
    exact_cause: str
    """One plain sentence on what happened at the primary frame."""
    traceback_text: str
    """Redacted, capped traceback text."""
    diagnostics_mode: str
    primary_frame_reason: str
    """``innermost_app``, ``innermost_library`` or ``innermost``."""
    frames: tuple[FrameInfo, ...]
    source_snippet: Optional[str]
    """Lines with numbers and the failing line marked ``>``."""
    compressed_stack_summary: str
    hidden_frame_count: int
    traceback_truncated: bool
    locals_by_frame: Optional[dict[str, Any]]
    """Rich mode only: ``{"frame_N": {"filename", "lineno", "function",
    "locals": {name: bounded redacted repr}}}``."""
    redaction_removed_keys: int
    """How many values were redacted by key."""
    chain: tuple[ChainLink, ...] = ()
    group_members: tuple[dict[str, Any], ...] = ()
    """For an ExceptionGroup: each member's type, message, and location."""
    rules_analysis: Optional[str] = None
    """The built-in rules' diagnosis, attached after capture for LLM analyzers."""
    capture_error: Optional[str] = None
    """Set when capture itself failed part-way; what was captured is kept."""

    @property
    def stack_frames(self) -> tuple[dict[str, Any], ...]:
        return tuple(frame.to_dict() for frame in self.frames)
