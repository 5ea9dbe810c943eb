"""StoryRecorder: record a story's events in tests and assert on them.

``StoryRecorder("ETL")`` opens a story (``with`` or ``async with``) whose
events it records, silently. ``StoryRecorder()`` with no name is just a
renderer: pass it in ``renderers=[...]`` of any story or integration.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any, Optional, TypeVar

from .events import (
    FailureOccurred,
    LLMAnalysisReady,
    LogRecorded,
    StageCompleted,
    StageStarted,
    StoryCompleted,
    StoryStarted,
)
from .story import Story, StoryRuntime

__all__ = ["StoryRecorder"]

E = TypeVar("E")


class StoryRecorder:
    """Records every event it is given, in order, from any thread."""

    def __init__(self, name: Optional[str] = None, **story_kwargs: Any) -> None:
        self.events: list[Any] = []
        self._lock = threading.Lock()
        self.runtime: Optional[StoryRuntime] = None
        self._story: Optional[Story] = None
        if name is not None:
            extra = list(story_kwargs.pop("renderers", None) or ())
            self._story = Story(name, renderers=[self, *extra], **story_kwargs)

    # -- renderer ------------------------------------------------------------

    def handle(self, event: object) -> None:
        with self._lock:
            self.events.append(event)

    # -- context manager -----------------------------------------------------

    def _require_story(self) -> Story:
        if self._story is None:
            raise TypeError(
                "StoryRecorder() without a name is only a renderer; give it a"
                ' name to open a story: StoryRecorder("ETL")'
            )
        return self._story

    def __enter__(self) -> StoryRecorder:
        self.runtime = self._require_story().__enter__()
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self._require_story().__exit__(exc_type, exc, tb)

    async def __aenter__(self) -> StoryRecorder:
        self.runtime = await self._require_story().__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self._require_story().__aexit__(exc_type, exc, tb)

    # -- queries -------------------------------------------------------------

    def of_type(self, event_type: type[E]) -> list[E]:
        """The recorded events of one type, in order."""
        with self._lock:
            return [event for event in self.events if isinstance(event, event_type)]

    @property
    def stories_started(self) -> list[StoryStarted]:
        return self.of_type(StoryStarted)

    @property
    def stages_started(self) -> list[StageStarted]:
        return self.of_type(StageStarted)

    @property
    def stages_completed(self) -> list[StageCompleted]:
        return self.of_type(StageCompleted)

    @property
    def failures(self) -> list[FailureOccurred]:
        return self.of_type(FailureOccurred)

    @property
    def stories_completed(self) -> list[StoryCompleted]:
        return self.of_type(StoryCompleted)

    @property
    def analyses(self) -> list[LLMAnalysisReady]:
        return self.of_type(LLMAnalysisReady)

    @property
    def logs(self) -> list[LogRecorded]:
        return self.of_type(LogRecorded)

    def clear(self) -> None:
        with self._lock:
            self.events.clear()

    # -- assertions ----------------------------------------------------------

    def assert_stages_completed(self, names: Iterable[str]) -> None:
        """Every named stage has a StageCompleted event."""
        completed = [event.stage_name for event in self.stages_completed]
        missing = [name for name in names if name not in completed]
        if missing:
            raise AssertionError(
                f"expected stage(s) {missing!r} to complete;"
                f" completed stages were {completed!r}"
            )

    def assert_no_failure(self) -> None:
        """No FailureOccurred was emitted."""
        failures = self.failures
        if failures:
            described = [
                f"{event.stage_name}: {event.error_type}: {event.error_message}"
                for event in failures
            ]
            raise AssertionError(f"expected no failure; recorded {described!r}")

    def assert_stage_failed(self, name: str, error_type: Optional[str] = None) -> None:
        """A FailureOccurred names stage ``name`` (and ``error_type``, if given)."""
        failures = self.failures
        at_stage = [event for event in failures if event.stage_name == name]
        recorded = [(event.stage_name, event.error_type) for event in failures]
        if not at_stage:
            raise AssertionError(
                f"expected a failure at stage {name!r}; recorded failures were"
                f" {recorded!r}"
            )
        if error_type is not None and not any(
            event.error_type == error_type for event in at_stage
        ):
            raise AssertionError(
                f"expected stage {name!r} to fail with {error_type};"
                f" recorded failures were {recorded!r}"
            )

    def assert_story_completed(self, success: Optional[bool] = None) -> None:
        """A StoryCompleted was emitted (with ``success``, if given)."""
        completed = self.stories_completed
        if not completed:
            kinds = _kinds(self.events)
            raise AssertionError(
                f"expected StoryCompleted; recorded events were {kinds}"
            )
        if success is not None and completed[-1].success is not success:
            last = completed[-1]
            raise AssertionError(
                f"expected story {last.story_name!r} to complete with"
                f" success={success}; it completed with success={last.success}"
                f" (status {last.status!r})"
            )


def _kinds(events: Sequence[object]) -> list[str]:
    return [type(event).__name__ for event in events]
