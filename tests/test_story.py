"""Stories: lifecycle, attribution, exception identity, sub-stories, outcome."""

from __future__ import annotations

import asyncio
import sqlite3
import traceback

import pytest

from runtime_narrative import (
    StoryNotActiveError,
    has_active_story,
    http_outcome,
    stage,
    story,
)
from runtime_narrative.events import (
    STORY_BODY,
    FailureOccurred,
    StageStarted,
    StoryCompleted,
    StoryStarted,
)
from runtime_narrative.testing import StoryRecorder


def _tb_frames(exc: BaseException) -> list[tuple[str, int]]:
    return [
        (f.filename, f.lineno or 0) for f in traceback.extract_tb(exc.__traceback__)
    ]


# -- lifecycle ---------------------------------------------------------------


def test_story_emits_started_stages_and_completed_in_order() -> None:
    with StoryRecorder("ETL") as recorder:
        with stage("Load"):
            pass
        with stage("Insert"):
            pass

    kinds = [type(event).__name__ for event in recorder.events]
    assert kinds == [
        "StoryStarted",
        "StageStarted",
        "StageCompleted",
        "StageStarted",
        "StageCompleted",
        "StoryCompleted",
    ]
    started = recorder.stories_started[0]
    assert len(started.story_id) == 32
    int(started.story_id, 16)
    assert started.story_id[12] == "4"  # a version 4 uuid
    assert started.root_story_id == started.story_id
    assert started.parent_story_id is None
    done = recorder.stories_completed[0]
    assert done.success is True
    assert done.status == "success"
    assert done.completed_stages == 2
    assert done.duration_seconds >= 0
    assert started.timestamp.tzinfo is not None


async def test_async_story_emits_the_same_events() -> None:
    async with StoryRecorder("ETL") as recorder:
        async with stage("Load"):
            await asyncio.sleep(0)
        with stage("Sync inside async"):
            pass

    recorder.assert_stages_completed(["Load", "Sync inside async"])
    recorder.assert_story_completed(success=True)
    assert [e.stage_index for e in recorder.stages_started] == [0, 1]


def test_nested_stages_have_parent_and_start_order_index() -> None:
    with StoryRecorder("ETL") as recorder:
        with stage("Outer"):
            with stage("Inner"):
                with stage("Innermost"):
                    pass
        with stage("Next"):
            pass

    started = {e.stage_name: e for e in recorder.stages_started}
    assert started["Outer"].parent_stage_name is None
    assert started["Inner"].parent_stage_name == "Outer"
    assert started["Innermost"].parent_stage_name == "Inner"
    assert started["Next"].parent_stage_name is None
    assert [e.stage_index for e in recorder.stages_started] == [0, 1, 2, 3]
    assert [e.depth for e in recorder.stages_started] == [0, 1, 2, 0]


def test_no_story_is_active_after_any_exit() -> None:
    assert not has_active_story()
    with story("A", renderers=[]):
        assert has_active_story()
    assert not has_active_story()
    with pytest.raises(KeyError), story("B", renderers=[]), stage("X"):
        raise KeyError("k")
    assert not has_active_story()


async def test_no_story_is_active_after_async_exit() -> None:
    with pytest.raises(ValueError):
        async with story("A", renderers=[]):
            async with stage("X"):
                raise ValueError("v")
    assert not has_active_story()


def test_stage_outside_a_story_says_to_open_one() -> None:
    with pytest.raises(StoryNotActiveError, match=r"story\(\.\.\.\)"), stage("Orphan"):
        pass


def test_optional_stage_outside_a_story_is_a_no_op() -> None:
    with stage("Orphan", optional=True) as entered:
        value = 1

    assert value == 1
    assert entered.name == "Orphan"
    assert not has_active_story()


def test_renderers_empty_list_means_no_renderers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with story("Quiet", renderers=[]), stage("Load"):
        pass

    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ""


def test_story_name_must_be_a_non_empty_string() -> None:
    with pytest.raises(ValueError, match="non-empty name"):
        story("")


