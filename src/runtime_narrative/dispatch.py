"""Fan events out to renderers, isolating each renderer's errors.

A renderer is any object with ``handle(event)``; ``handle`` may be a plain
method or ``async def``. The dispatcher decides once, when it is built, which
renderers are async, so delivering an event is a loop over a tuple.

Delivery rules:

* In an ``async with`` story, async renderers are awaited in order.
* In a ``with`` story, an async renderer is still delivered: as a task on the
  running event loop of this thread when there is one (chained per renderer,
  so it sees events in order), otherwise on a private event-loop thread,
  waiting for it at most ``ASYNC_DELIVERY_TIMEOUT`` seconds.
* A renderer that raises is reported once on the ``runtime_narrative`` logger
  with its name and the event; the other renderers still get the event.
  Every event not delivered is counted in ``delivery_failures()``.
"""

from __future__ import annotations

import _thread

# typing costs milliseconds at import; it is needed only by type checkers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio
    from collections.abc import Awaitable, Coroutine, Iterable
    from typing import Any, Callable, Optional

__all__ = [
    "ASYNC_DELIVERY_TIMEOUT",
    "Dispatcher",
    "delivery_failures",
]

#: Longest wait, in seconds, for an async renderer called from a sync story.
ASYNC_DELIVERY_TIMEOUT = 10.0

_failures = 0
_failures_lock = _thread.allocate_lock()


def delivery_failures() -> int:
    """How many events, in this process, did not reach some renderer."""
    return _failures


#: A renderer's first failures are each logged; after that, one in this many.
LOG_EVERY_AFTER_FIRST = 100
_LOGGED_IN_FULL = 10
_failures_by_renderer: dict[int, int] = {}


def report_renderer_error(renderer: object, event: object, exc: BaseException) -> None:
    """Count the undelivered event and log the renderer's failure.

    The first failure of a renderer carries its traceback and the next few
    are a line each; after ten, one line in every hundred says how many have
    failed, so a broken renderer cannot flood the log. Every failure is
    counted in ``delivery_failures()``.
    """
    global _failures
    with _failures_lock:
        _failures += 1
        count = _failures_by_renderer.get(id(renderer), 0) + 1
        _failures_by_renderer[id(renderer)] = count
    if count > _LOGGED_IN_FULL and count % LOG_EVERY_AFTER_FIRST:
        return
    import logging  # only on this error path; logging is slow to import

    # Raised while the user's exception was being handled, the renderer's
    # error has it as context; the user's exception is not the renderer's
    # story to tell.
    exc.__suppress_context__ = True
    logging.getLogger("runtime_narrative").error(
        "renderer %s failed on %s for story %r (%s: %s; %d failure(s) of this"
        " renderer so far); the story goes on",
        _name(renderer),
        type(event).__name__,
        getattr(event, "story_name", None),
        type(exc).__name__,
        exc,
        count,
        exc_info=(type(exc), exc, exc.__traceback__) if count == 1 else None,
    )


def _name(renderer: object) -> str:
    cls = type(renderer)
    return f"{cls.__module__}.{cls.__qualname__}"


