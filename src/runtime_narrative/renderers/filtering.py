"""Renderer wrappers: pass only some events, or fold runs of repeated stages.

Both wrappers mirror the wrapped renderer: when its ``handle`` is ``async
def``, theirs is too, so the dispatcher delivers them the same way.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Awaitable, Generator
from typing import Any, Callable, Optional

from runtime_narrative.events import (
    LogRecorded,
    StageCompleted,
    StageStarted,
    StoryCompleted,
)

__all__ = ["CoalescingRenderer", "FilteredRenderer"]


def _handle_of(renderer: object) -> Callable[[Any], Any]:
    handle = getattr(renderer, "handle", None)
    if not callable(handle):
        raise TypeError(
            f"{type(renderer).__qualname__} has no handle(event) method;"
            " a renderer is any object with handle(self, event)"
        )
    return handle  # type: ignore[no-any-return]


def _is_async(handle: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(handle):
        return True
    call = getattr(handle, "__call__", None)  # noqa: B004 - a callable object
    return call is not None and inspect.iscoroutinefunction(call)


class _Awaitables:
    """Several results of a sync ``handle`` that must be awaited, in order."""

    __slots__ = ("_results",)

    def __init__(self, results: list[Awaitable[Any]]) -> None:
        self._results = results

    def __await__(self) -> Generator[Any, None, None]:
        for result in self._results:
            yield from _awaited(result).__await__()


async def _awaited(result: Awaitable[Any]) -> None:
    await result


# -- FilteredRenderer ----------------------------------------------------------


class FilteredRenderer:
    """Forward to ``renderer`` only the events for which ``predicate`` is true.

    ``FilteredRenderer(lambda e: e.story_name == "Nightly ETL", JsonRenderer())``.
    The predicate runs for every event, on the thread that emits it; if it
    raises, the event is not delivered and the error is reported like any
    renderer error. When ``renderer.handle`` is ``async def`` so is this
    wrapper's ``handle``.

    .. versionadded:: 0.1.0
    """

    renderer: object
    predicate: Callable[[Any], bool]

    def __new__(
        cls, predicate: Callable[[Any], bool], renderer: object
    ) -> FilteredRenderer:
        if cls is FilteredRenderer and _is_async(_handle_of(renderer)):
            cls = _AsyncFilteredRenderer
        return super().__new__(cls)

    def __init__(self, predicate: Callable[[Any], bool], renderer: object) -> None:
        if not callable(predicate):
            raise TypeError("predicate must be callable: predicate(event) -> bool")
        self.predicate = predicate
        self.renderer = renderer
        self._handle = _handle_of(renderer)

    def handle(self, event: object) -> Any:
        """Deliver ``event`` to the wrapped renderer if the predicate accepts it."""
        if self.predicate(event):
            return self._handle(event)
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.predicate!r}, {self.renderer!r})"


class _AsyncFilteredRenderer(FilteredRenderer):
    async def handle(self, event: object) -> None:
        if self.predicate(event):
            await self._handle(event)


# -- CoalescingRenderer --------------------------------------------------------


class _Run:
    """A run of identical stages at one depth of one story."""

    __slots__ = ("count", "folded", "name", "total", "waiting")

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 1  # occurrences started
        self.folded = 0  # folded occurrences that completed
        self.total = 0.0  # their summed duration, in seconds
        self.waiting = False  # the last occurrence completed; the next may repeat


class _StoryRuns:
    """The runs open in one story, by depth, and the folding in progress."""

    __slots__ = ("folding_depth", "root_story_id", "runs", "story_name")

    def __init__(self, story_name: str, root_story_id: Optional[str]) -> None:
        self.story_name = story_name
        self.root_story_id = root_story_id
        self.runs: dict[int, _Run] = {}
        self.folding_depth: Optional[int] = None


class CoalescingRenderer:
    """Fold runs of back-to-back identical stages for a human reader.

    The rule: within one story, a stage that starts right after a stage of
    the same name at the same depth completed continues a *run*. The first
    ``threshold`` occurrences of a run are passed through in full, with their
    inner stages; later ones are folded: neither they nor their inner stages
    reach ``renderer``. Runs are watched at every depth, so a loop of stages
    inside one stage folds too.

    A run ends with the next event of that story that does not continue it:
    another stage at the same depth, the end of the enclosing stage, or any
    other event (a log record, a failure, the end of the story). When
    anything was folded, one LogRecorded summary is delivered just before
    that event: level INFO, logger ``runtime_narrative.coalesce``, with the
    count, total and average time of the folded occurrences in its message
    and in ``fields``. An event other than a stage event that arrives during
    a folded occurrence ends the folding there, so it is always shown.

    The window is the run itself, not a time span: nothing is held back on a
    timer, and a summary is never lost (at the latest it comes just before
    StoryCompleted). Events of other stories never end a run.

    Meant for human-facing renderers (the console). Machine-facing ones
    (JSON, stores, spans) should see every event.

    .. versionadded:: 0.1.0
    """

    renderer: object
    threshold: int

    def __new__(cls, renderer: object, threshold: int = 2) -> CoalescingRenderer:
        if cls is CoalescingRenderer and _is_async(_handle_of(renderer)):
            cls = _AsyncCoalescingRenderer
        return super().__new__(cls)

    def __init__(self, renderer: object, threshold: int = 2) -> None:
        if not isinstance(threshold, int) or isinstance(threshold, bool):
            raise TypeError(f"threshold must be an int; got {threshold!r}")
        if threshold < 1:
            raise ValueError(f"threshold must be >= 1; got {threshold!r}")
        self.renderer = renderer
        self.threshold = threshold
        self._handle = _handle_of(renderer)
        self._stories: dict[str, _StoryRuns] = {}
        self._lock = threading.Lock()

    def handle(self, event: object) -> Any:
        """Pass ``event`` on, fold it, or deliver a summary before it."""
        results = [
            result
            for result in (self._handle(e) for e in self._route(event))
            if result is not None
        ]
        if not results:
            return None
        if len(results) == 1:
            return results[0]
        return _Awaitables(results)

    # -- the rule --------------------------------------------------------------

    def _route(self, event: object) -> list[object]:
        """The events to deliver for ``event``, in order: maybe none."""
        story_id = getattr(event, "story_id", None)
        if not isinstance(story_id, str):
            return [event]
        with self._lock:
            if isinstance(event, StageStarted):
                return self._stage_started(story_id, event)
            story = self._stories.get(story_id)
            if story is None:
                return [event]
            if isinstance(event, StageCompleted):
                return self._stage_completed(story_id, story, event)
            out = self._flush(story_id, story, below=-1)
            story.folding_depth = None
            if isinstance(event, StoryCompleted):
                del self._stories[story_id]
            return [*out, event]

    def _stage_started(self, story_id: str, event: StageStarted) -> list[object]:
        story = self._stories.get(story_id)
        if story is None:
            story = _StoryRuns(event.story_name, event.root_story_id)
            self._stories[story_id] = story
        depth = event.depth
        if story.folding_depth is not None and depth > story.folding_depth:
            return []
        out = self._flush(story_id, story, below=depth)
        run = story.runs.get(depth)
        if run is not None and run.waiting and run.name == event.stage_name:
            run.count += 1
            run.waiting = False
            if run.count > self.threshold:
                story.folding_depth = depth
                return out
            return [*out, event]
        if run is not None:
            out.extend(self._summaries(story_id, story, [run]))
        story.runs[depth] = _Run(event.stage_name)
        return [*out, event]

    def _stage_completed(
        self, story_id: str, story: _StoryRuns, event: StageCompleted
    ) -> list[object]:
        depth = event.depth
        folding = story.folding_depth
        if folding is not None and depth > folding:
            return []
        out = self._flush(story_id, story, below=depth)
        run = story.runs.get(depth)
        if run is None or run.waiting or run.name != event.stage_name:
            return [*out, event]
        run.waiting = True
        if folding == depth:
            story.folding_depth = None
            run.folded += 1
            run.total += event.duration_seconds
            return out
        return [*out, event]

    def _flush(self, story_id: str, story: _StoryRuns, *, below: int) -> list[object]:
        """End the runs deeper than ``below``; their summaries, deepest first."""
        ended = sorted((d for d in story.runs if d > below), reverse=True)
        runs = [story.runs.pop(d) for d in ended]
        return self._summaries(story_id, story, runs)

    def _summaries(
        self, story_id: str, story: _StoryRuns, runs: list[_Run]
    ) -> list[object]:
        return [_summary(story_id, story, run) for run in runs if run.folded]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.renderer!r}, threshold={self.threshold})"


class _AsyncCoalescingRenderer(CoalescingRenderer):
    async def handle(self, event: object) -> None:
        for routed in self._route(event):
            await self._handle(routed)


def _summary(story_id: str, story: _StoryRuns, run: _Run) -> LogRecorded:
    from datetime import datetime, timezone

    average = run.total / run.folded
    times = "time" if run.folded == 1 else "times"
    return LogRecorded(
        story_id=story_id,
        story_name=story.story_name,
        root_story_id=story.root_story_id,
        stage_name=run.name,
        level="INFO",
        logger_name="runtime_narrative.coalesce",
        message=(
            f"{run.name!r} ran {run.folded} more {times} (folded):"
            f" {run.total:.3f}s total, {average:.3f}s on average"
        ),
        timestamp=datetime.now(timezone.utc),
        fields={
            "coalesced_stage": run.name,
            "count": run.folded,
            "total_seconds": run.total,
            "average_seconds": average,
        },
    )
