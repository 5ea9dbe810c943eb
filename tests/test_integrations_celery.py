from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest
from fastapi import FastAPI

import _celery_app
from _celery_app import (
    app,
    charge,
    decline,
    flaky,
    hopeless,
    leave_a_stage_open,
    ping,
)
from _redis import redis_url
from _uvicorn import serve
from runtime_narrative import StoryRecorder, has_active_story
from runtime_narrative.integrations.celery import connect_narrative, task_story_id
from runtime_narrative.integrations.starlette import RuntimeNarrativeMiddleware
from runtime_narrative.renderers._store import StoredStory
from runtime_narrative.renderers.sqlite import open_sqlite_reader

TESTS = Path(__file__).parent
SRC = TESTS.parent / "src"


class Worker:
    """A real Celery worker in a subprocess, writing its events to a file."""

    def __init__(self, events_file: Path, store_file: Path) -> None:
        self.events_file = events_file
        self.store_file = store_file

    def events(self) -> list[dict[str, Any]]:
        if not self.events_file.exists():
            return []
        lines = self.events_file.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def wait_for(
        self, done: Callable[[list[dict[str, Any]]], bool], timeout: float = 20
    ) -> list[dict[str, Any]]:
        """The events, once ``done`` holds for them (stories end after results)."""
        deadline = time.monotonic() + timeout
        while True:
            events = self.events()
            if done(events):
                return events
            if time.monotonic() > deadline:
                raise AssertionError(f"worker events never matched: {events!r}")
            time.sleep(0.02)

    def stored(
        self, story_id: str, done: Callable[[StoredStory], bool], timeout: float = 20
    ) -> StoredStory:
        """The story as the worker's SQLite store holds it, once ``done``."""
        deadline = time.monotonic() + timeout
        while True:
            reader = open_sqlite_reader(str(self.store_file))
            try:
                found = reader.story(story_id)
            finally:
                reader.close()
            if done(found):
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"the store never matched: {found!r}")
            time.sleep(0.02)

    def stories(self, task_id: str) -> list[dict[str, Any]]:
        """Events of the stories of one task (all its attempts), in order."""
        return [
            event
            for event in self.events()
            if event.get("story_name", "").endswith(f"[task_id={task_id}]")
        ]


def completed(
    task_id: str, count: int = 1, failures: int = 0
) -> Callable[[list[dict[str, Any]]], bool]:
    """True once the task's story ended, with at least ``failures`` failures.

    A retry may run at once in another worker thread, so the failure an
    attempt records can arrive after the next attempt has ended the story.
    """

    def check(events: list[dict[str, Any]]) -> bool:
        mine = [
            event["event"]
            for event in events
            if event.get("story_name", "").endswith(f"[task_id={task_id}]")
        ]
        return (
            mine.count("StoryCompleted") >= count
            and mine.count("FailureOccurred") >= failures
        )

    return check


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    url = redis_url()
    queue = f"narrative-tests-{uuid.uuid4().hex[:8]}"
    directory = tmp_path_factory.mktemp("celery")
    events_file = directory / "events.jsonl"
    store_file = directory / "stories.db"
    app.conf.update(broker_url=url, result_backend=url, task_default_queue=queue)
    env = {
        **os.environ,
        "NARRATIVE_TEST_BROKER_URL": url,
        "NARRATIVE_TEST_QUEUE": queue,
        "NARRATIVE_TEST_EVENTS_FILE": str(events_file),
        "NARRATIVE_TEST_STORE_FILE": str(store_file),
        "PYTHONPATH": os.pathsep.join([str(SRC), str(TESTS)]),
    }
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "celery", "-A", "_celery_app", "worker"),
            *("--pool=threads", "--concurrency=4", "-Q", queue, "--loglevel=WARNING"),
        ],
        env=env,
        cwd=TESTS,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert ping.delay().get(timeout=30) == "pong"
        yield Worker(events_file, store_file)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


# -- a real worker -----------------------------------------------------------------