def test_unknown_story_argument_is_named() -> None:
    with pytest.raises(TypeError, match="renderer"):
        story("X", renderer=[])  # type: ignore[call-arg]


# -- progress ----------------------------------------------------------------


def test_progress_with_declared_total_is_exact_and_capped() -> None:
    with StoryRecorder("Batch", total_stages=3) as recorder:
        for name in ("A", "B", "C", "D"):
            with stage(name):
                pass

    assert [e.progress_percent for e in recorder.stages_completed] == [33, 66, 100, 100]
    done = recorder.stories_completed[0]
    assert done.progress_percent == 100
    assert done.total_stages == 3


def test_set_total_stages_after_start() -> None:
    with StoryRecorder("Batch") as recorder:
        assert recorder.runtime is not None
        recorder.runtime.set_total_stages(4)
        with stage("A"):
            pass

    assert recorder.stages_completed[0].progress_percent == 25
    assert recorder.stories_completed[0].progress_percent == 25


def test_set_total_stages_rejects_negative() -> None:
    with story("Batch", renderers=[]) as runtime, pytest.raises(ValueError):
        runtime.set_total_stages(-1)


def test_progress_on_failure_counts_completed_of_started() -> None:
    with pytest.raises(ValueError), StoryRecorder("ETL") as recorder:
        with stage("Load"):
            pass
        with stage("Insert"):
            raise ValueError("x")

    failure = recorder.failures[0]
    assert failure.completed_stages == 1
    assert failure.total_stages == 2
    assert failure.progress_percent == 50
    assert failure.stage_timeline.startswith("Load=completed (")
    assert "Insert=failed (" in failure.stage_timeline


# -- attribution -------------------------------------------------------------


def test_failure_is_attributed_to_the_innermost_stage() -> None:
    with pytest.raises(ZeroDivisionError), StoryRecorder("ETL") as recorder:
        with stage("Outer"), stage("Middle"), stage("Inner"):
            1 / 0  # noqa: B018

    assert len(recorder.failures) == 1
    assert recorder.failures[0].stage_name == "Inner"
    assert recorder.failures[0].stage_depth == 2
    recorder.assert_stage_failed("Inner", error_type="ZeroDivisionError")


async def test_async_failure_is_attributed_to_the_innermost_stage() -> None:
    with pytest.raises(ZeroDivisionError):
        async with StoryRecorder("ETL") as recorder:
            async with stage("Outer"):
                async with stage("Inner"):
                    1 / 0  # noqa: B018

    assert [f.stage_name for f in recorder.failures] == ["Inner"]


def test_a_handled_earlier_failure_does_not_take_the_blame() -> None:
    with pytest.raises(KeyError), StoryRecorder("ETL") as recorder:
        try:
            with stage("Flaky"):
                raise ValueError("handled")
        except ValueError:
            pass
        with stage("Load"):
            pass
        raise KeyError("story body")

    assert [f.stage_name for f in recorder.failures] == [STORY_BODY]
    assert recorder.failures[0].error_type == "KeyError"


def test_an_exception_caught_inside_an_outer_stage_is_not_reported() -> None:
    with StoryRecorder("ETL") as recorder, stage("Outer"):
        try:
            with stage("Inner"):
                raise ValueError("handled")
        except ValueError:
            pass

    recorder.assert_no_failure()
    recorder.assert_story_completed(success=True)


def test_a_reraised_exception_keeps_its_original_stage() -> None:
    with pytest.raises(ValueError), StoryRecorder("ETL") as recorder:
        try:
            with stage("Parse"):
                raise ValueError("bad row")
        except ValueError:
            with stage("Cleanup"):
                pass
            raise

    assert [f.stage_name for f in recorder.failures] == ["Parse"]


# -- the user's exception is untouched ---------------------------------------


def _raise_chained() -> None:
    try:
        raise sqlite3.IntegrityError("UNIQUE constraint failed: customers.id")
    except sqlite3.IntegrityError as exc:
        raise ValueError("duplicate customer id") from exc


