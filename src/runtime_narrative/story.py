"""story(): the context manager that opens a story, and its StoryRuntime."""

from __future__ import annotations

import _thread
import itertools
import os
import sys
import time
from collections import deque
from collections.abc import Generator, Iterable
from datetime import datetime, timezone
from types import TracebackType

from ._context import Scope, current_scope, leave
from .diagnostics.config import FailureDiagnosticsConfig
from .dispatch import Dispatcher
from .events import (
    STORY_BODY,
    StoryCompleted,
    StoryStarted,
)

# typing costs milliseconds at import; it is needed only by type checkers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio
    from typing import Any, Optional, Union

__all__ = ["Story", "StoryRuntime", "http_outcome", "story"]

_UTC = timezone.utc
_TIMELINE_LENGTH = 50


def _now() -> datetime:
    return datetime.now(_UTC)


def _new_story_id() -> str:
    """A random (version 4) UUID as 32 hex digits, without importing uuid."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return raw.hex()


class StoryRuntime:
    """The live state of one story: ids, counts, timeline and outcome.

    Returned by ``with story(...) as runtime``. Memory is flat in the number
    of stages run: counts, plus the last ``50`` stages for the timeline.
    """

    def __init__(
        self,
        story_name: str,
        *,
        dispatcher: Dispatcher,
        config: FailureDiagnosticsConfig,
        failure_analyzer: Optional[object],
        background_analysis: bool,
        total_stages: Optional[int],
        dry_run: bool,
        module: Optional[str],
        suppress_traceback: bool,
        parent: Optional[StoryRuntime],
        remote_parent: Optional[tuple[str, Optional[str]]] = None,
        story_id: Optional[str] = None,
        first_stage_index: int = 0,
    ) -> None:
        self.story_id = story_id or _new_story_id()
        self.story_name = story_name
        self.parent_story_id: Optional[str]
        self.root_story_id: str
        if parent is not None:
            self.parent_story_id = parent.story_id
            self.root_story_id = parent.root_story_id
        elif remote_parent is not None:
            # A story continued from another process (an HTTP header, a task
            # header, gRPC metadata): a sub-story of a story we cannot see.
            self.parent_story_id = remote_parent[0]
            self.root_story_id = remote_parent[1] or remote_parent[0]
        else:
            self.parent_story_id = None
            self.root_story_id = self.story_id
        self.module = module
        self.dispatcher = dispatcher
        self.config = config
        self.failure_analyzer = failure_analyzer
        self.background_analysis = background_analysis
        self.dry_run = dry_run
        self.suppress_traceback = suppress_traceback
        self.total_stages = total_stages
        self.outcome = ""
        self.failure_reason: Optional[str] = None
        self.cancel_reason: Optional[str] = None
        self.success: Optional[bool] = None
        self.started_at = _now()
        self.duration_seconds: Optional[float] = None
        self._t0 = time.perf_counter()
        # A resumed story numbers its stages on from the run before it; the
        # hot path in stage.py keeps ``_stages_started`` at the next index.
        self._first_stage_index = first_stage_index
        self._stage_counter = itertools.count(first_stage_index)
        self._stages_started = first_stage_index
        self.suspended = False
        self.completed_stages = 0
        # Progress counts top-level stages only: a nested stage is part of
        # the step that encloses it.
        self._top_started = 0
        self._top_completed = 0
        self._owner_thread = _thread.get_ident()
        self._lock: Optional[_thread.LockType] = None
        self._timeline: deque[tuple[str, str, float]] = deque(maxlen=_TIMELINE_LENGTH)
        self._stages_closed = 0
        # Exceptions cannot be weakly referenced, so these hold them, bounded,
        # until the story closes.
        self._pending: Optional[tuple[BaseException, str, int, Optional[int]]] = None
        self._reported: deque[BaseException] = deque(maxlen=8)
        self.failures_reported = 0

    # -- progress ------------------------------------------------------------

    def set_total_stages(self, total: int) -> None:
        """Declare how many stages the story will run, for ``progress_percent``."""
        if not isinstance(total, int) or isinstance(total, bool) or total < 0:
            raise ValueError(f"total_stages must be an int >= 0; got {total!r}")
        self.total_stages = total

    @property
    def stages_started(self) -> int:
        """Stages started in this run of the story."""
        return self._stages_started - self._first_stage_index

    @property
    def next_stage_index(self) -> int:
        """The ``stage_index`` the next stage will get.

        Pass it as ``resume_stage_index`` to the run that continues this
        story after ``suspend()``, so stage indexes never repeat.
        """
        return self._stages_started

    def progress_counts(self) -> tuple[int, int]:
        """(completed, total) top-level stages, as events report them.

        The total is the declared one, or else the top-level stages started.
        """
        total = self.total_stages
        return self._top_completed, self._top_started if total is None else total

    @property
    def progress_percent(self) -> int:
        """Completed stages as a percentage of the total, never above 100.

        Top-level stages count; a nested stage is part of the one enclosing
        it. The total is the declared one, or else the top-level stages
        started so far.
        """
        total = self.total_stages
        if total is None:
            total = self._top_started
        if total <= 0:
            return 100 if self.success else 0
        return min(100, self._top_completed * 100 // total)

    def set_outcome(self, outcome: str) -> None:
        """Label how the story ended (``"200 OK"``); carried on StoryCompleted."""
        self.outcome = str(outcome)

    def mark_failed(self, reason: str) -> None:
        """End the story as failed although no exception leaves it.

        For outcomes that are failures without a Python exception, such as
        an HTTP 500 response or a gRPC ``INTERNAL`` status set by a handler:
        StoryCompleted gets ``success=False`` and status ``failed``, and no
        FailureOccurred is emitted (there is nothing to diagnose).
        ``reason`` is kept as ``failure_reason``; the outcome label is set
        separately with ``set_outcome``.
        """
        self.failure_reason = str(reason)

    def mark_cancelled(self, reason: str) -> None:
        """End the story as cancelled although no cancellation leaves it.

        For work abandoned from outside without a crash, such as an HTTP
        client that disconnects while its response is streamed: the block
        may exit normally, yet StoryCompleted gets ``success=False`` and
        status ``cancelled``, and no FailureOccurred is emitted. ``reason``
        is kept as ``cancel_reason``. A failure (an exception, or
        ``mark_failed``) takes precedence.

        .. versionadded:: 0.1.0
        """
        self.cancel_reason = str(reason)

    def suspend(self) -> None:
        """End this run of the story without ending the story.

        When the ``with`` block exits, neither StoryCompleted nor a
        FailureOccurred is emitted: a later run, opened with the same
        ``story_id`` and ``resume_stage_index``, continues the story and ends
        it. Record what should be kept of this run's failure first, with
        ``record_failure``. The Celery integration uses this for a task that
        will be retried.

        .. versionadded:: 0.1.0
        """
        self.suspended = True

    # -- bookkeeping used by stage() ------------------------------------------

    def _stage_done(self, name: str, status: str, duration: float, depth: int) -> None:
        """Count a closed stage; the hot path in stage.py inlines the lock-free case."""
        lock = self._lock
        if lock is None:
            self._count_closed(name, status, duration, depth)
            return
        with lock:
            self._count_closed(name, status, duration, depth)

    def _count_closed(
        self, name: str, status: str, duration: float, depth: int
    ) -> None:
        if status == "completed":
            self.completed_stages += 1
            if depth == 0:
                self._top_completed += 1
        self._stages_closed += 1
        self._timeline.append((name, status, duration))

    def _note_exception(
        self,
        exc: BaseException,
        stage_name: str,
        depth: int,
        stage_index: Optional[int] = None,
    ) -> None:
        """Remember the innermost stage an exception crossed first."""
        pending = self._pending
        if pending is not None and pending[0] is exc:
            return
        self._pending = (exc, stage_name, depth, stage_index)

    def _attribution(self, exc: BaseException) -> tuple[str, int]:
        pending = self._pending
        if pending is not None and pending[0] is exc:
            return pending[1], pending[2]
        return STORY_BODY, -1

    def _attributed_index(self, exc: BaseException, stage_name: str) -> Optional[int]:
        """The ``stage_index`` of the stage ``exc`` is attributed to, if known."""
        pending = self._pending
        if pending is not None and pending[0] is exc and pending[1] == stage_name:
            return pending[3]
        return None

    def stage_timeline(self) -> str:
        """``Load=completed (0.012s) | Insert=failed (0.003s)``, most recent last."""
        parts = [
            f"{name}={status} ({duration:.3f}s)"
            for name, status, duration in list(self._timeline)
        ]
        dropped = self._stages_closed - len(parts)
        if dropped > 0:
            parts.insert(0, f"... {dropped} earlier stage(s)")
        return " | ".join(parts)

    # -- failures ------------------------------------------------------------

    def _already_reported(self, exc: BaseException) -> bool:
        return any(reported is exc for reported in self._reported)

    def _mark_reported(self, exc: BaseException) -> None:
        self.failures_reported += 1
        self._reported.append(exc)

    def _release(self) -> None:
        """Drop the exceptions kept for attribution, and their frames."""
        self._pending = None
        self._reported.clear()

    def record_failure(
        self, exc: BaseException, stage_name: Optional[str] = None
    ) -> _Recorded:
        """Emit a full FailureOccurred for ``exc`` without raising it.

        For saga and compensation flows: the story still ends as it otherwise
        would. The result may be awaited in async code, which then also waits
        for async renderers; in sync code there is nothing to await.
        """
        if stage_name is None:
            stage_name, depth = self._attribution(exc)
        else:
            depth = 0
        if self._already_reported(exc):
            return _Recorded(None)
        self._mark_reported(exc)
        try:
            from . import _analysis

            event = _analysis.build_failure_event(
                self, exc, stage_name, depth, recorded=True, is_async=False
            )
        except Exception as error:
            _log_failure_path_error(self, error)
            return _Recorded(None)
        return _Recorded(self.dispatcher.emit(event) if event is not None else None)

    def __repr__(self) -> str:
        return (
            f"<StoryRuntime {self.story_name!r} id={self.story_id[:6]}"
            f" stages={self._stages_started}>"
        )


class _Recorded:
    """What record_failure returns: optionally awaited, never required."""

    __slots__ = ("_pending",)

    def __init__(self, pending: Optional[list[asyncio.Future[Any]]]) -> None:
        self._pending = pending

    def __await__(self) -> Generator[Any, None, None]:
        if self._pending:
            import asyncio

            yield from asyncio.gather(*self._pending).__await__()


def http_outcome(status_code: int) -> str:
    """``200`` → ``"200 OK"``; an unknown code is returned as its number."""
    from http import HTTPStatus

    try:
        return f"{int(status_code)} {HTTPStatus(int(status_code)).phrase}"
    except ValueError:
        return str(status_code)


# -- configuration -----------------------------------------------------------

_ENV_KEYS = (
    "RUNTIME_NARRATIVE_ENV",
    "RUNTIME_NARRATIVE_FAILURE_DIAGNOSTICS",
    "RUNTIME_NARRATIVE_ALLOW_RICH_IN_PRODUCTION",
)
_env_configs: dict[tuple[Optional[str], ...], FailureDiagnosticsConfig] = {}


def _config_from_env() -> FailureDiagnosticsConfig:
    env = os.environ
    key = tuple(env.get(name) for name in _ENV_KEYS)
    config = _env_configs.get(key)
    if config is None:
        config = FailureDiagnosticsConfig.from_env()
        if len(_env_configs) > 32:
            _env_configs.clear()
        _env_configs[key] = config
    return config


_default_dispatchers: dict[tuple[Optional[str], ...], Dispatcher] = {}


def _default_dispatcher() -> Dispatcher:
    """ConsoleRenderer, plus what RUNTIME_NARRATIVE_RICH_LOG_* ask for."""
    env = os.environ
    key = (
        env.get("RUNTIME_NARRATIVE_RICH_LOG_FILE"),
        env.get("RUNTIME_NARRATIVE_RICH_LOG_CONSOLE"),
    )
    dispatcher = _default_dispatchers.get(key)
    if dispatcher is None:
        from .renderers._defaults import default_renderers

        dispatcher = Dispatcher(default_renderers(*key))
        _default_dispatchers[key] = dispatcher
    return dispatcher


def _resolve_config(
    parent: Optional[StoryRuntime],
    diagnostics_config: Optional[FailureDiagnosticsConfig],
    overrides: dict[str, Any],
) -> FailureDiagnosticsConfig:
    if diagnostics_config is not None:
        base = diagnostics_config
    elif parent is not None:
        base = parent.config
    else:
        base = _config_from_env()
    if not any(value is not None for value in overrides.values()):
        return base
    return base.merge(**overrides)


# -- the context manager -----------------------------------------------------


class Story:
    """A story, opened with ``with`` or ``async with``. See ``story()``."""

    __slots__ = ("_config", "_config_parent", "_kwargs", "_scope", "name", "runtime")

    def __init__(self, name: str, **kwargs: Any) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a story needs a non-empty name; got {name!r}")
        self.name = name
        _check_kwargs(kwargs)
        # Validate the diagnostics settings now, so a bad value or environment
        # variable fails where the story is written, not at the first failure.
        parent_scope = current_scope.get()
        parent = parent_scope.runtime if parent_scope is not None else None
        self._config = _resolve_config(
            parent, kwargs.get("diagnostics_config"), _overrides(kwargs)
        )
        self._config_parent = parent
        self._kwargs = kwargs
        self.runtime: Optional[StoryRuntime] = None
        self._scope: Optional[Scope] = None

    # -- enter ---------------------------------------------------------------

    def _open(self) -> StoryRuntime:
        if self.runtime is not None:
            raise RuntimeError(
                f"story {self.name!r} is already open; create a new story() each time"
            )
        kwargs = self._kwargs
        parent_scope = current_scope.get()
        parent = parent_scope.runtime if parent_scope is not None else None
        renderers = kwargs.get("renderers")
        if isinstance(renderers, Dispatcher):
            dispatcher = renderers
        elif renderers is not None:
            dispatcher = Dispatcher(renderers)
        elif parent is not None:
            dispatcher = parent.dispatcher
        else:
            dispatcher = _default_dispatcher()
        analyzer = kwargs.get("failure_analyzer")
        if analyzer is None and parent is not None:
            analyzer = parent.failure_analyzer
        total = kwargs.get("total_stages")
        runtime = StoryRuntime(
            self.name,
            dispatcher=dispatcher,
            config=(
                self._config
                if parent is self._config_parent
                else _resolve_config(
                    parent, kwargs.get("diagnostics_config"), _overrides(kwargs)
                )
            ),
            failure_analyzer=analyzer,
            background_analysis=bool(
                kwargs.get(
                    "background_analysis",
                    parent.background_analysis if parent is not None else False,
                )
            ),
            total_stages=total,
            dry_run=bool(kwargs.get("dry_run", False)),
            module=kwargs.get("module") or _caller_module(),
            suppress_traceback=bool(kwargs.get("suppress_traceback", False)),
            parent=parent,
            remote_parent=_remote_parent(kwargs),
            story_id=kwargs.get("story_id"),
            first_stage_index=kwargs.get("resume_stage_index") or 0,
        )
        if total is not None:
            runtime.set_total_stages(total)
        self.runtime = runtime
        self._scope = Scope(runtime, None, -1, parent_scope, -1)
        current_scope.set(self._scope)
        return runtime

    def _started_event(self, runtime: StoryRuntime) -> StoryStarted:
        return StoryStarted(
            story_id=runtime.story_id,
            story_name=runtime.story_name,
            timestamp=runtime.started_at,
            parent_story_id=runtime.parent_story_id,
            root_story_id=runtime.root_story_id,
            module=runtime.module,
            total_stages=runtime.total_stages,
        )

    def __enter__(self) -> StoryRuntime:
        runtime = self._open()
        if runtime.dispatcher and not self._resumed:
            runtime.dispatcher.emit(self._started_event(runtime))
        return runtime

    async def __aenter__(self) -> StoryRuntime:
        runtime = self._open()
        if runtime.dispatcher and not self._resumed:
            await runtime.dispatcher.aemit(self._started_event(runtime))
        return runtime

    @property
    def _resumed(self) -> bool:
        return self._kwargs.get("resume_stage_index") is not None

    # -- exit ----------------------------------------------------------------

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        runtime, scope = self._take()
        try:
            if runtime.suspended:
                return
            if isinstance(exc, Exception) and not _is_cancellation(exc):
                self._fail_sync(runtime, exc)
            completed = _completed_event(runtime, exc)
            if runtime.dispatcher:
                runtime.dispatcher.emit(completed)
        finally:
            runtime._release()
            leave(scope)

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        runtime, scope = self._take()
        try:
            if runtime.suspended:
                return
            if isinstance(exc, Exception) and not _is_cancellation(exc):
                await self._fail_async(runtime, exc)
            completed = _completed_event(runtime, exc)
            if runtime.dispatcher:
                await _deliver_despite_cancellation(runtime.dispatcher, completed)
        finally:
            runtime._release()
            leave(scope)

    def _take(self) -> tuple[StoryRuntime, Scope]:
        runtime, scope = self.runtime, self._scope
        assert runtime is not None, "story exited unopened"
        assert scope is not None, "story exited unopened"
        runtime.duration_seconds = time.perf_counter() - runtime._t0
        return runtime, scope

    def _fail_sync(self, runtime: StoryRuntime, exc: BaseException) -> None:
        if runtime._already_reported(exc):
            return
        runtime._mark_reported(exc)
        stage_name, depth = runtime._attribution(exc)
        try:
            from . import _analysis

            event = _analysis.build_failure_event(
                runtime, exc, stage_name, depth, recorded=False, is_async=False
            )
        except Exception as error:  # never let the failure path replace exc
            _log_failure_path_error(runtime, error)
            return
        if event is not None and runtime.dispatcher:
            runtime.dispatcher.emit(event)

    async def _fail_async(self, runtime: StoryRuntime, exc: BaseException) -> None:
        if runtime._already_reported(exc):
            return
        runtime._mark_reported(exc)
        stage_name, depth = runtime._attribution(exc)
        try:
            from . import _analysis

            event = await _analysis.build_failure_event_async(
                runtime, exc, stage_name, depth
            )
        except Exception as error:  # never let the failure path replace exc
            _log_failure_path_error(runtime, error)
            return
        if event is not None and runtime.dispatcher:
            await runtime.dispatcher.aemit(event)


def _log_failure_path_error(runtime: StoryRuntime, error: BaseException) -> None:
    import logging

    logging.getLogger("runtime_narrative").error(
        "could not report a failure of story %r",
        runtime.story_name,
        exc_info=(type(error), error, error.__traceback__),
    )


def story(
    name: str,
    *,
    renderers: Union[Iterable[object], Dispatcher, None] = None,
    failure_analyzer: Optional[object] = None,
    background_analysis: Optional[bool] = None,
    diagnostics_config: Optional[FailureDiagnosticsConfig] = None,
    failure_diagnostics: Optional[str] = None,
    allow_rich_in_production: Optional[bool] = None,
    app_roots: Optional[Iterable[str]] = None,
    redact_extra: Optional[Iterable[str]] = None,
    runtime_environment: Optional[str] = None,
    total_stages: Optional[int] = None,
    dry_run: bool = False,
    module: Optional[str] = None,
    suppress_traceback: bool = False,
    parent_story_id: Optional[str] = None,
    root_story_id: Optional[str] = None,
    story_id: Optional[str] = None,
    resume_stage_index: Optional[int] = None,
) -> Story:
    """Open a story: ``with story("Import Customers") as runtime: ...``.

    Works with ``with`` and ``async with``. Opened inside another story it
    becomes a sub-story: it carries ``parent_story_id`` and ``root_story_id``
    and inherits the parent's renderers, diagnostics settings and analyzer
    unless given its own. ``renderers=None`` means the defaults (a
    ConsoleRenderer); ``renderers=[]`` means none.

    ``parent_story_id`` and ``root_story_id`` continue a story from another
    process (the integrations read them from request or task headers); they
    apply only when no story is open here.

    ``story_id`` gives the story this id (32 lowercase hex digits) instead of
    a new random one. ``resume_stage_index`` continues a story that an
    earlier run ended with ``runtime.suspend()``, under the same
    ``story_id``: no StoryStarted is emitted, and stage indexes go on from
    this number (that run's ``runtime.next_stage_index``). Stores keyed by
    story id then hold one story with the stages of every run. The Celery
    integration runs a task's retries this way.

    ``renderers`` may also be a prebuilt ``Dispatcher``, reused as is: an
    integration that opens many stories with the same renderers builds it
    once.

    The story never changes the exception that leaves it: the same object,
    traceback and chain, whatever a renderer or analyzer does.
    """
    kwargs: dict[str, Any] = {
        "renderers": renderers,
        "failure_analyzer": failure_analyzer,
        "diagnostics_config": diagnostics_config,
        "failure_diagnostics": failure_diagnostics,
        "allow_rich_in_production": allow_rich_in_production,
        "app_roots": app_roots,
        "redact_extra": redact_extra,
        "runtime_environment": runtime_environment,
        "total_stages": total_stages,
        "dry_run": dry_run,
        "module": module,
        "suppress_traceback": suppress_traceback,
        "parent_story_id": parent_story_id,
        "root_story_id": root_story_id,
        "story_id": story_id,
        "resume_stage_index": resume_stage_index,
    }
    if background_analysis is not None:
        kwargs["background_analysis"] = background_analysis
    return Story(name, **kwargs)


STORY_KWARGS = frozenset(
    {
        "renderers",
        "failure_analyzer",
        "background_analysis",
        "diagnostics_config",
        "failure_diagnostics",
        "allow_rich_in_production",
        "app_roots",
        "redact_extra",
        "runtime_environment",
        "total_stages",
        "dry_run",
        "module",
        "suppress_traceback",
        "parent_story_id",
        "root_story_id",
        "story_id",
        "resume_stage_index",
    }
)


def _check_kwargs(kwargs: dict[str, Any]) -> None:
    unknown = set(kwargs) - STORY_KWARGS
    if unknown:
        raise TypeError(
            f"story() got unknown argument(s) {', '.join(sorted(unknown))};"
            f" it accepts {', '.join(sorted(STORY_KWARGS))}"
        )
    total = kwargs.get("total_stages")
    if total is not None and (
        not isinstance(total, int) or isinstance(total, bool) or total < 0
    ):
        raise ValueError(f"total_stages must be an int >= 0; got {total!r}")
    story_id = kwargs.get("story_id")
    if story_id is not None and not _is_story_id(story_id):
        raise ValueError(f"story_id must be 32 lowercase hex digits; got {story_id!r}")
    resume = kwargs.get("resume_stage_index")
    if resume is not None:
        if not isinstance(resume, int) or isinstance(resume, bool) or resume < 0:
            raise ValueError(f"resume_stage_index must be an int >= 0; got {resume!r}")
        if story_id is None:
            raise ValueError("resume_stage_index needs the story_id of the story")


def _is_story_id(value: object) -> bool:
    return (
        isinstance(value, str)
        and len(value) == 32
        and not value.strip("0123456789abcdef")
    )


def _remote_parent(kwargs: dict[str, Any]) -> Optional[tuple[str, Optional[str]]]:
    parent_id = kwargs.get("parent_story_id")
    if not parent_id:
        return None
    return str(parent_id), kwargs.get("root_story_id") or None


def _overrides(kwargs: dict[str, Any]) -> dict[str, Any]:
    app_roots = kwargs.get("app_roots")
    redact_extra = kwargs.get("redact_extra")
    return {
        "failure_diagnostics": kwargs.get("failure_diagnostics"),
        "allow_rich_in_production": kwargs.get("allow_rich_in_production"),
        "app_roots": tuple(app_roots) if app_roots is not None else None,
        "redact_extra": tuple(redact_extra) if redact_extra is not None else None,
        "runtime_environment": kwargs.get("runtime_environment"),
    }


def _caller_module() -> Optional[str]:
    # Two frames up is the code that wrote ``with story(...)``: _open, then
    # __enter__/__aenter__. Only a name lookup; no frame is kept.
    try:
        frame = sys._getframe(3)
    except ValueError:
        return None
    name = frame.f_globals.get("__name__")
    while name is not None and name.startswith("runtime_narrative"):
        next_frame = frame.f_back
        if next_frame is None:
            break
        frame = next_frame
        name = frame.f_globals.get("__name__")
    return name if isinstance(name, str) else None


def _is_cancellation(exc: BaseException) -> bool:
    """True for CancelledError, and for a timeout that cancelled the work."""
    # Without asyncio loaded there can be no asyncio cancellation; this keeps
    # asyncio out of a sync-only program. The module may be half-initialized
    # while another thread imports it, hence getattr with a default.
    exceptions = sys.modules.get("asyncio.exceptions")
    cancelled = getattr(exceptions, "CancelledError", None)
    if cancelled is None:
        return False
    if isinstance(exc, cancelled):
        return True
    timeout = getattr(exceptions, "TimeoutError", TimeoutError)
    if isinstance(exc, (TimeoutError, timeout)):
        cause = exc.__cause__ if exc.__cause__ is not None else exc.__context__
        return isinstance(cause, cancelled)
    return False


def _status_of(exc: Optional[BaseException]) -> tuple[bool, str]:
    if exc is None:
        return True, "success"
    if _is_cancellation(exc) or isinstance(exc, GeneratorExit):
        return False, "cancelled"
    if isinstance(exc, SystemExit):
        code = exc.code
        return (code is None or code == 0), "exited"
    if isinstance(exc, Exception):
        return False, "failed"
    return False, "interrupted"


def _completed_event(
    runtime: StoryRuntime, exc: Optional[BaseException]
) -> StoryCompleted:
    success, status = _status_of(exc)
    if success and runtime.failure_reason is not None:
        success, status = False, "failed"
    elif success and runtime.cancel_reason is not None:
        success, status = False, "cancelled"
    if isinstance(exc, Exception) and runtime.dry_run and status == "failed":
        # A dry run suppresses stage bodies only; an error outside any stage
        # still fails the story.
        success = False
    runtime.success = success
    if status == "exited" and success:
        status = "success"
    completed, total = runtime.progress_counts()
    return StoryCompleted(
        story_id=runtime.story_id,
        story_name=runtime.story_name,
        success=success,
        progress_percent=runtime.progress_percent,
        completed_stages=completed,
        total_stages=total,
        timestamp=_now(),
        duration_seconds=runtime.duration_seconds or 0.0,
        parent_story_id=runtime.parent_story_id,
        root_story_id=runtime.root_story_id,
        outcome=runtime.outcome,
        status=status,
        error_type=type(exc).__name__ if exc is not None and not success else None,
    )


async def _deliver_despite_cancellation(
    dispatcher: Dispatcher, event: StoryCompleted
) -> None:
    """Deliver StoryCompleted even if the task is cancelled again meanwhile.

    The delivery runs shielded; a cancellation that arrives while it runs is
    held back until it is done (bounded), then raised again.
    """
    if not dispatcher.has_async:
        dispatcher.emit(event)
        return
    import asyncio

    task = asyncio.ensure_future(dispatcher.aemit(event))
    cancelled: Optional[BaseException] = None
    for _ in range(3):
        try:
            await asyncio.shield(task)
            break
        except asyncio.CancelledError as exc:
            cancelled = exc
            if task.done():
                break
    if cancelled is not None:
        raise cancelled