def test_task_is_a_story_continuing_the_sender_story(worker: Worker) -> None:
    with StoryRecorder("Place Order") as sender:
        result = charge.delay(7)

    assert result.get(timeout=20) == 7
    worker.wait_for(completed(result.id))
    events = worker.stories(result.id)
    started, *_, ended = events
    assert sender.runtime is not None
    assert started["story_name"] == f"_celery_app.charge [task_id={result.id}]"
    assert started["parent_story_id"] == sender.runtime.story_id
    assert started["root_story_id"] == sender.runtime.story_id
    stages = [e["stage_name"] for e in events if e["event"] == "StageCompleted"]
    assert stages == ["Validate 7", "Charge 7", "attempt 1"]
    assert (ended["success"], ended["outcome"]) == (True, "SUCCESS")


def test_failed_task_fails_its_story(worker: Worker) -> None:
    result = decline.delay(3)

    result.get(timeout=20, propagate=False)
    worker.wait_for(completed(result.id))

    assert result.failed()
    events = worker.stories(result.id)
    [failure] = [e for e in events if e["event"] == "FailureOccurred"]
    assert (failure["stage_name"], failure["error_type"]) == (
        "Charge Card",
        "PaymentDeclined",
    )
    assert failure["error_message"] == "card declined for order 3"
    ended = events[-1]
    assert (ended["event"], ended["success"], ended["outcome"]) == (
        "StoryCompleted",
        False,
        "FAILURE",
    )
    assert events[0]["parent_story_id"] is None


def test_retries_are_attempt_stages_of_one_task_story(worker: Worker) -> None:
    with StoryRecorder("Sync Payments") as sender:
        result = flaky.delay(2)

    assert result.get(timeout=20) == 2
    worker.wait_for(completed(result.id, failures=2))
    events = worker.stories(result.id)
    assert sender.runtime is not None
    assert {e["story_id"] for e in events} == {task_story_id(result.id)}
    [started] = [e for e in events if e["event"] == "StoryStarted"]
    [ended] = [e for e in events if e["event"] == "StoryCompleted"]
    assert (started["parent_story_id"], started["root_story_id"]) == (
        sender.runtime.story_id,
        sender.runtime.story_id,
    )
    assert (ended["parent_story_id"], ended["root_story_id"]) == (
        sender.runtime.story_id,
        sender.runtime.story_id,
    )
    assert (ended["success"], ended["outcome"]) == (True, "SUCCESS")
    attempts = sorted(
        (e["stage_index"], e["stage_name"])
        for e in events
        if e["event"] == "StageStarted" and e["stage_name"].startswith("attempt")
    )
    assert [name for _, name in attempts] == ["attempt 1", "attempt 2", "attempt 3"]
    indexes = [e["stage_index"] for e in events if e["event"] == "StageStarted"]
    assert len(indexes) == len(set(indexes)) == 6  # attempt and Call Bank, x3
    reasons = [
        (e["stage_name"], e["error_type"], e["recorded"])
        for e in events
        if e["event"] == "FailureOccurred"
    ]
    assert sorted(reasons) == [
        ("attempt 1", "ConnectionError", True),
        ("attempt 2", "ConnectionError", True),
    ]


def test_retried_task_is_one_story_in_a_store(worker: Worker) -> None:
    result = flaky.delay(2)

    assert result.get(timeout=20) == 2
    worker.wait_for(completed(result.id))
    stored = worker.stored(
        task_story_id(result.id), lambda found: len(found.failures) == 2
    )

    assert stored.story["name"] == f"_celery_app.flaky [task_id={result.id}]"
    assert (stored.story["success"], stored.story["outcome"]) == (1, "SUCCESS")
    assert [s["stage_name"] for s in stored.stages if s["depth"] == 0] == [
        "attempt 1",
        "attempt 2",
        "attempt 3",
    ]
    assert [s["completed"] for s in stored.stages if s["depth"] == 0] == [0, 0, 1]
    assert sorted(f["stage_name"] for f in stored.failures) == [
        "attempt 1",
        "attempt 2",
    ]


