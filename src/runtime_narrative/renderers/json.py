"""JsonRenderer: one JSON object per event, one event per line (JSON Lines)."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any, Callable, Optional, Protocol

from runtime_narrative.events import json_safe

__all__ = ["JsonRenderer"]

logger = logging.getLogger("runtime_narrative")


class SupportsWrite(Protocol):
    """A text stream: anything with ``write(str)``."""

    def write(self, text: str, /) -> object: ...


class JsonRenderer:
    """Write every event as one JSON object on its own line.

    The object is the event's ``to_dict()``: an ``event`` key with the event
    type, then every field, with values JSON cannot hold already converted
    (datetimes to ISO 8601, bytes decoded, sets as sorted lists, anything else
    as its bounded ``repr``). Output is ASCII (``ensure_ascii``), so any stream
    encoding can take it.

    ``output`` is any object with ``write(str)`` (``flush()`` is called when
    present). ``None`` means ``sys.stdout`` as it is at the moment of each
    write. ``indent`` pretty-prints each object, which spreads it over several
    lines: leave it ``None`` for JSON Lines. ``sort_keys`` orders the keys.

    Each event is written with a single ``write()`` followed by ``flush()``,
    so lines from several threads never interleave. An event that cannot be
    encoded at all still produces a line, with its type and an
    ``encoding_error`` field, and the problem is logged on the
    ``runtime_narrative`` logger. Objects without ``to_dict()`` are ignored.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        output: Optional[SupportsWrite] = None,
        *,
        indent: Optional[int] = None,
        sort_keys: bool = False,
    ) -> None:
        self._output = output
        # One encoder for every event: json.dumps() with options builds a
        # new one per call, which costs more than the encoding itself.
        self._encoder = json.JSONEncoder(
            indent=indent,
            sort_keys=sort_keys,
            allow_nan=False,
            # to_dict() has converted every value already; this only
            # catches what an event of another origin may still hold.
            default=json_safe,
        )

    def handle(self, event: object) -> None:
        """Write ``event`` as one JSON line."""
        to_dict = getattr(event, "to_dict", None)
        if to_dict is None:
            return

        line = self._encode(event, to_dict)

        stream = self._output if self._output is not None else sys.stdout
        if stream is None:  # no stdout at all, as under pythonw
            return
        stream.write(line + "\n")
        flush = getattr(stream, "flush", None)
        if flush is not None:
            flush()

    def _encode(self, event: object, to_dict: Callable[[], Any]) -> str:
        try:
            return self._encoder.encode(to_dict())
        except Exception as exc:
            event_type = type(event).__name__
            logger.error(
                "JsonRenderer could not encode a %s event", event_type, exc_info=True
            )
            return json.dumps(
                {
                    "event": event_type,
                    "story_id": _story_id(event),
                    "encoding_error": _describe(exc),
                }
            )


def _story_id(event: object) -> Optional[str]:
    story_id = getattr(event, "story_id", None)
    return story_id if isinstance(story_id, str) else None


def _describe(exc: BaseException) -> str:
    try:
        return f"{type(exc).__name__}: {exc}"
    except Exception:  # an exception whose __str__ raises
        return type(exc).__name__