def test_exception_leaves_as_the_same_object_with_traceback_and_chain() -> None:
    seen: list[BaseException] = []

    with pytest.raises(ValueError) as info:
        with StoryRecorder("ETL"), stage("Insert"):
            try:
                _raise_chained()
            except ValueError as exc:
                seen.append(exc)
                seen.append(exc.__cause__)  # type: ignore[arg-type]
                frames_before = _tb_frames(exc)
                raise

    assert info.value is seen[0]
    assert info.value.__cause__ is seen[1]
    assert info.value.__suppress_context__ is True
    # The traceback gains only the frames the raise itself passed through.
    assert _tb_frames(info.value)[-len(frames_before) :] == frames_before


class _HostileMessage(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ exploded")

    def __repr__(self) -> str:
        raise RuntimeError("__repr__ exploded")


def test_exception_whose_str_and_repr_raise_propagates_unchanged() -> None:
    original = _HostileMessage()

    with pytest.raises(_HostileMessage) as info, StoryRecorder("ETL") as recorder:
        with stage("Parse"):
            raise original

    assert info.value is original
    failure = recorder.failures[0]
    assert failure.error_type == "_HostileMessage"
    assert "failed" in failure.error_message


class _BrokenRenderer:
    def __init__(self, on: type) -> None:
        self.on = on

    def handle(self, event: object) -> None:
        if isinstance(event, self.on):
            raise RuntimeError("renderer bug")


@pytest.mark.allow_internal_errors
@pytest.mark.parametrize(
    "on", [StoryStarted, StageStarted, FailureOccurred, StoryCompleted]
)
def test_a_failing_renderer_changes_nothing_and_is_reported_once(
    on: type, internal_errors: list[object]
) -> None:
    original = ValueError("user error")
    recorder = StoryRecorder()

    with pytest.raises(ValueError) as info:
        with story("ETL", renderers=[_BrokenRenderer(on), recorder]), stage("Work"):
            raise original

    assert info.value is original
    assert len(internal_errors) == 1
    message = internal_errors[0].getMessage()  # type: ignore[attr-defined]
    assert "_BrokenRenderer" in message
    assert on.__name__ in message
    kinds = [type(e).__name__ for e in recorder.events]
    assert kinds == [
        "StoryStarted",
        "StageStarted",
        "FailureOccurred",
        "StoryCompleted",
    ]


@pytest.mark.allow_internal_errors
async def test_a_failing_async_renderer_changes_nothing(
    internal_errors: list[object],
) -> None:
    class AsyncBroken:
        async def handle(self, event: object) -> None:
            raise RuntimeError("async renderer bug")

    recorder = StoryRecorder()
    original = KeyError("k")

    with pytest.raises(KeyError) as info:
        async with story("ETL", renderers=[AsyncBroken(), recorder]):
            async with stage("Work"):
                raise original

    assert info.value is original
    assert len(recorder.events) == 4
    assert len(internal_errors) == 4


@pytest.mark.allow_internal_errors
def test_diagnostics_capture_failure_does_not_replace_the_exception(
    monkeypatch: pytest.MonkeyPatch, internal_errors: list[object]
) -> None:
    import runtime_narrative._analysis as analysis

    def broken_capture(exc: BaseException, config: object) -> object:
        raise RuntimeError("capture bug")

    monkeypatch.setattr(analysis, "capture", broken_capture)
    original = ValueError("user error")

    with pytest.raises(ValueError) as info, StoryRecorder("ETL") as recorder:
        with stage("Work"):
            raise original

    assert info.value is original
    assert recorder.failures[0].error_type == "ValueError"
    assert recorder.failures[0].stage_name == "Work"
    assert len(internal_errors) == 1


@pytest.mark.allow_internal_errors
def test_a_failing_analyzer_changes_nothing(internal_errors: list[object]) -> None:
    class Broken:
        def analyze_failure(self, **kwargs: object) -> str:
            raise RuntimeError("analyzer bug")

    original = ValueError("user error")

    with pytest.raises(ValueError) as info:
        with StoryRecorder("ETL", failure_analyzer=Broken()) as recorder, stage("W"):
            raise original

    assert info.value is original
    assert recorder.failures[0].llm_analysis is None
    recorder.assert_story_completed(success=False)
    assert len(internal_errors) == 1


# -- sub-stories -------------------------------------------------------------


def test_sub_story_carries_parent_and_root_ids_and_inherits_renderers() -> None:
    with StoryRecorder("API") as recorder, stage("Persist"):
        with story("DB"), stage("Query"):
            pass
        with story("DB 2"), story("DB 2 inner"):
            pass

    started = {e.story_name: e for e in recorder.stories_started}
    root = started["API"].story_id
    assert started["DB"].parent_story_id == root
    assert started["DB"].root_story_id == root
    assert started["DB 2 inner"].parent_story_id == started["DB 2"].story_id
    assert started["DB 2 inner"].root_story_id == root
    query = next(e for e in recorder.stages_started if e.stage_name == "Query")
    assert query.story_id == started["DB"].story_id
    assert query.parent_stage_name is None
    persist_done = next(
        e for e in recorder.stages_completed if e.stage_name == "Persist"
    )
    assert persist_done.story_id == root


def test_sub_story_fails_on_its_own_without_failing_the_parent() -> None:
    with StoryRecorder("API") as recorder:
        with stage("Try DB"):
            try:
                with story("DB"), stage("Query"):
                    raise sqlite3.OperationalError("locked")
            except sqlite3.OperationalError:
                pass

    completed = {e.story_name: e for e in recorder.stories_completed}
    assert completed["DB"].success is False
    assert completed["API"].success is True
    assert [(f.story_name, f.stage_name) for f in recorder.failures] == [
        ("DB", "Query")
    ]


def test_one_failure_per_story_an_exception_crosses() -> None:
    with pytest.raises(ValueError), StoryRecorder("API") as recorder:
        with stage("Persist"), story("DB"), stage("Query"):
            raise ValueError("boom")

    failures = [(f.story_name, f.stage_name) for f in recorder.failures]
    assert failures == [("DB", "Query"), ("API", "Persist")]
    db = next(f for f in recorder.failures if f.story_name == "DB")
    api = next(f for f in recorder.failures if f.story_name == "API")
    assert db.parent_story_id == api.story_id
    assert db.root_story_id == api.story_id


def test_sub_story_uses_its_own_renderers_when_given() -> None:
    outer = StoryRecorder()
    inner = StoryRecorder()

    with story("API", renderers=[outer]), story("DB", renderers=[inner]):
        pass

    assert [e.story_name for e in inner.stories_started] == ["DB"]
    assert [e.story_name for e in outer.stories_started] == ["API"]


# -- record_failure and outcome ----------------------------------------------


def test_record_failure_emits_a_full_failure_and_the_story_succeeds() -> None:
    with StoryRecorder("Saga") as recorder:
        assert recorder.runtime is not None
        try:
            with stage("Reserve Inventory"):
                raise LookupError("out of stock")
        except LookupError as exc:
            with stage("Refund Charge"):
                pass
            recorder.runtime.record_failure(exc, stage_name="Reserve Inventory")

    recorder.assert_stage_failed("Reserve Inventory", error_type="LookupError")
    assert recorder.failures[0].recorded is True
    assert recorder.failures[0].lineno is not None
    recorder.assert_story_completed(success=True)


async def test_record_failure_can_be_awaited_in_async_stories() -> None:
    delivered: list[str] = []

    class AsyncRenderer:
        async def handle(self, event: object) -> None:
            await asyncio.sleep(0)
            delivered.append(type(event).__name__)

    async with story("Saga", renderers=[AsyncRenderer()]) as runtime:
        try:
            raise LookupError("out of stock")
        except LookupError as exc:
            await runtime.record_failure(exc)

    assert delivered == ["StoryStarted", "FailureOccurred", "StoryCompleted"]


def test_record_failure_then_propagation_reports_once() -> None:
    with pytest.raises(LookupError), StoryRecorder("Saga") as recorder:
        assert recorder.runtime is not None
        try:
            with stage("Reserve"):
                raise LookupError("x")
        except LookupError as exc:
            recorder.runtime.record_failure(exc)
            raise

    assert len(recorder.failures) == 1
    assert recorder.failures[0].stage_name == "Reserve"


def test_set_outcome_is_carried_on_story_completed() -> None:
    with StoryRecorder("GET /orders") as recorder:
        assert recorder.runtime is not None
        recorder.runtime.set_outcome(http_outcome(404))

    assert recorder.stories_completed[0].outcome == "404 Not Found"


def test_http_outcome_of_unknown_code() -> None:
    assert http_outcome(200) == "200 OK"
    assert http_outcome(799) == "799"


# -- dry run -----------------------------------------------------------------


def test_dry_run_suppresses_stage_exceptions_and_reports_success() -> None:
    with StoryRecorder("Nightly", dry_run=True) as recorder:
        with stage("Load"):
            raise OSError("would connect")
        with stage("Transform"):
            raise RuntimeError("would transform")

    recorder.assert_stages_completed(["Load", "Transform"])
    recorder.assert_no_failure()
    recorder.assert_story_completed(success=True)


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit, GeneratorExit])
def test_dry_run_never_suppresses_base_exceptions(error: type[BaseException]) -> None:
    with pytest.raises(error), story("Nightly", dry_run=True, renderers=[]):
        with stage("Load"):
            raise error()


