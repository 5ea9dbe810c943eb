"""The events a story emits, as frozen plain data.

Every renderer, store and analyzer reads these and nothing else. The field
names follow the published runtime-narrative package; fields added here are
marked in the docstrings. ``to_dict()`` returns a JSON-safe dictionary.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from datetime import datetime

# typing costs milliseconds at import; it is needed only by type checkers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional, Union

__all__ = [
    "STORY_BODY",
    "Event",
    "FailureOccurred",
    "LLMAnalysisReady",
    "LogRecorded",
    "StageCompleted",
    "StageStarted",
    "StoryCompleted",
    "StoryStarted",
    "json_safe",
]

#: The ``stage_name`` of a failure raised in a story's body outside any stage.
STORY_BODY = "<story>"

# Slots make events smaller and attribute reads faster; ``dataclass`` only
# accepts the flag from Python 3.10 on.
_SLOTS: dict[str, bool] = {"slots": True} if sys.version_info >= (3, 10) else {}


class _EventBase:
    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        """Return the event as a JSON-safe dict with an ``event`` type key."""
        cls = type(self)
        names = _field_names.get(cls)
        if names is None:
            fields = dataclasses.fields(self)  # type: ignore[arg-type]
            names = _field_names[cls] = tuple(f.name for f in fields)
        data: dict[str, Any] = {"event": cls.__name__}
        for name in names:
            value = getattr(self, name)
            # Most values are already JSON types; skip the call for those.
            data[name] = (
                value if value is None or type(value) in _PLAIN else json_safe(value)
            )
        return data


# Each event type's field names, in order; filled on first to_dict().
_field_names: dict[type, tuple[str, ...]] = {}
_PLAIN = frozenset({str, int, bool})


@dataclass(frozen=True, **_SLOTS)
class StoryStarted(_EventBase):
    story_id: str
    story_name: str
    timestamp: datetime
    parent_story_id: Optional[str] = None
    root_story_id: Optional[str] = None
    module: Optional[str] = None
    total_stages: Optional[int] = None
    """Added here: the declared stage count, when known at the start."""


@dataclass(frozen=True, **_SLOTS)
class StageStarted(_EventBase):
    story_id: str
    stage_name: str
    timestamp: datetime
    stage_index: int
    parent_stage_name: Optional[str] = None
    story_name: str = ""
    root_story_id: Optional[str] = None
    module: Optional[str] = None
    depth: int = 0
    """Added here: 0 for a top-level stage, 1 inside another stage, and so on."""


@dataclass(frozen=True, **_SLOTS)
class StageCompleted(_EventBase):
    story_id: str
    stage_name: str
    timestamp: datetime
    duration_seconds: float
    stage_index: int
    parent_stage_name: Optional[str] = None
    story_name: str = ""
    root_story_id: Optional[str] = None
    depth: int = 0
    """Added here: as on StageStarted."""
    progress_percent: Optional[int] = None
    """Added here: the story's progress after this stage, when the total is known."""


@dataclass(frozen=True, **_SLOTS)
class FailureOccurred(_EventBase):
    story_id: str
    story_name: str
    stage_name: str
    error_type: str
    error_message: str
    filename: Optional[str]
    lineno: Optional[int]
    function: Optional[str]
    source_line: Optional[str]
    exception_chain: str
    exact_cause: str
    llm_analysis: Optional[str]
    stage_timeline: str
    progress_percent: int
    completed_stages: int
    total_stages: Optional[int]
    timestamp: datetime
    traceback_text: str = ""
    diagnostics_mode: str = "lean"
    primary_frame_reason: str = ""
    stack_frames: tuple[dict[str, Any], ...] = ()
    source_snippet: Optional[str] = None
    compressed_stack_summary: str = ""
    hidden_frame_count: int = 0
    traceback_truncated: bool = False
    locals_by_frame: Optional[dict[str, Any]] = None
    redaction_removed_keys: int = 0
    parent_story_id: Optional[str] = None
    root_story_id: Optional[str] = None
    rules_analysis: Optional[str] = None
    """Added here: the built-in rules' diagnosis, kept apart from ``llm_analysis``."""
    stage_depth: int = 0
    """Added here: the nesting depth of the failed stage (0 at top level)."""
    chain: tuple[dict[str, Any], ...] = ()
    """Added here: the exception chain as data, outermost first."""
    exception_group: tuple[dict[str, Any], ...] = ()
    """Added here: the members of an ExceptionGroup, as data."""
    recorded: bool = False
    """Added here: True when emitted by ``record_failure`` (nothing propagated)."""
    stage_index: Optional[int] = None
    """Added here: the failed stage's ``stage_index``, when the failure is
    attributed to a stage this story ran (stage names may repeat)."""


