"""NarrativeTaskGroup: concurrent asyncio tasks inside one story.

The same on every Python from 3.9 on (it does not use ``asyncio.TaskGroup``,
which 3.9 and 3.10 lack). Semantics:

* A task copies the context it is created in, so it belongs to the open story
  and its stages nest under the stage that was open at ``create_task``.
* When a task fails (raises an ``Exception``), its siblings still running are
  cancelled, as ``asyncio.TaskGroup`` does. The body of the ``async with``
  block is not interrupted: it runs on to its end.
* Leaving the block waits for every task. Then, if any task failed,
  :class:`NarrativeTaskGroupError` is raised, with ``failed_tasks`` mapping
  each failed task's name to its exception (the original object). Its
  ``__cause__`` is the first failure, so the story's failure block and
  diagnosis show where that one was raised.
* Cancelled tasks are not failures; their names are in ``cancelled_tasks``.
* An error raised by the body itself cancels the tasks and leaves the block
  unchanged, unless tasks failed too: then it is part of the group error,
  under the name ``"<body>"``.
* A task raising a ``BaseException`` that is not an ``Exception``
  (``KeyboardInterrupt``, ``SystemExit``) cancels its siblings, and that
  exception leaves the block unchanged.
* The task running the block being cancelled cancels the tasks too, waits
  for them, and the cancellation goes on (unless tasks failed: then the
  group error is raised, as ``asyncio.TaskGroup`` does).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, Optional, TypeVar

from ._context import current_scope
from .events import STORY_BODY

__all__ = ["NarrativeTaskGroup", "NarrativeTaskGroupError"]

T = TypeVar("T")

#: The key of the block's own error in ``failed_tasks``.
BODY = "<body>"


class NarrativeTaskGroupError(Exception):
    """One or more tasks of a :class:`NarrativeTaskGroup` failed.

    ``failed_tasks`` maps each failed task's name to the exception it raised,
    in the order they failed; ``cancelled_tasks`` names the tasks cancelled
    because of it.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        failed_tasks: dict[str, BaseException],
        cancelled_tasks: tuple[str, ...] = (),
    ) -> None:
        self.failed_tasks = dict(failed_tasks)
        self.cancelled_tasks = cancelled_tasks
        described = "; ".join(
            f"{name}: {type(exc).__name__}: {exc}" for name, exc in failed_tasks.items()
        )
        count = len(failed_tasks)
        super().__init__(f"{count} task{'s' if count != 1 else ''} failed: {described}")

    def __reduce__(self) -> Any:
        return (type(self), (self.failed_tasks, self.cancelled_tasks))


class NarrativeTaskGroup:
    """Run tasks concurrently under the open story; wait for all on exit.

    ::

        async with story("Parallel Pipeline"):
            async with NarrativeTaskGroup() as tg:
                tg.create_task(fetch_orders(), name="Fetch Orders")
                tg.create_task(fetch_inventory(), name="Fetch Inventory")

    See the module documentation for what happens when a task fails.

    .. versionadded:: 0.1.0
    """

    def __init__(self) -> None:
        self._tasks: dict[asyncio.Task[Any], str] = {}
        self._failed: dict[str, BaseException] = {}
        self._fatal: Optional[BaseException] = None
        self._entered = False
        self._closed = False

    async def __aenter__(self) -> NarrativeTaskGroup:
        if self._entered:
            raise RuntimeError("a NarrativeTaskGroup can be entered only once")
        self._entered = True
        return self

    def create_task(
        self,
        coro: Coroutine[Any, Any, T],
        *,
        name: Optional[str] = None,
    ) -> asyncio.Task[T]:
        """Start ``coro`` as a task of the group, in a copy of this context.

        ``name`` is the task's name (asyncio's ``Task-N`` when omitted); a
        name already used in the group gets a suffix (``Fetch (2)``), so each
        failure keeps its own entry in ``failed_tasks``.
        """
        if not self._entered or self._closed:
            coro.close()  # never awaited: close it so no warning is left
            state = "finished" if self._closed else "not entered"
            raise RuntimeError(f"NarrativeTaskGroup is {state}; cannot create a task")
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks[task] = self._unique(task.get_name())
        task.add_done_callback(self._task_done)
        return task

    def _unique(self, name: str) -> str:
        taken = set(self._tasks.values())
        if name not in taken:
            return name
        number = 2
        while f"{name} ({number})" in taken:
            number += 1
        return f"{name} ({number})"

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        if isinstance(exc, Exception):
            self._failed[self._tasks[task]] = exc
        elif self._fatal is None:
            self._fatal = exc
        self._cancel_all()

    def _cancel_all(self) -> None:
        for task in self._tasks:
            if not task.done():
                task.cancel()

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool:
        cancellation: Optional[BaseException] = None
        if isinstance(exc, asyncio.CancelledError):
            cancellation = exc
        if exc is not None:
            self._cancel_all()
        try:
            cancellation = await self._wait_for_all() or cancellation
        finally:
            self._closed = True

        if self._fatal is not None:
            raise self._fatal
        if not self._failed:
            if cancellation is not None and cancellation is not exc:
                raise cancellation
            return False  # the body's own error, if any, leaves unchanged
        failed = dict(self._failed)
        if exc is not None and isinstance(exc, Exception):
            failed = {BODY: exc, **failed}
        raise self._group_error(failed)

    async def _wait_for_all(self) -> Optional[BaseException]:
        """Wait until every task is done; return a cancellation received meanwhile."""
        cancellation: Optional[BaseException] = None
        while True:
            pending = [task for task in self._tasks if not task.done()]
            if not pending:
                return cancellation
            try:
                await asyncio.wait(pending)
            except asyncio.CancelledError as error:
                # The task running the block was cancelled: stop the tasks,
                # but still wait for them, so none outlives the group.
                cancellation = error
                self._cancel_all()

    def _group_error(self, failed: dict[str, BaseException]) -> NarrativeTaskGroupError:
        cancelled = tuple(
            name for task, name in self._tasks.items() if task.cancelled()
        )
        error = NarrativeTaskGroupError(failed, cancelled)
        first = next(iter(self._failed.values()))
        error.__cause__ = first
        _attribute_to_stage_of(error, first)
        return error


def _attribute_to_stage_of(error: BaseException, original: BaseException) -> None:
    """Report ``error`` at the stage where ``original`` was raised, if known."""
    scope = current_scope.get()
    if scope is None:
        return
    runtime = scope.runtime
    stage_name, depth = runtime._attribution(original)
    if stage_name != STORY_BODY:
        runtime._note_exception(error, stage_name, depth)