async def test_dry_run_never_suppresses_cancellation() -> None:
    with pytest.raises(asyncio.CancelledError):
        async with story("Nightly", dry_run=True, renderers=[]):
            async with stage("Load"):
                raise asyncio.CancelledError()


# -- base exceptions ---------------------------------------------------------


def test_keyboard_interrupt_is_recorded_as_interrupted_not_a_crash() -> None:
    with pytest.raises(KeyboardInterrupt), StoryRecorder("Job") as recorder:
        with stage("Work"):
            raise KeyboardInterrupt

    recorder.assert_no_failure()
    done = recorder.stories_completed[0]
    assert (done.success, done.status, done.error_type) == (
        False,
        "interrupted",
        "KeyboardInterrupt",
    )


@pytest.mark.parametrize(("code", "success"), [(0, True), (None, True), (2, False)])
def test_system_exit_is_recorded_by_its_code(code: object, success: bool) -> None:
    with pytest.raises(SystemExit), StoryRecorder("Job") as recorder:
        raise SystemExit(code)

    recorder.assert_no_failure()
    assert recorder.stories_completed[0].success is success


def test_story_completed_is_the_last_event() -> None:
    with pytest.raises(ValueError), StoryRecorder("Job") as recorder, stage("W"):
        raise ValueError("x")

    assert isinstance(recorder.events[-1], StoryCompleted)
    assert isinstance(recorder.events[-2], FailureOccurred)


def test_a_story_continued_from_another_process_keeps_the_remote_ids() -> None:
    with (
        StoryRecorder(
            "POST /orders", parent_story_id="a" * 32, root_story_id="b" * 32
        ) as recorder,
        story("DB"),
    ):
        pass

    started = {e.story_name: e for e in recorder.stories_started}
    assert started["POST /orders"].parent_story_id == "a" * 32
    assert started["POST /orders"].root_story_id == "b" * 32
    assert started["DB"].root_story_id == "b" * 32


def test_a_failure_names_the_index_of_the_stage_it_is_attributed_to() -> None:
    with pytest.raises(ValueError), StoryRecorder("Batch") as recorder:
        for item in range(3):
            with stage("Process"):
                if item == 2:
                    raise ValueError("third item")

    assert recorder.failures[0].stage_name == "Process"
    assert recorder.failures[0].stage_index == 2


def test_a_recorded_failure_at_a_named_stage_has_no_index() -> None:
    with StoryRecorder("Saga") as recorder:
        assert recorder.runtime is not None
        recorder.runtime.record_failure(LookupError("x"), stage_name="Reserve")

    assert recorder.failures[0].stage_index is None
