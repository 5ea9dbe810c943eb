"""runtime_narrative_story and runtime_narrative_stage."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Iterator

import pytest

from runtime_narrative import (
    StoryNotActiveError,
    runtime_narrative_stage,
    runtime_narrative_story,
)
from runtime_narrative.testing import StoryRecorder


@runtime_narrative_stage("Load CSV")
def load_csv(path: str, *, limit: int = 10) -> list[str]:
    """Read the rows."""
    return [path] * limit


@runtime_narrative_stage
async def insert_rows(rows: list[str]) -> int:
    """Insert the rows."""
    return len(rows)


def test_stage_decorator_keeps_name_doc_and_signature() -> None:
    assert load_csv.__name__ == "load_csv"
    assert load_csv.__doc__ == "Read the rows."
    assert (
        str(inspect.signature(load_csv))
        == "(path: 'str', *, limit: 'int' = 10) -> 'list[str]'"
    )
    assert inspect.iscoroutinefunction(insert_rows)
    assert insert_rows.__name__ == "insert_rows"


def test_sync_stage_decorator_runs_a_stage() -> None:
    with StoryRecorder("ETL") as recorder:
        rows = load_csv("a.csv", limit=2)

    assert rows == ["a.csv", "a.csv"]
    recorder.assert_stages_completed(["Load CSV"])


async def test_async_stage_decorator_without_name_uses_the_qualname() -> None:
    async with StoryRecorder("ETL") as recorder:
        count = await insert_rows(["a", "b"])

    assert count == 2
    recorder.assert_stages_completed(["insert_rows"])


def test_stage_decorator_outside_a_story_raises_unless_optional() -> None:
    @runtime_narrative_stage("Maybe", optional=True)
    def maybe() -> int:
        return 3

    with pytest.raises(StoryNotActiveError):
        load_csv("a.csv")
    assert maybe() == 3


def test_story_decorator_opens_a_story_per_call_with_story_arguments() -> None:
    recorder = StoryRecorder()

    @runtime_narrative_story("Import", renderers=[recorder], total_stages=1)
    def run() -> str:
        """Run the import."""
        load_csv("x")
        return "done"

    assert run() == "done"
    assert run() == "done"
    assert run.__doc__ == "Run the import."
    assert [e.story_name for e in recorder.stories_started] == ["Import", "Import"]
    assert recorder.stories_completed[0].progress_percent == 100


async def test_async_story_decorator_fails_the_story_and_propagates() -> None:
    recorder = StoryRecorder()

    @runtime_narrative_story(renderers=[recorder])
    async def job() -> None:
        raise LookupError("missing")

    with pytest.raises(LookupError):
        await job()

    assert recorder.stories_started[0].story_name.endswith("job")
    recorder.assert_story_completed(success=False)


def test_story_decorator_rejects_unknown_arguments_at_decoration() -> None:
    with pytest.raises(TypeError, match="unknown argument"):
        runtime_narrative_story("X", colour=True)


def test_story_decorator_rejects_a_bad_mode_at_decoration() -> None:
    with pytest.raises(ValueError, match="lean, rich"):
        runtime_narrative_story("X", failure_diagnostics="verbose")


def test_generator_stage_covers_the_whole_iteration() -> None:
    @runtime_narrative_stage("Read rows")
    def rows() -> Iterator[int]:
        yield 1
        yield 2

    with StoryRecorder("ETL") as recorder:
        generator = rows()
        assert recorder.stages_started == []
        assert list(generator) == [1, 2]

    recorder.assert_stages_completed(["Read rows"])


async def test_async_generator_stage_covers_the_whole_iteration() -> None:
    @runtime_narrative_stage("Stream rows")
    async def rows() -> AsyncIterator[int]:
        yield 1
        yield 2

    async with StoryRecorder("ETL") as recorder:
        seen = [row async for row in rows()]

    assert seen == [1, 2]
    recorder.assert_stages_completed(["Stream rows"])
