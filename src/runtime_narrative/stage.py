"""stage(): a named step of the active story.

This is the hot path. Entering and leaving a stage reads one ContextVar,
allocates one scope and the two events (only when the story has renderers),
and walks no frames.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from types import TracebackType

from ._context import Scope, current_scope, leave
from ._errors import StoryNotActiveError
from .events import StageCompleted, StageStarted
from .story import _is_cancellation

# typing costs milliseconds at import; it is needed only by type checkers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

__all__ = ["Stage", "stage"]

_UTC = timezone.utc
_perf_counter = time.perf_counter
_now = datetime.now


class Stage:
    """A stage, entered with ``with`` or ``async with``. See ``stage()``.

    One Stage object is one run of the stage: create a new one each time
    (``with stage("Load"):`` does).
    """

    __slots__ = ("_scope", "_t0", "module", "name", "optional")

    def __init__(
        self, name: str, *, optional: bool = False, module: Optional[str] = None
    ) -> None:
        self.name = name
        self.optional = optional
        self.module = module
        self._scope: Optional[Scope] = None
        self._t0 = 0.0

    def _open(self) -> Optional[StageStarted]:
        parent = current_scope.get()
        if parent is None:
            if self.optional:
                return None
            raise StoryNotActiveError(
                f"stage({self.name!r}) needs an open story: wrap it in"
                " `with story(...)`, or use stage(..., optional=True); work run"
                " in a thread pool joins the caller's story when submitted as"
                " with_story_context(fn)"
            )
        runtime = parent.runtime
        depth = parent.depth + 1
        index = runtime._next_stage_index(depth)
        scope = Scope(runtime, self.name, index, parent, depth)
        self._scope = scope
        current_scope.set(scope)
        event = None
        if runtime.dispatcher:
            event = StageStarted(
                story_id=runtime.story_id,
                stage_name=self.name,
                timestamp=_now(_UTC),
                stage_index=index,
                parent_stage_name=parent.stage_name,
                story_name=runtime.story_name,
                root_story_id=runtime.root_story_id,
                module=self.module or runtime.module,
                depth=scope.depth,
            )
        self._t0 = _perf_counter()
        return event

    def _close(
        self, exc: Optional[BaseException]
    ) -> tuple[Optional[StageCompleted], bool]:
        """Leave the stage; return the completion event and whether to suppress."""
        duration = _perf_counter() - self._t0
        scope = self._scope
        if scope is None:  # an optional stage outside a story
            return None, False
        self._scope = None
        leave(scope)
        runtime = scope.runtime
        suppress = False
        if exc is not None and not isinstance(exc, GeneratorExit):
            if isinstance(exc, Exception) and runtime.dry_run:
                suppress = True
            else:
                status = "failed" if isinstance(exc, Exception) else "cancelled"
                if status == "failed" and _is_cancellation(exc):
                    status = "cancelled"
                runtime._stage_done(self.name, status, duration, scope.depth)
                if isinstance(exc, Exception):
                    runtime._note_exception(exc, self.name, scope.depth)
                return None, False
        runtime._stage_done(self.name, "completed", duration, scope.depth)
        if not runtime.dispatcher:
            return None, suppress
        progress = runtime.progress_percent if runtime.total_stages else None
        event = StageCompleted(
            story_id=runtime.story_id,
            stage_name=self.name,
            timestamp=_now(_UTC),
            duration_seconds=duration,
            stage_index=scope.stage_index,
            parent_stage_name=scope.parent.stage_name if scope.parent else None,
            story_name=runtime.story_name,
            root_story_id=runtime.root_story_id,
            depth=scope.depth,
            progress_percent=progress,
        )
        return event, suppress

    def __enter__(self) -> Stage:
        event = self._open()
        if event is not None:
            assert self._scope is not None
            self._scope.runtime.dispatcher.emit(event)
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool:
        scope = self._scope
        event, suppress = self._close(exc)
        if event is not None and scope is not None:
            scope.runtime.dispatcher.emit(event)
        return suppress

    async def __aenter__(self) -> Stage:
        event = self._open()
        if event is not None:
            assert self._scope is not None
            dispatcher = self._scope.runtime.dispatcher
            if dispatcher.has_async:
                await dispatcher.aemit(event)
            else:
                dispatcher.emit(event)
        return self

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool:
        scope = self._scope
        event, suppress = self._close(exc)
        if event is not None and scope is not None:
            dispatcher = scope.runtime.dispatcher
            if dispatcher.has_async:
                await dispatcher.aemit(event)
            else:
                dispatcher.emit(event)
        return suppress

    def __repr__(self) -> str:
        return f"<Stage {self.name!r}>"


def stage(name: str, *, optional: bool = False, module: Optional[str] = None) -> Stage:
    """A named step of the active story: ``with stage("Load CSV"): ...``.

    Stages nest; each gets a 0-based ``stage_index`` in start order and the
    enclosing stage as ``parent_stage_name``. Outside a story a stage raises
    StoryNotActiveError, unless ``optional=True`` makes it a no-op.
    """
    return Stage(name, optional=optional, module=module)
