"""stage(): a named step of the active story.

This is the hot path. A stage is itself the scope it pushes onto the
context's stack, so entering and leaving one reads and writes one
ContextVar, allocates nothing but the two events (and those only when the
story has renderers), takes no lock unless a second thread has joined the
story, and walks no frames.
"""

from __future__ import annotations

import _thread
import time
from datetime import datetime, timezone

from ._context import Scope, current_scope, leave
from ._errors import StoryNotActiveError
from .events import StageCompleted, StageStarted
from .story import _is_cancellation

# typing costs milliseconds at import; it is needed only by type checkers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import TracebackType
    from typing import Optional

    from .story import StoryRuntime

__all__ = ["Stage", "stage"]

_UTC = timezone.utc
_now = datetime.now
_perf_counter = time.perf_counter
_get_ident = _thread.get_ident
_get_scope = current_scope.get
_set_scope = current_scope.set


class Stage(Scope):
    """A stage, entered with ``with`` or ``async with``; ``stage`` is this class.

    ``with stage("Load CSV"):`` opens a named step of the active story.
    Stages nest; each gets a 0-based ``stage_index`` in start order and the
    enclosing stage as ``parent_stage_name``. Outside a story a stage raises
    StoryNotActiveError, unless ``optional=True`` makes it a no-op.

    One Stage object is one run of the stage: ``with stage(...)`` makes a new
    one each time. Once entered, its scope fields never change.
    """

    __slots__ = ("_t0", "module", "optional")

    def __init__(
        self, name: str, *, optional: bool = False, module: Optional[str] = None
    ) -> None:
        self.stage_name = name
        self.optional = optional
        self.module = module
        self.runtime = None  # type: ignore[assignment]  # set on entry

    @property
    def name(self) -> str:
        return self.stage_name  # type: ignore[return-value]

    # -- entering ------------------------------------------------------------

    def _open(self) -> Optional[StageStarted]:
        parent = _get_scope()
        if parent is None:
            if self.optional:
                return None
            raise StoryNotActiveError(
                f"stage({self.stage_name!r}) needs an open story: wrap it in"
                " `with story(...)`, or use stage(..., optional=True); work run"
                " in a thread pool joins the caller's story when submitted as"
                " with_story_context(fn)"
            )
        runtime = parent.runtime
        depth = parent.depth + 1
        index = next(runtime._stage_counter)  # atomic, so safe across threads
        runtime._stages_started = index + 1
        if depth == 0:
            runtime._top_started += 1
        if runtime._lock is None and _get_ident() != runtime._owner_thread:
            runtime._lock = _thread.allocate_lock()
        self.runtime = runtime
        self.parent = parent
        self.depth = depth
        self.stage_index = index
        _set_scope(self)
        if not runtime.dispatcher.wants_stage_started:
            return None
        # Positional: keyword parsing alone costs a third of building an event.
        return StageStarted(
            runtime.story_id,
            self.stage_name,  # type: ignore[arg-type]
            _now(_UTC),
            index,
            parent.stage_name,
            runtime.story_name,
            runtime.root_story_id,
            self.module or runtime.module,
            depth,
        )

    def __enter__(self) -> Stage:
        event = self._open()
        if event is not None:
            self.runtime.dispatcher.emit(event)
        self._t0 = _perf_counter()
        return self

    async def __aenter__(self) -> Stage:
        event = self._open()
        if event is not None:
            dispatcher = self.runtime.dispatcher
            if dispatcher.has_async:
                await dispatcher.aemit(event)
            else:
                dispatcher.emit(event)
        self._t0 = _perf_counter()
        return self

    # -- leaving -------------------------------------------------------------

    def _close(
        self, exc: Optional[BaseException]
    ) -> tuple[Optional[StageCompleted], bool]:
        """Leave the stage; return the completion event and whether to suppress."""
        duration = _perf_counter() - self._t0
        runtime: Optional[StoryRuntime] = self.runtime
        if runtime is None:  # an optional stage outside a story
            return None, False
        if _get_scope() is self:
            _set_scope(self.parent)
        else:
            leave(self)
        suppress = False
        if exc is not None and not isinstance(exc, GeneratorExit):
            if not (runtime.dry_run and isinstance(exc, Exception)):
                self._failed(runtime, exc, duration)
                return None, False
            suppress = True
        name: str = self.stage_name  # type: ignore[assignment]
        if runtime._lock is None:
            runtime.completed_stages += 1
            if self.depth == 0:
                runtime._top_completed += 1
            runtime._stages_closed += 1
            runtime._timeline.append((name, "completed", duration))
        else:
            runtime._stage_done(name, "completed", duration, self.depth)
        if not runtime.dispatcher._entries or runtime.duration_seconds is not None:
            # Nothing to tell, or the story already ended: a generator holding
            # this stage was closed after its story (by the garbage collector).
            return None, suppress
        parent = self.parent
        return (
            StageCompleted(
                runtime.story_id,
                name,
                _now(_UTC),
                duration,
                self.stage_index,
                parent.stage_name if parent is not None else None,
                runtime.story_name,
                runtime.root_story_id,
                self.depth,
                (
                    runtime.progress_percent
                    if self.depth == 0 and runtime.total_stages
                    else None
                ),
            ),
            suppress,
        )

    def _failed(
        self, runtime: StoryRuntime, exc: BaseException, duration: float
    ) -> None:
        name: str = self.stage_name  # type: ignore[assignment]
        if isinstance(exc, Exception) and not _is_cancellation(exc):
            runtime._stage_done(name, "failed", duration, self.depth)
            runtime._note_exception(exc, name, self.depth, self.stage_index)
        else:
            runtime._stage_done(name, "cancelled", duration, self.depth)

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool:
        event, suppress = self._close(exc)
        if event is not None:
            self.runtime.dispatcher.emit(event)
        return suppress

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool:
        event, suppress = self._close(exc)
        if event is not None:
            dispatcher = self.runtime.dispatcher
            if dispatcher.has_async:
                await dispatcher.aemit(event)
            else:
                dispatcher.emit(event)
        return suppress

    def __repr__(self) -> str:
        return f"<Stage {self.stage_name!r}>"


stage = Stage
