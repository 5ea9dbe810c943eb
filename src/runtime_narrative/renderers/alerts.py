"""AlertRoutingRenderer: send failures to Slack and to HTTP webhooks.

Only the standard library is used (``urllib.request``), so this renderer
needs no extra. Every destination has a timeout; destinations are called
concurrently, and one that fails or hangs is logged and costs at most its
timeout.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from typing import Any, Optional

from runtime_narrative.diagnostics.redact import Redactor
from runtime_narrative.events import FailureOccurred

__all__ = [
    "AlertDestination",
    "AlertRoutingRenderer",
    "HttpWebhookDestination",
    "SlackWebhookDestination",
    "alert_payload",
]

logger = logging.getLogger("runtime_narrative")

# Exceptions already alerted on, per renderer, so a failure that ends a
# sub-story and then its parent is sent once.
_SEEN_FAILURES = 256

_redactor: Optional[Redactor] = None


def _redact(text: Optional[str]) -> Optional[str]:
    """Redact once more: the event was redacted by capture, this is a backstop."""
    global _redactor
    if text is None:
        return None
    if _redactor is None:
        _redactor = Redactor()
    return _redactor.redact_text(text)


def alert_payload(event: FailureOccurred) -> dict[str, Any]:
    """The fields an alert carries, with the free texts redacted again."""
    return {
        "story_id": event.story_id,
        "story_name": event.story_name,
        "stage_name": event.stage_name,
        "error_type": event.error_type,
        "error_message": _redact(event.error_message),
        "filename": event.filename,
        "lineno": event.lineno,
        "function": event.function,
        "llm_analysis": _redact(event.llm_analysis),
        "timestamp": event.timestamp.isoformat(),
    }


class AlertDestination:
    """A webhook that takes a JSON POST. Subclasses shape the body.

    ``send`` raises on any failure (a refused connection, a timeout, a
    non-2xx answer); the renderer catches and logs it.
    """

    def __init__(
        self,
        url: str,
        *,
        headers: Optional[Mapping[str, str]] = None,
        timeout: float = 5.0,
    ) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError("a webhook URL must be an absolute http(s) URL")
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0; got {timeout!r}")
        self.url = url
        self.headers = dict(headers or {})
        self.timeout = float(timeout)

    def body(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The JSON document to POST for ``payload`` (see ``alert_payload``)."""
        return payload

    def send(self, payload: dict[str, Any]) -> None:
        """POST the alert; raise if it was not accepted within the timeout."""
        data = json.dumps(self.body(payload)).encode("utf-8")
        request = urllib.request.Request(self.url, data=data, method="POST")
        request.add_header("Content-Type", "application/json; charset=utf-8")
        request.add_header("User-Agent", "runtime-narrative")
        for name, value in self.headers.items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            exc.close()  # it holds the open response
            raise

    def __repr__(self) -> str:
        # Never the full URL: for Slack the path is the secret.
        host = urllib.parse.urlsplit(self.url).netloc.rpartition("@")[2]
        return f"{type(self).__name__}({host})"


class HttpWebhookDestination(AlertDestination):
    """POST the alert as JSON to any webhook.

    The document has the keys story_id, story_name, stage_name, error_type,
    error_message, filename, lineno, function, llm_analysis (null when there
    is none) and timestamp (ISO 8601). ``headers`` are sent with each request
    (an ``Authorization`` header, say); ``timeout`` bounds the request in
    seconds.

    .. versionadded:: 0.1.0
    """


class SlackWebhookDestination(AlertDestination):
    """Post the alert to a Slack incoming webhook as a Block Kit message.

    The message has a header naming the story, a section with the stage,
    the error and where it was raised, and a section with the analysis when
    the event carries one. ``text`` is the plain fallback Slack shows in
    notifications.

    .. versionadded:: 0.1.0
    """

    def body(self, payload: dict[str, Any]) -> dict[str, Any]:
        story_name = payload["story_name"]
        error = f"{payload['error_type']}: {payload['error_message'] or ''}"
        details = [
            f"*Stage:* {_mrkdwn(payload['stage_name'])}",
            f"*Error:* {_mrkdwn(error)}",
        ]
        if payload["filename"]:
            where = f"{payload['filename']}:{payload['lineno']}"
            if payload["function"]:
                where += f" in {payload['function']}"
            details.append(f"*Where:* {_mrkdwn(where)}")
        blocks: list[dict[str, Any]] = [
            {
                "type": "header",
                "text": {
                    "type": "plain_text",
                    "text": _cut(f"Story failed: {story_name}", 150),
                },
            },
            _section("\n".join(details)),
        ]
        if payload["llm_analysis"]:
            blocks.append(_section(f"*Analysis*\n{_mrkdwn(payload['llm_analysis'])}"))
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": _mrkdwn(
                            f"story {payload['story_id']} · {payload['timestamp']}"
                        ),
                    }
                ],
            }
        )
        return {
            "text": _cut(f"Story {story_name!r} failed: {error}", 3000),
            "blocks": blocks,
        }


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, 3000)}}


