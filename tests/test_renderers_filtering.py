from __future__ import annotations

import inspect
from datetime import datetime, timezone

import pytest

from runtime_narrative import stage, story
from runtime_narrative.events import (
    FailureOccurred,
    LogRecorded,
    StageCompleted,
    StageStarted,
    StoryCompleted,
)
from runtime_narrative.renderers.filtering import CoalescingRenderer, FilteredRenderer
from runtime_narrative.testing import StoryRecorder

WHEN = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


class AsyncRecorder:
    def __init__(self) -> None:
        self.events: list[object] = []

    async def handle(self, event: object) -> None:
        self.events.append(event)


def kinds(events: list[object]) -> list[str]:
    out = []
    for event in events:
        name = getattr(event, "stage_name", None)
        label = type(event).__name__
        if isinstance(event, (StageStarted, StageCompleted)):
            label += f":{name}"
        out.append(label)
    return out


# -- FilteredRenderer -----------------------------------------------------------


def test_filtered_renderer_forwards_only_accepted_events() -> None:
    recorder = StoryRecorder()
    only_failures = FilteredRenderer(lambda e: isinstance(e, FailureOccurred), recorder)

    with pytest.raises(KeyError):
        with story("Job", renderers=[only_failures]):
            with stage("Fine"):
                pass
            with stage("Broken"):
                raise KeyError("id")

    assert kinds(recorder.events) == ["FailureOccurred"]
    assert recorder.failures[0].stage_name == "Broken"


def test_filtered_renderer_mirrors_a_sync_handle() -> None:
    wrapper = FilteredRenderer(lambda e: True, StoryRecorder())

    assert not inspect.iscoroutinefunction(wrapper.handle)
    assert isinstance(wrapper, FilteredRenderer)


async def test_filtered_renderer_mirrors_an_async_handle() -> None:
    inner = AsyncRecorder()
    wrapper = FilteredRenderer(lambda e: isinstance(e, StoryCompleted), inner)

    async with story("Async job", renderers=[wrapper]):
        async with stage("Step"):
            pass

    assert inspect.iscoroutinefunction(wrapper.handle)
    assert isinstance(wrapper, FilteredRenderer)
    assert kinds(inner.events) == ["StoryCompleted"]


def test_async_filtered_renderer_is_delivered_from_a_sync_story() -> None:
    inner = AsyncRecorder()
    wrapper = FilteredRenderer(lambda e: isinstance(e, StageStarted), inner)

    with story("Sync job", renderers=[wrapper]):
        with stage("Step"):
            pass

    assert kinds(inner.events) == ["StageStarted:Step"]


def test_filtered_renderer_refuses_what_is_not_a_renderer() -> None:
    with pytest.raises(TypeError, match="handle"):
        FilteredRenderer(lambda e: True, object())
    with pytest.raises(TypeError, match="predicate"):
        FilteredRenderer("yes", StoryRecorder())  # type: ignore[arg-type]


# -- CoalescingRenderer ---------------------------------------------------------


def test_a_run_shows_threshold_occurrences_then_one_summary() -> None:
    recorder = StoryRecorder()

    with story("Batch", renderers=[CoalescingRenderer(recorder, threshold=2)]):
        for _ in range(5):
            with stage("Process item"):
                pass
        with stage("Report"):
            pass

    assert kinds(recorder.events) == [
        "StoryStarted",
        "StageStarted:Process item",
        "StageCompleted:Process item",
        "StageStarted:Process item",
        "StageCompleted:Process item",
        "LogRecorded",
        "StageStarted:Report",
        "StageCompleted:Report",
        "StoryCompleted",
    ]
    [summary] = recorder.logs
    assert summary.level == "INFO"
    assert summary.logger_name == "runtime_narrative.coalesce"
    assert summary.stage_name == "Process item"
    assert summary.fields["count"] == 3
    assert summary.fields["total_seconds"] >= 0
    total = summary.fields["total_seconds"]
    assert summary.fields["average_seconds"] == pytest.approx(total / 3)
    assert "ran 3 more times" in summary.message


