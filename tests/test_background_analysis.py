"""background_analysis=True: the failure goes out at once, the analysis later."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any, Optional

import pytest

from runtime_narrative import FailureOccurred, LLMAnalysisReady, StoryCompleted
from runtime_narrative.testing import StoryRecorder


class Gated:
    """An analyzer that answers only once the test opens its gate."""

    timeout_seconds = 5.0

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.started = threading.Event()
        self.seen_rules: list[Optional[str]] = []

    def analyze_failure(self, *, failure: Any, **_: Any) -> Optional[str]:
        self.seen_rules.append(failure.rules_analysis)
        self.started.set()
        if not self.gate.wait(5):
            return None
        return "## Exact Why\nlate but exact"


class AsyncGated(Gated):
    async def analyze_failure_async(self, *, failure: Any, **_: Any) -> Optional[str]:
        self.started.set()
        while not self.gate.is_set():
            await asyncio.sleep(0.005)
        return "## Exact Why\nlate but exact"


def _wait_for_analysis(recorder: StoryRecorder) -> LLMAnalysisReady:
    deadline = time.monotonic() + 5
    while not recorder.analyses and time.monotonic() < deadline:
        time.sleep(0.005)
    [ready] = recorder.analyses
    return ready


def test_a_sync_story_raises_before_the_analysis_is_done() -> None:
    analyzer = Gated()
    recorder = StoryRecorder(
        "Nightly", failure_analyzer=analyzer, background_analysis=True
    )

    with pytest.raises(ZeroDivisionError):
        with recorder:
            count = 0
            print(1 / count)
    assert analyzer.started.wait(5)
    assert not recorder.analyses  # the analyzer is still waiting at its gate
    analyzer.gate.set()
    ready = _wait_for_analysis(recorder)

    [failure] = recorder.failures
    assert failure.llm_analysis is None
    assert failure.rules_analysis is not None
    assert analyzer.seen_rules == [failure.rules_analysis]
    assert ready.llm_analysis == "## Exact Why\nlate but exact"
    assert ready.abandoned is False
    assert (ready.story_id, ready.stage_name) == (failure.story_id, failure.stage_name)
    kinds = [type(event) for event in recorder.events]
    assert kinds.index(FailureOccurred) < kinds.index(StoryCompleted)
    assert kinds.index(StoryCompleted) < kinds.index(LLMAnalysisReady)


@pytest.mark.allow_internal_errors
def test_a_failing_background_analyzer_still_sends_ready(
    internal_errors: list[logging.LogRecord],
) -> None:
    class Broken:
        def analyze_failure(self, **_: Any) -> Optional[str]:
            raise RuntimeError("model crashed")

    recorder = StoryRecorder(
        "Nightly", failure_analyzer=Broken(), background_analysis=True
    )

    with pytest.raises(KeyError):
        with recorder:
            {}["x"]
    ready = _wait_for_analysis(recorder)

    assert ready.llm_analysis is None
    assert ready.abandoned is False
    assert "model crashed" in internal_errors[0].getMessage()


async def test_an_async_story_gets_ready_on_its_loop() -> None:
    analyzer = AsyncGated()
    recorder = StoryRecorder(
        "Checkout", failure_analyzer=analyzer, background_analysis=True
    )

    with pytest.raises(ValueError):
        async with recorder:
            int("abc")
    [failure] = recorder.failures
    assert failure.llm_analysis is None
    assert not recorder.analyses
    analyzer.gate.set()
    for _ in range(1000):
        if recorder.analyses:
            break
        await asyncio.sleep(0.005)

    [ready] = recorder.analyses
    assert ready.llm_analysis == "## Exact Why\nlate but exact"
    assert "'abc'" in (failure.rules_analysis or "")


async def test_an_async_story_runs_a_sync_analyzer_in_the_background() -> None:
    analyzer = Gated()
    recorder = StoryRecorder(
        "Checkout", failure_analyzer=analyzer, background_analysis=True
    )

    with pytest.raises(ValueError):
        async with recorder:
            raise ValueError("no")
    analyzer.gate.set()
    for _ in range(1000):
        if recorder.analyses:
            break
        await asyncio.sleep(0.005)

    [ready] = recorder.analyses
    assert ready.llm_analysis == "## Exact Why\nlate but exact"


def test_the_analysis_is_reported_abandoned_when_the_loop_ends_first(
    caplog: pytest.LogCaptureFixture,
) -> None:
    analyzer = AsyncGated()  # never opened: the loop ends first
    recorder = StoryRecorder(
        "Request", failure_analyzer=analyzer, background_analysis=True
    )

    async def handle_request() -> None:
        async with recorder:
            raise LookupError("gone")

    with caplog.at_level(logging.WARNING, logger="runtime_narrative"):
        with pytest.raises(LookupError):
            asyncio.run(handle_request())

    [ready] = recorder.analyses
    assert ready.abandoned is True
    assert ready.llm_analysis is None
    assert ready.story_id == recorder.failures[0].story_id
    assert any("abandoned" in record.getMessage() for record in caplog.records)
    analyzer.gate.set()


def test_without_background_the_analysis_is_on_the_failure() -> None:
    analyzer = Gated()
    analyzer.gate.set()
    recorder = StoryRecorder("Inline", failure_analyzer=analyzer)

    with pytest.raises(ZeroDivisionError):
        with recorder:
            print(1 / 0)

    assert recorder.failures[0].llm_analysis == "## Exact Why\nlate but exact"
    assert recorder.analyses == []
