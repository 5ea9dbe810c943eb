from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from runtime_narrative import stage, story
from runtime_narrative.renderers.alerts import (
    AlertRoutingRenderer,
    HttpWebhookDestination,
    SlackWebhookDestination,
)


@dataclass
class Webhook:
    url: str
    status: int
    requests: list[tuple[str, dict[str, str], Any]] = field(default_factory=list)
    received: threading.Event = field(default_factory=threading.Event)

    def bodies(self) -> list[Any]:
        return [body for _, _, body in self.requests]


@pytest.fixture
def webhook_server() -> Iterator[Any]:
    servers: list[tuple[ThreadingHTTPServer, threading.Thread]] = []

    def start(status: int = 200) -> Webhook:
        hook: Webhook

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                hook.requests.append((self.path, dict(self.headers), body))
                self.send_response(hook.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
                hook.received.set()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        hook = Webhook(f"http://127.0.0.1:{server.server_port}/hook", status)
        thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), daemon=True
        )
        thread.start()
        servers.append((server, thread))
        return hook

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A port that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/never"
    finally:
        listener.close()


def fail_in_stage(renderer: AlertRoutingRenderer, name: str = "Nightly ETL") -> None:
    with pytest.raises(ValueError):
        with story(name, renderers=[renderer]):
            with stage("Load CSV"):
                raise ValueError("bad row 7")


def test_http_webhook_gets_the_published_json_from_a_sync_story(
    webhook_server: Any,
) -> None:
    hook = webhook_server()
    destination = HttpWebhookDestination(
        hook.url, headers={"Authorization": "Bearer abc"}, timeout=5
    )

    fail_in_stage(AlertRoutingRenderer([destination]))

    [(path, headers, body)] = hook.requests
    assert path == "/hook"
    assert headers["Authorization"] == "Bearer abc"
    assert headers["Content-Type"].startswith("application/json")
    assert set(body) == {
        "story_id",
        "story_name",
        "stage_name",
        "error_type",
        "error_message",
        "filename",
        "lineno",
        "function",
        "llm_analysis",
        "timestamp",
    }
    assert body["story_name"] == "Nightly ETL"
    assert body["stage_name"] == "Load CSV"
    assert body["error_type"] == "ValueError"
    assert body["error_message"] == "bad row 7"
    assert body["function"] == "fail_in_stage"
    assert body["filename"].endswith("test_renderers_alerts.py")
    assert body["llm_analysis"] is None


def test_slack_gets_block_kit(webhook_server: Any) -> None:
    hook = webhook_server()

    fail_in_stage(AlertRoutingRenderer([SlackWebhookDestination(hook.url)]))

    [body] = hook.bodies()
    kinds = [block["type"] for block in body["blocks"]]
    assert kinds == ["header", "section", "context"]
    assert body["blocks"][0]["text"]["text"] == "Story failed: Nightly ETL"
    details = body["blocks"][1]["text"]["text"]
    assert "*Stage:* Load CSV" in details
    assert "ValueError: bad row 7" in details
    assert "ValueError" in body["text"]


def test_slack_adds_an_analysis_section_when_there_is_one(webhook_server: Any) -> None:
    from datetime import datetime, timezone

    from runtime_narrative.events import FailureOccurred

    hook = webhook_server()
    renderer = AlertRoutingRenderer([SlackWebhookDestination(hook.url)])
    event = FailureOccurred(
        "s1", "ETL", "Load", "KeyError", "'id'", "etl.py", 3, "load", None,
        "KeyError", "", "Check <the> header & the id column", "", 0, 0, None,
        datetime(2024, 5, 1, tzinfo=timezone.utc),
    )  # fmt: skip

    renderer.handle(event)

    [body] = hook.bodies()
    kinds = [block["type"] for block in body["blocks"]]
    assert kinds == ["header", "section", "section", "context"]
    analysis = body["blocks"][2]["text"]["text"]
    assert analysis == "*Analysis*\nCheck &lt;the&gt; header &amp; the id column"


async def test_alerts_arrive_from_an_async_story(webhook_server: Any) -> None:
    hook = webhook_server()
    renderer = AlertRoutingRenderer([HttpWebhookDestination(hook.url)])

    with pytest.raises(ValueError):
        async with story("Async ETL", renderers=[renderer]):
            async with stage("Load"):
                raise ValueError("boom")

    [body] = hook.bodies()
    assert body["story_name"] == "Async ETL"
    assert body["stage_name"] == "Load"