class Dispatcher:
    """Delivers events to a fixed tuple of renderers."""

    __slots__ = ("_entries", "has_async", "renderers", "wants_stage_started")

    def __init__(self, renderers: Iterable[object]) -> None:
        self.renderers: tuple[object, ...] = tuple(renderers)
        entries = []
        for renderer in self.renderers:
            handle = getattr(renderer, "handle", None)
            if not callable(handle):
                raise TypeError(
                    f"renderer {_name(renderer)} has no handle(event) method;"
                    " a renderer is any object with handle(self, event)"
                )
            entries.append((renderer, handle, _is_async(handle)))
        self._entries: tuple[tuple[object, Callable[[Any], Any], bool], ...] = tuple(
            entries
        )
        self.has_async = any(is_async for _, _, is_async in self._entries)
        # A renderer may say it ignores StageStarted (``wants_stage_started =
        # False``); when all do, stages do not build that event at all.
        self.wants_stage_started = any(
            getattr(renderer, "wants_stage_started", True)
            for renderer in self.renderers
        )

    def __bool__(self) -> bool:
        return bool(self._entries)

    def emit(self, event: object) -> Optional[list[asyncio.Future[Any]]]:
        """Deliver ``event`` from synchronous code.

        Returns the tasks scheduled on this thread's running loop for async
        renderers, if any, so a caller that can await may wait for them.
        """
        pending: Optional[list[asyncio.Future[Any]]] = None
        for renderer, handle, is_async in self._entries:
            try:
                result = handle(event)
            except Exception as exc:
                report_renderer_error(renderer, event, exc)
                continue
            if result is not None and (is_async or _is_awaitable(result)):
                task = _deliver_from_sync(renderer, event, result)
                if task is not None:
                    if pending is None:
                        pending = []
                    pending.append(task)
        return pending

    async def aemit(self, event: object) -> None:
        """Deliver ``event`` from async code, awaiting async renderers in order."""
        for renderer, handle, _ in self._entries:
            try:
                result = handle(event)
                if result is not None and _is_awaitable(result):
                    await result
            except Exception as exc:
                report_renderer_error(renderer, event, exc)


def _is_async(handle: Callable[..., Any]) -> bool:
    import inspect  # only when a dispatcher is built, never per event

    if inspect.iscoroutinefunction(handle):
        return True
    call = getattr(handle, "__call__", None)  # noqa: B004 - a callable object
    return call is not None and inspect.iscoroutinefunction(call)


def _is_awaitable(value: object) -> bool:
    return hasattr(type(value), "__await__")


# -- async renderers called from sync code -----------------------------------

# Tasks are kept here until done: the event loop holds only weak references.
_running_tasks: set[asyncio.Future[Any]] = set()
# The last task per renderer, so the next event for it waits its turn.
_last_task: dict[int, asyncio.Future[Any]] = {}


def _deliver_from_sync(
    renderer: object, event: object, awaitable: Awaitable[Any]
) -> Optional[asyncio.Future[Any]]:
    import asyncio

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is not None:
        return _schedule_on_loop(loop, renderer, event, awaitable)
    _run_on_bridge(renderer, event, awaitable)
    return None


def _schedule_on_loop(
    loop: asyncio.AbstractEventLoop,
    renderer: object,
    event: object,
    awaitable: Awaitable[Any],
) -> asyncio.Future[Any]:
    import asyncio

    previous = _last_task.get(id(renderer))

    async def deliver() -> None:
        if previous is not None and not previous.done():
            await asyncio.wait([previous])
        try:
            await awaitable
        except Exception as exc:
            report_renderer_error(renderer, event, exc)

    task = loop.create_task(deliver())
    _running_tasks.add(task)
    _last_task[id(renderer)] = task

    def forget(done: asyncio.Future[Any]) -> None:
        _running_tasks.discard(done)
        if _last_task.get(id(renderer)) is done:
            del _last_task[id(renderer)]

    task.add_done_callback(forget)
    return task


class _Bridge:
    """A private event loop on a daemon thread, for async renderers in sync code."""

    def __init__(self) -> None:
        self._lock = _thread.allocate_lock()
        self._loop: Optional[asyncio.AbstractEventLoop] = None

    def loop(self) -> asyncio.AbstractEventLoop:
        import asyncio
        import threading

        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever,
                    name="runtime-narrative-async-renderers",
                    daemon=True,
                )
                thread.start()
                self._loop = loop
            return self._loop


_bridge = _Bridge()


def _run_on_bridge(renderer: object, event: object, awaitable: Awaitable[Any]) -> None:
    async def deliver() -> None:
        await awaitable

    import asyncio

    coroutine: Coroutine[Any, Any, None] = deliver()
    future = asyncio.run_coroutine_threadsafe(coroutine, _bridge.loop())
    try:
        future.result(timeout=ASYNC_DELIVERY_TIMEOUT)
    except Exception as exc:  # the renderer's own error, or the wait timed out
        future.cancel()
        report_renderer_error(renderer, event, exc)
