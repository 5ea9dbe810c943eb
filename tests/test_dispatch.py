"""Dispatch: order, sync and async renderers, error isolation."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from runtime_narrative import stage, story
from runtime_narrative.dispatch import Dispatcher, delivery_failures
from runtime_narrative.testing import StoryRecorder


class _AsyncRecorder:
    def __init__(self) -> None:
        self.events: list[str] = []
        self.threads: set[int] = set()

    async def handle(self, event: object) -> None:
        await asyncio.sleep(0)
        self.threads.add(threading.get_ident())
        self.events.append(type(event).__name__)


EXPECTED = ["StoryStarted", "StageStarted", "StageCompleted", "StoryCompleted"]


def test_renderers_receive_events_in_order_one_after_another() -> None:
    order: list[str] = []

    class Tagged:
        def __init__(self, tag: str) -> None:
            self.tag = tag

        def handle(self, event: object) -> None:
            order.append(f"{self.tag}:{type(event).__name__}")

    with story("X", renderers=[Tagged("a"), Tagged("b")]):
        pass

    assert order == [
        "a:StoryStarted",
        "b:StoryStarted",
        "a:StoryCompleted",
        "b:StoryCompleted",
    ]


async def test_async_renderer_is_awaited_in_an_async_story() -> None:
    renderer = _AsyncRecorder()

    async with story("X", renderers=[renderer]):
        async with stage("S"):
            pass

    assert renderer.events == EXPECTED
    assert renderer.threads == {threading.get_ident()}


def test_async_renderer_is_delivered_in_a_sync_story_without_a_loop() -> None:
    renderer = _AsyncRecorder()

    with story("X", renderers=[renderer]), stage("S"):
        pass

    # Delivered before the story returns, on the private loop thread.
    assert renderer.events == EXPECTED


async def test_async_renderer_in_a_sync_story_inside_a_running_loop() -> None:
    renderer = _AsyncRecorder()

    with story("X", renderers=[renderer]), stage("S"):
        pass
    for _ in range(20):
        await asyncio.sleep(0)

    assert renderer.events == EXPECTED


def test_a_renderer_returning_an_awaitable_from_a_plain_method_is_delivered() -> None:
    renderer = _AsyncRecorder()

    class Wrapper:
        def handle(self, event: object) -> object:
            return renderer.handle(event)

    with story("X", renderers=[Wrapper()]):
        pass

    assert renderer.events == ["StoryStarted", "StoryCompleted"]


@pytest.mark.allow_internal_errors
def test_a_failing_renderer_is_counted_and_the_next_still_runs(
    internal_errors: list[object],
) -> None:
    class Broken:
        def handle(self, event: object) -> None:
            raise OSError("disk full")

    recorder = StoryRecorder()
    before = delivery_failures()

    with story("X", renderers=[Broken(), recorder]), stage("S"):
        pass

    assert [type(e).__name__ for e in recorder.events] == EXPECTED
    assert delivery_failures() - before == 4
    assert len(internal_errors) == 4


def test_an_object_without_handle_is_refused_with_a_clear_error() -> None:
    with pytest.raises(TypeError, match=r"handle\(event\)"):
        Dispatcher([object()])


def test_dispatcher_without_renderers_is_falsy() -> None:
    assert not Dispatcher([])
    assert Dispatcher([StoryRecorder()])


def test_stage_started_is_not_built_when_every_renderer_ignores_it() -> None:
    class NoStarts(StoryRecorder):
        wants_stage_started = False

    quiet = NoStarts()
    mixed = [NoStarts(), StoryRecorder()]

    with story("Quiet", renderers=[quiet]), stage("S"):
        pass
    with story("Mixed", renderers=mixed), stage("S"):
        pass

    assert [type(e).__name__ for e in quiet.events] == [
        "StoryStarted",
        "StageCompleted",
        "StoryCompleted",
    ]
    assert [type(e).__name__ for e in mixed[1].events] == EXPECTED


def test_the_console_renderer_wants_stage_starts_only_when_it_shows_them() -> None:
    from runtime_narrative import ConsoleRenderer

    assert ConsoleRenderer().wants_stage_started is False
    assert ConsoleRenderer(show_stage_starts=True).wants_stage_started is True


@pytest.mark.allow_internal_errors
def test_a_renderer_failing_on_every_event_cannot_flood_the_log(
    internal_errors: list[logging.LogRecord],
) -> None:
    class Broken:
        def handle(self, event: object) -> None:
            raise OSError("disk full")

    broken = Broken()
    before = delivery_failures()

    with story("Long", renderers=[broken]):
        for _ in range(248):
            with stage("S"):
                pass

    assert delivery_failures() - before == 2 + 2 * 248
    # Ten in full (the first with its traceback), then one per hundred.
    assert len(internal_errors) == 10 + 4
    assert internal_errors[0].exc_info is not None
    assert all(record.exc_info is None for record in internal_errors[1:])
    assert "498 failure(s)" not in internal_errors[-1].getMessage()
    assert "400 failure(s)" in internal_errors[-1].getMessage()