def test_task_that_exhausts_its_retries_is_one_failed_story(worker: Worker) -> None:
    result = hopeless.delay()

    result.get(timeout=20, propagate=False)
    worker.wait_for(completed(result.id, failures=2))

    assert result.failed()
    events = worker.stories(result.id)
    assert {e["story_id"] for e in events} == {task_story_id(result.id)}
    assert [e["event"] for e in events].count("StoryStarted") == 1
    [ended] = [e for e in events if e["event"] == "StoryCompleted"]
    assert (ended["success"], ended["outcome"], ended["error_type"]) == (
        False,
        "FAILURE",
        "ConnectionError",
    )
    failures = sorted(
        (e["stage_name"], e["recorded"])
        for e in events
        if e["event"] == "FailureOccurred"
    )
    assert failures == [("Call Bank", False), ("attempt 1", True)]


def test_concurrent_tasks_are_separate_stories(worker: Worker) -> None:
    count = 20

    results = [charge.delay(n) for n in range(count)]

    assert [r.get(timeout=30) for r in results] == list(range(count))
    for result in results:
        worker.wait_for(completed(result.id))
    for number, result in enumerate(results):
        events = worker.stories(result.id)
        assert len({e["story_id"] for e in events}) == 1
        stages = {e["stage_name"] for e in events if e["event"] == "StageCompleted"} - {
            "attempt 1"
        }
        assert stages == {f"Validate {number}", f"Charge {number}"}


def test_task_sent_from_a_request_is_in_the_request_story_tree(
    worker: Worker,
) -> None:
    recorder = StoryRecorder()
    web = FastAPI()
    web.add_middleware(RuntimeNarrativeMiddleware, renderers=[recorder])

    @web.post("/orders/{order_id}")
    def place(order_id: int) -> dict[str, str]:
        return {"task_id": charge.delay(order_id).id}

    with serve(web) as url, httpx.Client(base_url=url) as client:
        task_id = client.post("/orders/11").json()["task_id"]
    worker.wait_for(completed(task_id))

    [request_story] = recorder.stories_started
    started = worker.stories(task_id)[0]
    assert started["parent_story_id"] == request_story.story_id
    assert started["root_story_id"] == request_story.story_id


# -- in this process (eager), where the thread is known ----------------------------


@pytest.fixture
def recorder() -> Iterator[StoryRecorder]:
    recorder = StoryRecorder()
    connect_narrative(app, renderers=[recorder])
    yield recorder
    connect_narrative(app, renderers=[])


def test_nothing_leaks_from_one_task_to_the_next(recorder: StoryRecorder) -> None:
    leave_a_stage_open.apply()
    seen = _celery_app.sees_a_story.apply().get()
    charge.apply(args=(1,))

    assert seen is False
    assert not has_active_story()
    last = recorder.stories_started[-1]
    assert last.parent_story_id is None
    assert [e.success for e in recorder.stories_completed] == [True, True]


def test_per_task_attributes_override_the_app_defaults(
    recorder: StoryRecorder,
) -> None:
    result = _celery_app.quiet.apply()

    assert result.get() == "quiet"
    assert recorder.events == []


def test_eager_failure_keeps_the_exception(recorder: StoryRecorder) -> None:
    result = decline.apply(args=(5,))

    with pytest.raises(_celery_app.PaymentDeclined) as caught:
        result.get()

    [failure] = recorder.failures
    assert failure.error_message == str(caught.value)
    assert recorder.stories_completed[0].success is False


def test_eager_retries_are_stages_of_one_story(recorder: StoryRecorder) -> None:
    result = flaky.apply(args=(2,))

    assert result.get() == 2
    assert {e.story_id for e in recorder.events} == {task_story_id(result.id)}
    assert len(recorder.stories_started) == 1
    [ended] = recorder.stories_completed
    assert (ended.success, ended.outcome) == (True, "SUCCESS")
    starts = [(e.stage_index, e.stage_name) for e in recorder.stages_started]
    assert starts == [
        (0, "attempt 1"),
        (1, "Call Bank"),
        (2, "attempt 2"),
        (3, "Call Bank"),
        (4, "attempt 3"),
        (5, "Call Bank"),
    ]
