"""The Celery app the Celery integration tests run in a real worker.

The worker is started by the tests with the broker URL and the events file
in its environment; every event of every task story is appended to that file
as one JSON line.
"""

from __future__ import annotations

import os
import time
from typing import Any

from celery import Celery

from runtime_narrative import JsonRenderer, has_active_story, stage
from runtime_narrative.integrations.celery import NarrativeTask, connect_narrative

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
_renderers: list[object] = []
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


@app.task
def leave_a_stage_open() -> None:
    stage("Never Closed").__enter__()


@app.task(narrative_enabled=False)
def sees_a_story() -> bool:
    return has_active_story()


@app.task(base=NarrativeTask, narrative_renderers=[])
def quiet() -> str:
    return "quiet"
