from __future__ import annotations

import pytest

from runtime_narrative import StoryRecorder, stage, story
from runtime_narrative.dispatch import Dispatcher

STORY_ID = "0123456789abcdef0123456789abcdef"


def test_story_adopts_a_given_id() -> None:
    recorder = StoryRecorder()

    with story("Import", renderers=[recorder], story_id=STORY_ID) as runtime:
        with stage("Load"):
            pass

    assert runtime.story_id == runtime.root_story_id == STORY_ID
    assert {event.story_id for event in recorder.events} == {STORY_ID}


@pytest.mark.parametrize(
    "bad", ["0123", STORY_ID.upper(), STORY_ID[:-1] + "g", 12345, STORY_ID + "0"]
)
def test_story_id_must_be_32_lowercase_hex_digits(bad: object) -> None:
    with pytest.raises(ValueError, match="story_id"):
        story("Import", story_id=bad)  # type: ignore[arg-type]


def test_resume_needs_a_story_id_and_an_index() -> None:
    with pytest.raises(ValueError, match="needs the story_id"):
        story("Import", resume_stage_index=3)
    with pytest.raises(ValueError, match="resume_stage_index"):
        story("Import", story_id=STORY_ID, resume_stage_index=-1)


def test_suspended_and_resumed_runs_make_one_story() -> None:
    recorder = StoryRecorder()

    with pytest.raises(ConnectionError):
        with story("Sync", renderers=[recorder], story_id=STORY_ID) as first:
            first.suspend()
            with stage("Try 1"):
                raise ConnectionError("down")
    resume_at = first.next_stage_index
    with story(
        "Sync", renderers=[recorder], story_id=STORY_ID, resume_stage_index=resume_at
    ) as second:
        with stage("Try 2"):
            pass

    kinds = [type(event).__name__ for event in recorder.events]
    assert kinds == [
        "StoryStarted",
        "StageStarted",
        "StageStarted",
        "StageCompleted",
        "StoryCompleted",
    ]
    assert [(e.stage_name, e.stage_index) for e in recorder.stages_started] == [
        ("Try 1", 0),
        ("Try 2", 1),
    ]
    [ended] = recorder.stories_completed
    assert (ended.story_id, ended.success) == (STORY_ID, True)
    assert (second.stages_started, second.next_stage_index) == (1, 2)


async def test_async_suspended_story_emits_no_end() -> None:
    recorder = StoryRecorder()

    async with story("Poll", renderers=[recorder], story_id=STORY_ID) as runtime:
        runtime.suspend()

    assert [type(e).__name__ for e in recorder.events] == ["StoryStarted"]


def test_a_prebuilt_dispatcher_is_reused() -> None:
    recorder = StoryRecorder()
    dispatcher = Dispatcher([recorder])

    with story("One", renderers=dispatcher) as one, story("Two", renderers=dispatcher):
        pass

    assert one.dispatcher is dispatcher
    assert len(recorder.stories_completed) == 2