def test_a_loop_inside_a_stage_folds_and_is_summed_up_before_the_stage_ends() -> None:
    recorder = StoryRecorder()

    with story("Import", renderers=[CoalescingRenderer(recorder, threshold=1)]):
        with stage("Rows"):
            for _ in range(4):
                with stage("Row"):
                    with stage("Validate"):
                        pass

    assert kinds(recorder.events) == [
        "StoryStarted",
        "StageStarted:Rows",
        "StageStarted:Row",
        "StageStarted:Validate",
        "StageCompleted:Validate",
        "StageCompleted:Row",
        "LogRecorded",
        "StageCompleted:Rows",
        "StoryCompleted",
    ]
    assert recorder.logs[0].fields["count"] == 3


def test_a_failure_in_a_folded_occurrence_is_shown_after_the_summary() -> None:
    recorder = StoryRecorder()

    with pytest.raises(ValueError):
        with story("Batch", renderers=[CoalescingRenderer(recorder, threshold=1)]):
            for n in range(4):
                with stage("Process"):
                    if n == 3:
                        raise ValueError("item 3")

    assert kinds(recorder.events) == [
        "StoryStarted",
        "StageStarted:Process",
        "StageCompleted:Process",
        "LogRecorded",
        "FailureOccurred",
        "StoryCompleted",
    ]
    assert recorder.logs[0].fields["count"] == 2


def test_a_log_record_ends_the_run() -> None:
    recorder = StoryRecorder()
    renderer = CoalescingRenderer(recorder, threshold=1)
    log = LogRecorded("s", "Job", "s", "Step", "INFO", "app", "hello", WHEN)

    for event in [
        StageStarted("s", "Step", WHEN, 0, story_name="Job"),
        StageCompleted("s", "Step", WHEN, 0.5, 0, story_name="Job"),
        StageStarted("s", "Step", WHEN, 1, story_name="Job"),
        StageCompleted("s", "Step", WHEN, 1.5, 1, story_name="Job"),
        log,
        StageStarted("s", "Step", WHEN, 2, story_name="Job"),
    ]:
        renderer.handle(event)

    assert kinds(recorder.events) == [
        "StageStarted:Step",
        "StageCompleted:Step",
        "LogRecorded",
        "LogRecorded",
        "StageStarted:Step",
    ]
    summary = recorder.events[2]
    assert isinstance(summary, LogRecorded)
    assert summary.fields["count"] == 1
    assert summary.fields["total_seconds"] == 1.5
    assert recorder.events[3] is log


def test_other_stories_do_not_end_a_run() -> None:
    recorder = StoryRecorder()
    renderer = CoalescingRenderer(recorder, threshold=1)

    for n in range(3):
        renderer.handle(StageStarted("a", "Poll", WHEN, n, story_name="A"))
        renderer.handle(StageStarted("b", f"Other {n}", WHEN, n, story_name="B"))
        renderer.handle(StageCompleted("a", "Poll", WHEN, 1.0, n, story_name="A"))
    renderer.handle(StoryCompleted("a", "A", True, 100, 3, 3, WHEN))

    story_a = [e for e in recorder.events if getattr(e, "story_id", None) == "a"]
    assert kinds(story_a) == [
        "StageStarted:Poll",
        "StageCompleted:Poll",
        "LogRecorded",
        "StoryCompleted",
    ]
    assert story_a[2].fields["count"] == 2  # type: ignore[attr-defined]


async def test_coalescing_mirrors_an_async_renderer() -> None:
    inner = AsyncRecorder()
    renderer = CoalescingRenderer(inner, threshold=1)

    async with story("Async batch", renderers=[renderer]):
        for _ in range(3):
            async with stage("Tick"):
                pass

    assert inspect.iscoroutinefunction(renderer.handle)
    assert kinds(inner.events) == [
        "StoryStarted",
        "StageStarted:Tick",
        "StageCompleted:Tick",
        "LogRecorded",
        "StoryCompleted",
    ]


def test_threshold_must_be_a_positive_int() -> None:
    with pytest.raises(ValueError, match="threshold"):
        CoalescingRenderer(StoryRecorder(), threshold=0)
    with pytest.raises(TypeError, match="threshold"):
        CoalescingRenderer(StoryRecorder(), threshold=1.5)  # type: ignore[arg-type]