def _mrkdwn(text: str) -> str:
    """Escape the three characters Slack gives a meaning to in message text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class AlertRoutingRenderer:
    """Send each FailureOccurred to every destination, concurrently.

    ``only_stories`` and ``only_error_types`` restrict alerts to those story
    names and exception type names (``None``: all). A failure that ends a
    sub-story and then the stories around it is sent once, for the first
    story that reports it and passes the filters.

    In a ``with`` story the alerts are sent from a small thread pool and the
    story waits for them, at most the longest destination timeout. In an
    ``async with`` story they are sent from the same pool while the event
    loop keeps running, and the story awaits them the same bounded way. A
    destination that fails or does not answer in time is logged on the
    ``runtime_narrative`` logger (without its URL, which may hold a token);
    the story is never affected. Only redacted text is sent.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        destinations: Sequence[AlertDestination],
        *,
        only_stories: Optional[Iterable[str]] = None,
        only_error_types: Optional[Iterable[str]] = None,
    ) -> None:
        self.destinations = tuple(destinations)
        self.only_stories = (
            frozenset(only_stories) if only_stories is not None else None
        )
        self.only_error_types = (
            frozenset(only_error_types) if only_error_types is not None else None
        )
        self._lock = threading.Lock()
        self._pool: Optional[concurrent.futures.ThreadPoolExecutor] = None
        self._seen: OrderedDict[tuple[Any, ...], None] = OrderedDict()

    def handle(self, event: object) -> Optional[Coroutine[Any, Any, None]]:
        """Route a FailureOccurred; other events are ignored.

        Returns a coroutine to await when called on a thread with a running
        event loop, so an async story awaits delivery without blocking it.
        """
        if not isinstance(event, FailureOccurred) or not self._wanted(event):
            return None
        payload = alert_payload(event)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self._deliver(payload)
            return None
        return self._deliver_async(payload)

    def close(self) -> None:
        """Stop the delivery threads (they exit once idle)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False)

    # -- filtering -------------------------------------------------------------

    def _wanted(self, event: FailureOccurred) -> bool:
        if self.only_stories is not None and event.story_name not in self.only_stories:
            return False
        if (
            self.only_error_types is not None
            and event.error_type not in self.only_error_types
        ):
            return False
        if not self.destinations:
            return False
        key = (
            event.root_story_id or event.story_id,
            event.error_type,
            event.error_message,
            event.filename,
            event.lineno,
        )
        with self._lock:
            if key in self._seen:
                return False
            self._seen[key] = None
            if len(self._seen) > _SEEN_FAILURES:
                self._seen.popitem(last=False)
        return True

    # -- delivery ----------------------------------------------------------------

    def _executor(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    max_workers=min(8, max(2, len(self.destinations))),
                    thread_name_prefix="runtime-narrative-alerts",
                )
            return self._pool

    def _deliver(self, payload: dict[str, Any]) -> None:
        pool = self._executor()
        started = time.monotonic()
        futures = [(d, pool.submit(d.send, payload)) for d in self.destinations]
        for destination, future in futures:
            remaining = destination.timeout - (time.monotonic() - started)
            try:
                future.result(timeout=max(remaining, 0.0))
            except concurrent.futures.TimeoutError:
                _log_timeout(destination, payload)
            except Exception as exc:
                _log_failure(destination, payload, exc)

    async def _deliver_async(self, payload: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        pool = self._executor()

        async def one(destination: AlertDestination) -> None:
            try:
                await asyncio.wait_for(
                    loop.run_in_executor(pool, destination.send, payload),
                    timeout=destination.timeout,
                )
            except asyncio.TimeoutError:
                _log_timeout(destination, payload)
            except Exception as exc:
                _log_failure(destination, payload, exc)

        await asyncio.gather(*(one(d) for d in self.destinations))


def _log_timeout(destination: AlertDestination, payload: dict[str, Any]) -> None:
    logger.error(
        "alert for story %r to %r got no answer within %.1fs",
        payload["story_name"],
        destination,
        destination.timeout,
    )


def _log_failure(
    destination: AlertDestination, payload: dict[str, Any], exc: BaseException
) -> None:
    if isinstance(exc, urllib.error.HTTPError):
        reason = f"HTTP {exc.code}"
    elif isinstance(exc, urllib.error.URLError):
        reason = f"{type(exc.reason).__name__}: {exc.reason}"
    else:
        reason = f"{type(exc).__name__}: {exc}"
    logger.error(
        "alert for story %r to %r failed: %s",
        payload["story_name"],
        destination,
        reason,
    )
