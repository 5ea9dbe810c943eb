"""NarrativeLogHandler: the program's ``logging`` records as story events.

A record logged while a story is open becomes a :class:`LogRecorded` event,
delivered to that story's renderers, in the stage that is open. Outside a
story the record goes to the ``fallback`` handler, when one is given.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Optional

from ._context import current_scope
from .diagnostics.redact import REDACTED, Redactor
from .diagnostics.saferepr import safe_repr
from .events import LogRecorded

if TYPE_CHECKING:
    from .story import StoryRuntime

__all__ = ["NarrativeLogHandler"]

# Every attribute a plain LogRecord has; anything else on a record came from
# ``extra=`` (or a filter) and is carried as a structured field.
_STANDARD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", (), None))
) | {"message", "asctime", "taskName"}

# Set while this module delivers an event: a record logged meanwhile (by a
# renderer, on this thread or in a task it started) is not turned into
# another event, which could recurse without end.
_delivering: ContextVar[bool] = ContextVar(
    "runtime_narrative_log_delivery", default=False
)

_UTC = timezone.utc


class NarrativeLogHandler(logging.Handler):
    """Turn log records into LogRecorded events of the open story.

    ::

        logging.getLogger().addHandler(NarrativeLogHandler(level=logging.WARNING))

    Each record at ``level`` or above, logged while a story is open, becomes
    a LogRecorded event (story, root story, innermost open stage, level,
    logger name, message, exception text, and the ``extra=`` fields),
    redacted with the story's redaction settings, and is delivered to that
    story's renderers. The event's ``message`` is the record's message with
    its arguments merged, not a formatted line; a formatter set on the
    handler is used only for the exception text.

    Records logged outside any story, and records logged by a renderer while
    it handles one of these events, go to ``fallback`` (any logging handler)
    when one is given, and are otherwise left to the logger's other handlers.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self, level: int = logging.NOTSET, fallback: Optional[logging.Handler] = None
    ) -> None:
        super().__init__(level)
        self.fallback = fallback

    def emit(self, record: logging.LogRecord) -> None:
        scope = current_scope.get()
        if scope is None or _delivering.get():
            self._fall_back(record)
            return
        runtime = scope.runtime
        if not runtime.dispatcher:
            return  # a story without renderers shows nothing, logs included

        token = _delivering.set(True)
        try:
            event = self._event(record, scope.stage_name, runtime)
            runtime.dispatcher.emit(event)
        except Exception:
            self.handleError(record)
        finally:
            _delivering.reset(token)

    def _fall_back(self, record: logging.LogRecord) -> None:
        fallback = self.fallback
        if fallback is not None and record.levelno >= fallback.level:
            fallback.handle(record)

    def _event(
        self,
        record: logging.LogRecord,
        stage_name: Optional[str],
        runtime: StoryRuntime,
    ) -> LogRecorded:
        redactor = Redactor.from_config(runtime.config)
        return LogRecorded(
            story_id=runtime.story_id,
            story_name=runtime.story_name,
            root_story_id=runtime.root_story_id,
            stage_name=stage_name,
            level=record.levelname,
            logger_name=record.name,
            message=redactor.redact_text(record.getMessage()),
            timestamp=datetime.fromtimestamp(record.created, _UTC),
            exc_text=self._exc_text(record, redactor),
            fields=_fields(record, redactor),
        )

    def _exc_text(self, record: logging.LogRecord, redactor: Redactor) -> Optional[str]:
        formatter = self.formatter or _DEFAULT_FORMATTER
        parts = []
        if record.exc_info and record.exc_info[0] is not None:
            parts.append(formatter.formatException(record.exc_info))
        elif record.exc_text:
            parts.append(record.exc_text)
        if record.stack_info:
            parts.append(formatter.formatStack(record.stack_info))
        if not parts:
            return None
        return redactor.redact_text("\n".join(parts))


_DEFAULT_FORMATTER = logging.Formatter()


def _fields(record: logging.LogRecord, redactor: Redactor) -> dict[str, Any]:
    """The record's ``extra=`` attributes, redacted by key and by value."""
    fields: dict[str, Any] = {}
    for key, value in vars(record).items():
        if key in _STANDARD_ATTRIBUTES or key.startswith("_"):
            continue
        if redactor.is_secret_key(key):
            fields[key] = REDACTED
        elif value is None or isinstance(value, (bool, int, float)):
            fields[key] = value
        elif isinstance(value, (str, dict, list, tuple)):
            fields[key] = redactor.redact_mapping(value)[0]
        else:
            # An object's repr may hold anything; keep only its redacted text.
            fields[key] = redactor.redact_text(safe_repr(value, redactor=redactor))
    return fields
