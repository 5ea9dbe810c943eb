"""Celery: every task run is a story, through Celery's own signals.

``connect_narrative(app, ...)`` gives every task of ``app`` a story, whatever
its base class; ``@app.task(base=NarrativeTask)`` gives one to that task
alone. Both work through the same signal handlers, so a task is never wrapped
twice.

* The story is named ``"<task.name> [task_id=<id>]"``; the attempt runs in a
  stage named ``"attempt N"`` (N = retries + 1).
* A task that raises fails its story, with the usual FailureOccurred.
* A retry ends the attempt's story with outcome ``RETRY`` and the reason
  recorded as a FailureOccurred (``recorded=True``); the next attempt is a
  new story, a sub-story of the attempt that scheduled it, with the same name.
* A task sent while a story is open carries that story's ids in the message
  header ``x-narrative-story``; the worker's story continues it.
* When a task ends, the worker's context is put back as it was before the
  task started, so nothing leaks into the next task.

Per-task settings are class attributes (or ``@app.task(...)`` options):
``narrative_renderers``, ``narrative_failure_analyzer``,
``narrative_runtime_environment`` and ``narrative_enabled``.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable
from typing import Any, Optional

try:
    import celery
    from celery import signals
    from celery.exceptions import Retry
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        'the Celery integration needs Celery: pip install "runtime-narrative[celery]"'
    ) from exc

from runtime_narrative._context import Scope, current_scope
from runtime_narrative.stage import Stage
from runtime_narrative.story import Story, StoryRuntime, story

from ._common import story_options
from ._propagation import STORY_HEADER, narrative_headers, parse_story_header

__all__ = ["NarrativeTask", "connect_narrative"]

# The defaults connect_narrative() set, per Celery app.
_app_options: weakref.WeakKeyDictionary[Any, dict[str, Any]] = (
    weakref.WeakKeyDictionary()
)

_TASK_ATTRIBUTES = {
    "narrative_renderers": "renderers",
    "narrative_failure_analyzer": "failure_analyzer",
    "narrative_runtime_environment": "runtime_environment",
}


class _OpenTask:
    """A task run in progress: its story, its attempt stage, the prior scope."""

    __slots__ = ("attempt", "narrative", "previous", "runtime")

    def __init__(
        self,
        narrative: Story,
        runtime: StoryRuntime,
        attempt: Stage,
        previous: Optional[Scope],
    ) -> None:
        self.narrative = narrative
        self.runtime = runtime
        self.attempt = attempt
        self.previous = previous


# Each run's state is kept on its Celery request context: an attempt and its
# retry share the task id, and may even run at once in two threads.
_REQUEST_ATTRIBUTE = "_runtime_narrative_run"
_connect_lock = threading.Lock()
_connected = False


def connect_narrative(
    app: celery.Celery,
    *,
    renderers: Optional[Iterable[object]] = None,
    failure_analyzer: Optional[object] = None,
    runtime_environment: Optional[str] = None,
) -> None:
    """Make every task of ``app`` a story, with these defaults.

    ``renderers=None`` picks ConsoleRenderer when stderr is a terminal and
    JsonRenderer otherwise. Call it where the app is defined, so both the
    worker and the processes that send tasks run it.

    .. versionadded:: 0.1.0
    """
    _app_options[app] = story_options(
        renderers, failure_analyzer, runtime_environment, __name__
    )
    _connect_signals()


class NarrativeTask(celery.Task):  # type: ignore[misc]
    """A task base class whose runs are stories: ``@app.task(base=NarrativeTask)``.

    Set ``narrative_*`` attributes to override the app's defaults for one
    task; ``narrative_enabled = False`` turns the story off for it.

    .. versionadded:: 0.1.0
    """

    narrative_renderers: Optional[Iterable[object]] = None
    narrative_failure_analyzer: Optional[object] = None
    narrative_runtime_environment: Optional[str] = None
    narrative_enabled: bool = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _connect_signals()


def _connect_signals() -> None:
    global _connected
    with _connect_lock:
        if _connected:
            return
        signals.before_task_publish.connect(
            _on_publish, weak=False, dispatch_uid="runtime_narrative.publish"
        )
        signals.task_prerun.connect(
            _on_prerun, weak=False, dispatch_uid="runtime_narrative.prerun"
        )
        signals.task_retry.connect(
            _on_retry, weak=False, dispatch_uid="runtime_narrative.retry"
        )
        signals.task_failure.connect(
            _on_failure, weak=False, dispatch_uid="runtime_narrative.failure"
        )
        signals.task_postrun.connect(
            _on_postrun, weak=False, dispatch_uid="runtime_narrative.postrun"
        )
        _connected = True


def _options_for(task: Any) -> Optional[dict[str, Any]]:
    """The story options for ``task``, or None when it gets no story."""
    if not getattr(task, "narrative_enabled", True):
        return None
    defaults = _app_options.get(task.app)
    if defaults is None:
        if not isinstance(task, NarrativeTask):
            return None
        defaults = story_options(None, None, None, __name__)
    options = dict(defaults)
    for attribute, option in _TASK_ATTRIBUTES.items():
        value = getattr(task, attribute, None)
        if value is not None:
            options[option] = list(value) if option == "renderers" else value
    return options


# -- signal handlers ---------------------------------------------------------------


def _on_publish(headers: Optional[dict[str, Any]] = None, **_: Any) -> None:
    if headers is None:
        return
    for key, value in narrative_headers().items():
        headers.setdefault(key, value)


def _on_prerun(task_id: str, task: Any, **_: Any) -> None:
    options = _options_for(task)
    if options is None:
        return
    request = task.request
    parsed = parse_story_header(_request_header(request))
    if parsed is not None:
        options["parent_story_id"], options["root_story_id"] = parsed
    previous = current_scope.get()

    narrative = story(f"{task.name} [task_id={task_id}]", **options)
    runtime = narrative.__enter__()
    attempt = Stage(f"attempt {(request.retries or 0) + 1}")
    attempt.__enter__()

    setattr(
        request, _REQUEST_ATTRIBUTE, _OpenTask(narrative, runtime, attempt, previous)
    )


def _request_header(request: Any) -> Optional[str]:
    value = getattr(request, STORY_HEADER, None)
    if value is None:
        headers = getattr(request, "headers", None) or {}
        value = headers.get(STORY_HEADER)
    return value if isinstance(value, str) else None


def _on_retry(request: Any = None, reason: Any = None, **_: Any) -> None:
    open_task = getattr(request, _REQUEST_ATTRIBUTE, None)
    if open_task is None:
        return
    open_task.runtime.set_outcome("RETRY")
    # ``reason`` is the Retry raised by task.retry(); what went wrong is the
    # exception it carries, when there is one.
    cause = getattr(reason, "exc", None) if isinstance(reason, Retry) else reason
    if isinstance(cause, BaseException):
        open_task.runtime.record_failure(cause, stage_name=open_task.attempt.name)


def _on_failure(
    sender: Any = None, exception: Optional[BaseException] = None, **_: Any
) -> None:
    open_task = _take(sender)
    if open_task is None:
        return
    open_task.runtime.set_outcome("FAILURE")
    if exception is None:
        open_task.runtime.mark_failed("the task failed")
    _close(open_task, exception)


def _on_postrun(task: Any = None, state: Any = None, **_: Any) -> None:
    open_task = _take(task)
    if open_task is None:
        return
    if not open_task.runtime.outcome:
        open_task.runtime.set_outcome(str(state or "SUCCESS"))
    _close(open_task, None)


def _take(task: Any) -> Optional[_OpenTask]:
    """The run in progress of ``task`` in this thread, now closed to others."""
    request = getattr(task, "request", None)
    open_task: Optional[_OpenTask] = getattr(request, _REQUEST_ATTRIBUTE, None)
    if open_task is not None:
        setattr(request, _REQUEST_ATTRIBUTE, None)
    return open_task


def _close(open_task: _OpenTask, exc: Optional[BaseException]) -> None:
    """End the attempt stage and the story, then restore the prior context."""
    exc_type = type(exc) if exc is not None else None
    traceback = exc.__traceback__ if exc is not None else None
    try:
        open_task.attempt.__exit__(exc_type, exc, traceback)
        open_task.narrative.__exit__(exc_type, exc, traceback)
    finally:
        current_scope.set(open_task.previous)
