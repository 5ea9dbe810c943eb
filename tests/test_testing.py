"""StoryRecorder's assertions say what was expected and what was recorded."""

from __future__ import annotations

import pytest

from runtime_narrative import stage
from runtime_narrative.testing import StoryRecorder


def _failed_story() -> StoryRecorder:
    with pytest.raises(ValueError), StoryRecorder("ETL") as recorder:
        with stage("Load"):
            pass
        with stage("Validate"):
            raise ValueError("bad schema")
    return recorder


def test_assertions_pass_on_what_happened() -> None:
    recorder = _failed_story()

    recorder.assert_stages_completed(["Load"])
    recorder.assert_stage_failed("Validate", error_type="ValueError")
    recorder.assert_story_completed(success=False)


def test_assert_stages_completed_names_missing_and_recorded() -> None:
    recorder = _failed_story()

    with pytest.raises(AssertionError, match=r"\['Validate'\].*\['Load'\]"):
        recorder.assert_stages_completed(["Load", "Validate"])


def test_assert_no_failure_describes_the_failure() -> None:
    recorder = _failed_story()

    with pytest.raises(AssertionError, match="Validate: ValueError: bad schema"):
        recorder.assert_no_failure()


def test_assert_stage_failed_with_another_type_shows_what_was_recorded() -> None:
    recorder = _failed_story()

    with pytest.raises(AssertionError, match=r"KeyError.*\('Validate', 'ValueError'\)"):
        recorder.assert_stage_failed("Validate", error_type="KeyError")
    with pytest.raises(AssertionError, match="at stage 'Load'"):
        recorder.assert_stage_failed("Load")


def test_assert_story_completed_with_the_wrong_outcome() -> None:
    recorder = _failed_story()

    with pytest.raises(AssertionError, match=r"success=True.*success=False"):
        recorder.assert_story_completed(success=True)


def test_assert_story_completed_when_nothing_completed() -> None:
    recorder = StoryRecorder()

    with pytest.raises(AssertionError, match=r"expected StoryCompleted; .*\[\]"):
        recorder.assert_story_completed()


async def test_recorder_works_with_async_with_and_dry_run() -> None:
    async with StoryRecorder("ETL", dry_run=True) as recorder:
        async with stage("Load"):
            raise OSError("side effect suppressed")

    recorder.assert_stages_completed(["Load"])
    recorder.assert_no_failure()
    recorder.assert_story_completed(success=True)


def test_a_nameless_recorder_is_only_a_renderer() -> None:
    with pytest.raises(TypeError, match="only a renderer"), StoryRecorder():
        pass