@dataclass(frozen=True, **_SLOTS)
class StoryCompleted(_EventBase):
    story_id: str
    story_name: str
    success: bool
    progress_percent: int
    completed_stages: int
    total_stages: Optional[int]
    timestamp: datetime
    duration_seconds: float = 0.0
    parent_story_id: Optional[str] = None
    root_story_id: Optional[str] = None
    outcome: str = ""
    status: str = "success"
    """Added here: ``success``, ``failed``, ``cancelled`` or ``interrupted``."""
    error_type: Optional[str] = None
    """Added here: the type of what ended the story, when it did not succeed."""


@dataclass(frozen=True, **_SLOTS)
class LLMAnalysisReady(_EventBase):
    story_id: str
    story_name: str
    stage_name: str
    llm_analysis: Optional[str]
    timestamp: datetime
    root_story_id: Optional[str] = None
    """Added here: so a store can place a late analysis without a lookup."""
    abandoned: bool = False
    """Added here: True when the analysis could not finish (its loop closed)."""


@dataclass(frozen=True, **_SLOTS)
class LogRecorded(_EventBase):
    story_id: Optional[str]
    story_name: Optional[str]
    root_story_id: Optional[str]
    stage_name: Optional[str]
    level: str
    logger_name: str
    message: str
    timestamp: datetime
    exc_text: Optional[str] = None
    fields: dict[str, Any] = field(default_factory=dict)


_EVENT_TYPES = (
    StoryStarted,
    StageStarted,
    StageCompleted,
    FailureOccurred,
    StoryCompleted,
    LLMAnalysisReady,
    LogRecorded,
)


def _install_fast_init(cls: type) -> None:
    """Give a slotted frozen event an ``__init__`` that skips ``__setattr__``.

    A frozen dataclass sets each field through ``object.__setattr__``, which
    is a third of the cost of a stage. Writing the slots through their
    descriptors stores the same values, with the same signature and
    defaults, and the instance stays frozen. Classes with a default factory
    keep the generated ``__init__``.
    """
    fields = dataclasses.fields(cls)
    if any(f.default_factory is not dataclasses.MISSING for f in fields):
        return
    namespace: dict[str, Any] = {}
    parameters = []
    body = []
    for position, f in enumerate(fields):
        namespace[f"_set{position}"] = getattr(cls, f.name).__set__
        if f.default is dataclasses.MISSING:
            parameters.append(f.name)
        else:
            namespace[f"_default{position}"] = f.default
            parameters.append(f"{f.name}=_default{position}")
        body.append(f"    _set{position}(self, {f.name})")
    source = f"def __init__(self, {', '.join(parameters)}):\n" + "\n".join(body)
    exec(source, namespace)  # the same technique dataclasses itself uses
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    generated = vars(cls)["__init__"]
    init.__doc__ = generated.__doc__
    init.__annotations__ = dict(generated.__annotations__)
    cls.__init__ = init  # type: ignore[misc]


if _SLOTS:
    for _event_type in _EVENT_TYPES:
        _install_fast_init(_event_type)

if TYPE_CHECKING:
    Event = Union[
        StoryStarted,
        StageStarted,
        StageCompleted,
        FailureOccurred,
        StoryCompleted,
        LLMAnalysisReady,
        LogRecorded,
    ]


def __getattr__(name: str) -> Any:
    # ``Event``, the union of all event types, is built on first use so that
    # importing the events does not import typing.
    if name == "Event":
        from typing import Union

        event = Union[_EVENT_TYPES]  # type: ignore[valid-type]
        globals()["Event"] = event
        return event
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def json_safe(value: Any, _depth: int = 0) -> Any:
    """Convert ``value`` into something ``json.dumps`` accepts, losing nothing.

    Datetimes become ISO 8601 strings, bytes are decoded (invalid bytes are
    escaped), sets become sorted lists, and anything else unknown becomes its
    bounded ``repr``. A ``__repr__`` that raises yields a marker, not an error.
    """
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        # JSON has no NaN or infinity; keep the information as text.
        return value if value == value and value not in _INFINITIES else repr(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if _depth > 20:
        return _bounded_repr(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v, _depth + 1) for v in value]
    if isinstance(value, (set, frozenset)):
        items = [json_safe(v, _depth + 1) for v in value]
        try:
            return sorted(items)
        except TypeError:
            return sorted(items, key=repr)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", errors="backslashreplace")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: json_safe(getattr(value, f.name), _depth + 1)
            for f in dataclasses.fields(value)
        }
    return _bounded_repr(value)


_INFINITIES = (float("inf"), float("-inf"))


def _bounded_repr(value: Any, limit: int = 1000) -> str:
    try:
        text = repr(value)
    except Exception as exc:  # a user's __repr__ may raise anything
        return f"<unrepresentable {type(value).__name__}: {type(exc).__name__}>"
    return text if len(text) <= limit else text[:limit] + "…"
