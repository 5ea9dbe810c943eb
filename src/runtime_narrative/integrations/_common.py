"""What the integrations share: default renderers and story options."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterable
from typing import Any, Callable, Optional

from runtime_narrative.diagnostics.config import FailureDiagnosticsConfig
from runtime_narrative.dispatch import Dispatcher

__all__ = ["SkipIf", "default_web_renderers", "is_server_error", "story_options"]

_logger = logging.getLogger("runtime_narrative")


def default_web_renderers() -> list[object]:
    """ConsoleRenderer when stderr is a terminal, JsonRenderer otherwise.

    A service writes for a person at a terminal in development and for a log
    collector in production; the choice is made once, when the integration is
    set up.
    """
    stream = sys.stderr
    isatty = getattr(stream, "isatty", None)
    try:
        on_terminal = bool(isatty()) if callable(isatty) else False
    except ValueError:  # a closed stream
        on_terminal = False
    if on_terminal:
        from runtime_narrative.renderers.console import ConsoleRenderer

        return [ConsoleRenderer()]
    from runtime_narrative.renderers.json import JsonRenderer

    return [JsonRenderer()]


def story_options(
    renderers: Optional[Iterable[object]],
    failure_analyzer: Optional[object],
    runtime_environment: Optional[str],
    module: str,
) -> dict[str, Any]:
    """The ``story()`` keyword arguments an integration passes every time.

    The diagnostics settings are read from the environment here, once, when
    the integration is set up, instead of at every request or task; so is
    the Dispatcher over the renderers, which every story then reuses.
    """
    config = FailureDiagnosticsConfig.from_env().merge(
        runtime_environment=runtime_environment
    )
    return {
        "renderers": Dispatcher(
            list(renderers) if renderers is not None else default_web_renderers()
        ),
        "failure_analyzer": failure_analyzer,
        "diagnostics_config": config,
        "module": module,
    }


def is_server_error(status_code: int) -> bool:
    return status_code >= 500


class SkipIf:
    """A user's ``skip_if`` callable, made safe to call for every request.

    A ``skip_if`` that raises must not break the host application: the
    request then goes on with a story, as if it had not been skipped. The
    first error is logged at ERROR on the ``runtime_narrative`` logger, with
    its traceback; later ones at DEBUG, so a broken predicate cannot flood
    the log.
    """

    __slots__ = ("_function", "_lock", "_reported")

    def __init__(self, function: Optional[Callable[[Any], Any]]) -> None:
        self._function = function
        self._lock = threading.Lock()
        self._reported = False

    def __bool__(self) -> bool:
        return self._function is not None

    def __call__(self, request: Any) -> bool:
        function = self._function
        if function is None:
            return False
        try:
            return bool(function(request))
        except Exception:
            with self._lock:
                first, self._reported = not self._reported, True
            if first:
                _logger.exception(
                    "skip_if raised; the request is narrated as if not skipped"
                    " (later errors of this skip_if are logged at DEBUG)"
                )
            else:
                _logger.debug("skip_if raised again", exc_info=True)
            return False
