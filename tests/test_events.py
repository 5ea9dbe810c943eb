"""Events are frozen, carry the published fields, and serialize to JSON."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timezone

import pytest

from runtime_narrative import stage
from runtime_narrative.events import (
    FailureOccurred,
    LLMAnalysisReady,
    LogRecorded,
    StageCompleted,
    StageStarted,
    StoryCompleted,
    StoryStarted,
    json_safe,
)
from runtime_narrative.testing import StoryRecorder

PUBLISHED_FIELDS = {
    StoryStarted: "story_id story_name timestamp parent_story_id root_story_id module",
    StageStarted: "story_id stage_name timestamp stage_index parent_stage_name"
    " story_name root_story_id module",
    StageCompleted: "story_id stage_name timestamp duration_seconds stage_index"
    " parent_stage_name story_name root_story_id",
    FailureOccurred: "story_id story_name stage_name error_type error_message filename"
    " lineno function source_line exception_chain exact_cause llm_analysis"
    " stage_timeline progress_percent completed_stages total_stages timestamp"
    " traceback_text diagnostics_mode primary_frame_reason stack_frames"
    " source_snippet compressed_stack_summary hidden_frame_count"
    " traceback_truncated locals_by_frame redaction_removed_keys parent_story_id"
    " root_story_id",
    StoryCompleted: "story_id story_name success progress_percent completed_stages"
    " total_stages timestamp duration_seconds parent_story_id root_story_id outcome",
    LLMAnalysisReady: "story_id story_name stage_name llm_analysis timestamp",
    LogRecorded: "story_id story_name root_story_id stage_name level logger_name"
    " message timestamp exc_text fields",
}


@pytest.mark.parametrize("event_type", list(PUBLISHED_FIELDS))
def test_event_has_at_least_the_published_fields(event_type: type) -> None:
    names = {f.name for f in dataclasses.fields(event_type)}

    assert set(PUBLISHED_FIELDS[event_type].split()) <= names


def test_events_are_frozen() -> None:
    event = StoryStarted(story_id="a", story_name="b", timestamp=datetime.now())

    with pytest.raises(dataclasses.FrozenInstanceError):
        event.story_name = "c"  # type: ignore[misc]


def test_every_event_of_a_failed_story_serializes_to_json() -> None:
    with (
        pytest.raises(ValueError),
        StoryRecorder("ETL", failure_diagnostics="rich") as r,
    ):
        with stage("Load"):
            payload = {b"raw": {1, 2}, "when": datetime.now(timezone.utc)}  # noqa: F841
            raise ValueError("bad")

    for event in r.events:
        data = json.loads(json.dumps(event.to_dict()))
        assert data["event"] == type(event).__name__
        assert isinstance(data["timestamp"], str)


class _Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def test_json_safe_converts_what_json_cannot_hold() -> None:
    value = {
        "bytes": b"\xffab",
        "set": {3, 1, 2},
        "when": datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
        "odd": _Unprintable(),
        "nan": float("nan"),
        1: (1, 2),
    }

    converted = json_safe(value)

    assert json.loads(json.dumps(converted)) == {
        "bytes": "\\xffab",
        "set": [1, 2, 3],
        "when": "2026-01-02T03:04:05+00:00",
        "odd": "<unrepresentable _Unprintable: RuntimeError>",
        "nan": "nan",
        "1": [1, 2],
    }


@pytest.mark.parametrize(
    "event_type", [t for t in PUBLISHED_FIELDS if t is not LogRecorded]
)
def test_events_take_every_field_by_position_or_keyword_with_defaults(
    event_type: type,
) -> None:
    fields = dataclasses.fields(event_type)
    required = [f for f in fields if f.default is dataclasses.MISSING]
    values = {f.name: f"value of {f.name}" for f in required}

    by_keyword = event_type(**values)
    by_position = event_type(*values.values())

    assert by_keyword == by_position
    for f in fields:
        expected = values.get(f.name, f.default)
        assert getattr(by_keyword, f.name) == expected
    with pytest.raises(dataclasses.FrozenInstanceError):
        by_keyword.story_id = "changed"
    assert dataclasses.replace(by_keyword, story_id="other").story_id == "other"
