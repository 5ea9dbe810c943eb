"""The Celery app the Celery integration tests run in a real worker.

The worker is started by the tests with the broker URL, the events file and
a SQLite store in its environment; every event of every task story is
appended to that file as one JSON line and written to the store.
"""

from __future__ import annotations

import os
import time
from typing import Any

from celery import Celery

from runtime_narrative import JsonRenderer, has_active_story, stage
from runtime_narrative.integrations.celery import NarrativeTask, connect_narrative
from runtime_narrative.renderers.sqlite import SqliteStoryRenderer

BROKER_URL = os.environ.get("NARRATIVE_TEST_BROKER_URL")
QUEUE = os.environ.get("NARRATIVE_TEST_QUEUE", "narrative-tests")

app = Celery(
    "narrative_tests",
    broker=BROKER_URL or "memory://",
    backend=BROKER_URL or "cache+memory://",
)
app.conf.update(
    task_default_queue=QUEUE,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    result_expires=300,
)

_events_path = os.environ.get("NARRATIVE_TEST_EVENTS_FILE")
_store_path = os.environ.get("NARRATIVE_TEST_STORE_FILE")
_renderers: list[object] = []
if _store_path:
    # Before the JSON lines: handle(StoryCompleted) returns once the story is
    # committed, so a story that is complete in the file is complete here.
    _renderers.append(SqliteStoryRenderer(_store_path))
if _events_path:
    _renderers.append(JsonRenderer(open(_events_path, "a", buffering=1)))  # noqa: SIM115
connect_narrative(app, renderers=_renderers)


class PaymentDeclined(Exception):
    pass


@app.task
def ping() -> str:
    return "pong"


@app.task
def charge(order_id: int) -> int:
    with stage(f"Validate {order_id}"):
        time.sleep(0.002 * (order_id % 3))
    with stage(f"Charge {order_id}"):
        time.sleep(0.001)
    return order_id


@app.task
def decline(order_id: int) -> None:
    with stage("Charge Card"):
        raise PaymentDeclined(f"card declined for order {order_id}")


@app.task(bind=True, max_retries=2, default_retry_delay=0)
def flaky(self: Any, fail_times: int) -> int:
    with stage("Call Bank"):
        if self.request.retries < fail_times:
            raise self.retry(exc=ConnectionError("bank unreachable"), countdown=0)
    return self.request.retries


@app.task(bind=True, max_retries=1, default_retry_delay=0)
def hopeless(self: Any) -> None:
    with stage("Call Bank"):
        raise self.retry(exc=ConnectionError("bank unreachable"), countdown=0)


@app.task
def leave_a_stage_open() -> None:
    stage("Never Closed").__enter__()


@app.task(narrative_enabled=False)
def sees_a_story() -> bool:
    return has_active_story()


@app.task(base=NarrativeTask, narrative_renderers=[])
def quiet() -> str:
    return "quiet"
