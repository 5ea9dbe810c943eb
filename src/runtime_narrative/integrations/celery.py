"""Celery: every task run is a story, through Celery's own signals.

``connect_narrative(app, ...)`` gives every task of ``app`` a story, whatever
its base class; ``@app.task(base=NarrativeTask)`` gives one to that task
alone. Both work through the same signal handlers, so a task is never wrapped
twice.

* The story is named ``"<task.name> [task_id=<id>]"``; each attempt runs in
  a stage named ``"attempt N"`` (N = retries + 1).
* A task and its retries are one story. Its id is derived from the task id,
  which Celery keeps across retries; the first attempt starts the story, an
  attempt that retries suspends it (its reason recorded as a FailureOccurred
  with ``recorded=True``), and the next attempt resumes it, numbering its
  stages on from where the last one stopped (message header
  ``x-narrative-resume``). The last attempt ends the story.
* A task that raises fails its story, with the usual FailureOccurred.
* A task sent while a story is open carries that story's ids in the message
  header ``x-narrative-story``; the worker's story continues it.
* When a task ends, the worker's context is put back as it was before the
  task started, so nothing leaks into the next task.

Per-task settings are class attributes (or ``@app.task(...)`` options):
``narrative_renderers``, ``narrative_failure_analyzer``,
``narrative_runtime_environment`` and ``narrative_enabled``.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
import weakref
from collections import OrderedDict
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

__all__ = ["NarrativeTask", "connect_narrative", "task_story_id"]

#: The message header of a retry: the stage index its attempt starts at.
RESUME_HEADER = "x-narrative-resume"

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

    __slots__ = ("attempt", "narrative", "previous", "retry_reason", "runtime")

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
        self.retry_reason: Optional[BaseException] = None


# Each run's state is kept on its Celery request context: an attempt and its
# retry share the task id, and may even run at once in two threads.
_REQUEST_ATTRIBUTE = "_runtime_narrative_run"
_connect_lock = threading.Lock()
_connected = False

# Where suspended task stories stopped numbering stages, for retries that run
# in this process without a message (eager calls). Bounded: a retry that
# runs elsewhere reads the message header instead.
_RESUME_MEMORY = 1024
_resume_at: OrderedDict[str, int] = OrderedDict()
_resume_lock = threading.Lock()


def task_story_id(task_id: str) -> str:
    """The story id of a Celery task: the same for the task and its retries.

    A UUID task id (Celery's own) gives its 32 hex digits, so the story and
    the task are found by the same id; any other id is hashed to 32 hex
    digits.

    .. versionadded:: 0.1.0
    """
    try:
        return uuid.UUID(task_id).hex
    except ValueError:
        return hashlib.blake2b(task_id.encode("utf-8"), digest_size=16).hexdigest()


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
    retried = _retried_story(headers.get("id"))
    if retried is not None:
        # A retry keeps the header of the original message (Celery copies
        # it): the story it continues has the same parent as before.
        headers[RESUME_HEADER] = str(retried.next_stage_index)
        return
    for key, value in narrative_headers().items():
        headers.setdefault(key, value)


def _retried_story(task_id: Any) -> Optional[StoryRuntime]:
    """The open story of task ``task_id`` here, when this publish is its retry."""
    if not isinstance(task_id, str):
        return None
    scope = current_scope.get()
    if scope is None:
        return None
    wanted = task_story_id(task_id)
    while scope is not None:
        if scope.runtime.story_id == wanted:
            return scope.runtime
        scope = scope.parent
    return None


def _on_prerun(task_id: str, task: Any, **_: Any) -> None:
    options = _options_for(task)
    if options is None:
        return
    request = task.request
    parsed = parse_story_header(_request_header(request))
    if parsed is not None:
        options["parent_story_id"], options["root_story_id"] = parsed
    previous = current_scope.get()
    story_id = task_story_id(task_id)
    retries = request.retries or 0
    if retries:
        options["resume_stage_index"] = _resume_index(story_id, request, retries)

    narrative = story(f"{task.name} [task_id={task_id}]", story_id=story_id, **options)
    runtime = narrative.__enter__()
    attempt = Stage(f"attempt {retries + 1}")
    attempt.__enter__()

    setattr(
        request, _REQUEST_ATTRIBUTE, _OpenTask(narrative, runtime, attempt, previous)
    )


def _request_header(request: Any, name: str = STORY_HEADER) -> Optional[str]:
    value = getattr(request, name, None)
    if value is None:
        headers = getattr(request, "headers", None) or {}
        value = headers.get(name)
    return value if isinstance(value, str) else None


def _resume_index(story_id: str, request: Any, retries: int) -> int:
    """Where a retry's stage indexes start: after every earlier attempt's."""
    with _resume_lock:
        remembered = _resume_at.pop(story_id, None)
    header = _request_header(request, RESUME_HEADER)
    sent = int(header) if header is not None and header.isdigit() else None
    known = [index for index in (remembered, sent) if index is not None]
    if known:
        return max(known)
    # Neither header nor memory: leave a wide gap rather than reuse indexes.
    return retries * 1000


def _remember_resume(runtime: StoryRuntime) -> None:
    with _resume_lock:
        _resume_at[runtime.story_id] = runtime.next_stage_index
        while len(_resume_at) > _RESUME_MEMORY:
            _resume_at.popitem(last=False)


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
    open_task.retry_reason = (
        reason if isinstance(reason, BaseException) else Retry("retried")
    )


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
    if open_task.retry_reason is not None:
        # The story goes on in the next attempt: this one ends as failed,
        # and the story is suspended rather than completed.
        open_task.runtime.suspend()
        _close(open_task, open_task.retry_reason)
        _remember_resume(open_task.runtime)
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