@pytest.mark.allow_internal_errors
async def test_async_delivery_does_not_block_the_event_loop(
    webhook_server: Any, silent_url: str, internal_errors: list[logging.LogRecord]
) -> None:
    hook = webhook_server()
    renderer = AlertRoutingRenderer(
        [
            HttpWebhookDestination(silent_url, timeout=0.5),
            HttpWebhookDestination(hook.url),
        ]
    )
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticking = asyncio.ensure_future(ticker())
    with pytest.raises(ValueError):
        async with story("Async ETL", renderers=[renderer]):
            raise ValueError("boom")
    ticking.cancel()

    assert ticks >= 5
    assert len(hook.requests) == 1
    [record] = internal_errors
    assert "no answer within 0.5s" in record.getMessage()


def test_filters_by_story_and_error_type(webhook_server: Any) -> None:
    hook = webhook_server()
    renderer = AlertRoutingRenderer(
        [HttpWebhookDestination(hook.url)],
        only_stories={"Payments"},
        only_error_types={"TimeoutError"},
    )

    for name, error in [
        ("Payments", TimeoutError("gateway")),
        ("Payments", KeyError("x")),
        ("Reports", TimeoutError("db")),
    ]:
        with pytest.raises(type(error)):
            with story(name, renderers=[renderer]):
                raise error

    [body] = hook.bodies()
    assert (body["story_name"], body["error_type"]) == ("Payments", "TimeoutError")


def test_a_failure_crossing_a_sub_story_is_sent_once(webhook_server: Any) -> None:
    hook = webhook_server()
    renderer = AlertRoutingRenderer([HttpWebhookDestination(hook.url)])

    with pytest.raises(ValueError):
        with story("API", renderers=[renderer]):
            with stage("Persist"):
                with story("DB insert"):
                    raise ValueError("constraint")

    [body] = hook.bodies()
    assert body["story_name"] == "DB insert"


@pytest.mark.allow_internal_errors
def test_a_failing_and_a_silent_destination_cost_at_most_their_timeout(
    webhook_server: Any, silent_url: str, internal_errors: list[logging.LogRecord]
) -> None:
    good, broken = webhook_server(), webhook_server(status=500)
    renderer = AlertRoutingRenderer(
        [
            HttpWebhookDestination(silent_url, timeout=0.5),
            HttpWebhookDestination(silent_url, timeout=0.5),
            HttpWebhookDestination(silent_url, timeout=0.5),
            HttpWebhookDestination(broken.url, timeout=5),
            SlackWebhookDestination(good.url, timeout=5),
        ]
    )

    started = time.monotonic()
    fail_in_stage(renderer)
    elapsed = time.monotonic() - started

    # Three silent destinations of 0.5 s each, waited for concurrently.
    assert elapsed < 1.4
    assert len(good.requests) == 1
    assert len(broken.requests) == 1
    messages = sorted(record.getMessage() for record in internal_errors)
    assert len(messages) == 4
    assert sum("HTTP 500" in m for m in messages) == 1
    assert sum("no answer within 0.5s" in m or "timed out" in m for m in messages) == 3
    assert all("/hook" not in m and "/never" not in m for m in messages)


def test_secrets_in_the_message_are_redacted(webhook_server: Any) -> None:
    hook = webhook_server()
    renderer = AlertRoutingRenderer([HttpWebhookDestination(hook.url)])

    with pytest.raises(ConnectionError):
        with story("Sync", renderers=[renderer]):
            raise ConnectionError("cannot reach postgresql://app:hunter2@db/prod")

    [body] = hook.bodies()
    assert "hunter2" not in json.dumps(body)
    assert "<redacted>" in body["error_message"]


def test_destination_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="http"):
        HttpWebhookDestination("ftp://example.invalid/x")
    with pytest.raises(ValueError, match="timeout"):
        SlackWebhookDestination("http://127.0.0.1:9/x", timeout=0)
    assert repr(SlackWebhookDestination("https://127.0.0.1/services/T/B/secret")) == (
        "SlackWebhookDestination(127.0.0.1)"
    )
