"""NarrativeLogHandler: log records as LogRecorded events of the open story."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
from collections.abc import Iterator

import pytest

from runtime_narrative import (
    ConsoleRenderer,
    JsonRenderer,
    LogRecorded,
    NarrativeLogHandler,
    stage,
    story,
)
from runtime_narrative.testing import StoryRecorder


class Collecting(logging.Handler):
    def __init__(self, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def fallback() -> Collecting:
    return Collecting()


@pytest.fixture
def app_logger(fallback: Collecting) -> Iterator[logging.Logger]:
    """A logger of the application with only a NarrativeLogHandler on it."""
    logger = logging.getLogger("tests.app")
    handler = NarrativeLogHandler(level=logging.INFO, fallback=fallback)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger
    logger.removeHandler(handler)
    logger.propagate = True


def test_a_record_in_a_stage_becomes_a_log_recorded_event(
    app_logger: logging.Logger, fallback: Collecting
) -> None:
    with StoryRecorder("Import") as recorder:
        with stage("Load"):
            app_logger.warning("read %d rows", 3, extra={"source": "a.csv", "n": 3})

    (event,) = recorder.logs
    assert event.story_id == recorder.stories_started[0].story_id
    assert event.root_story_id == event.story_id
    assert event.story_name == "Import"
    assert event.stage_name == "Load"
    assert event.level == "WARNING"
    assert event.logger_name == "tests.app"
    assert event.message == "read 3 rows"
    assert event.exc_text is None
    assert event.fields == {"source": "a.csv", "n": 3}
    assert fallback.records == []


def test_the_stage_is_the_innermost_open_one_or_none_in_the_body(
    app_logger: logging.Logger,
) -> None:
    with StoryRecorder("Import") as recorder:
        app_logger.info("body")
        with stage("Outer"), stage("Inner"):
            app_logger.info("inner")

    assert [(e.message, e.stage_name) for e in recorder.logs] == [
        ("body", None),
        ("inner", "Inner"),
    ]


def test_a_sub_story_record_carries_the_root_story(app_logger: logging.Logger) -> None:
    with StoryRecorder("Request") as recorder:
        with story("DB call"):
            app_logger.info("query")

    root, child = recorder.stories_started
    (event,) = recorder.logs
    assert event.story_id == child.story_id
    assert event.root_story_id == root.story_id


def test_exception_text_is_included(app_logger: logging.Logger) -> None:
    with StoryRecorder("Import") as recorder:
        try:
            {}["missing"]
        except KeyError:
            app_logger.exception("lookup failed")

    (event,) = recorder.logs
    assert event.level == "ERROR"
    assert event.exc_text is not None
    assert event.exc_text.startswith("Traceback (most recent call last)")
    assert "KeyError: 'missing'" in event.exc_text


def test_message_fields_and_exception_text_are_redacted(
    app_logger: logging.Logger,
) -> None:
    class Account:
        def __repr__(self) -> str:
            return "Account(password=hunter2)"

    with StoryRecorder("Login") as recorder:
        try:
            raise ValueError("bad api_key=sk-live-1234567890abcdef")
        except ValueError:
            app_logger.error(
                "login with password=%s",
                "hunter2",
                exc_info=True,
                extra={
                    "api_key": "sk-live-1234567890abcdef",
                    "user": "bob",
                    "headers": {"Authorization": "Bearer abc.def", "Accept": "*/*"},
                    "account": Account(),
                },
            )

    (event,) = recorder.logs
    dumped = json.dumps(event.to_dict())
    assert "hunter2" not in dumped
    assert "sk-live-1234567890abcdef" not in dumped
    assert "abc.def" not in dumped
    assert event.fields["user"] == "bob"
    assert event.fields["api_key"] == "<redacted>"
    assert event.fields["headers"] == {"Authorization": "<redacted>", "Accept": "*/*"}
    assert event.exc_text is not None
    assert "ValueError" in event.exc_text


def test_records_below_the_level_are_ignored(app_logger: logging.Logger) -> None:
    with StoryRecorder("Import") as recorder:
        app_logger.debug("noise")

    assert recorder.logs == []


def test_outside_a_story_records_go_to_the_fallback(
    app_logger: logging.Logger, fallback: Collecting
) -> None:
    app_logger.warning("no story here")

    assert [record.getMessage() for record in fallback.records] == ["no story here"]


def test_outside_a_story_without_fallback_nothing_breaks() -> None:
    handler = NarrativeLogHandler()
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "lost?", (), None)

    handler.handle(record)  # no story, no fallback: left to other handlers


def test_a_thread_without_the_story_logs_to_the_fallback(
    app_logger: logging.Logger, fallback: Collecting
) -> None:
    with StoryRecorder("Import") as recorder:
        worker = threading.Thread(target=app_logger.warning, args=("from a thread",))
        worker.start()
        worker.join()

    assert recorder.logs == []
    assert [record.getMessage() for record in fallback.records] == ["from a thread"]


class LoggingRenderer:
    """A renderer that itself logs, to the logger the handler is on."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self.events: list[object] = []

    def handle(self, event: object) -> None:
        self.events.append(event)
        if isinstance(event, LogRecorded):
            self.logger.warning("renderer saw %s", event.message)


def test_a_renderer_that_logs_cannot_make_it_recurse(
    app_logger: logging.Logger, fallback: Collecting
) -> None:
    renderer = LoggingRenderer(app_logger)

    with story("Loop", renderers=[renderer]):
        app_logger.warning("once")

    logs = [e for e in renderer.events if isinstance(e, LogRecorded)]
    assert [e.message for e in logs] == ["once"]
    assert [r.getMessage() for r in fallback.records] == ["renderer saw once"]


class AsyncLoggingRenderer(LoggingRenderer):
    async def handle(self, event: object) -> None:  # type: ignore[override]
        super().handle(event)


async def test_an_async_renderer_that_logs_cannot_loop_either(
    app_logger: logging.Logger, fallback: Collecting
) -> None:
    renderer = AsyncLoggingRenderer(app_logger)

    async with story("Loop", renderers=[renderer]):
        app_logger.warning("once")
        for _ in range(20):  # let the delivery scheduled on the loop run
            await asyncio.sleep(0)

    logs = [e for e in renderer.events if isinstance(e, LogRecorded)]
    assert [e.message for e in logs] == ["once"]
    assert [r.getMessage() for r in fallback.records] == ["renderer saw once"]


def test_console_and_json_renderers_show_log_records(
    app_logger: logging.Logger,
) -> None:
    console, lines = io.StringIO(), io.StringIO()
    renderers = [ConsoleRenderer(console, color=False), JsonRenderer(lines)]

    with story("Import", renderers=renderers), stage("Load"):
        app_logger.warning("disk low", extra={"free_mb": 3})

    assert "WARNING tests.app: disk low" in console.getvalue()
    assert "free_mb=3" in console.getvalue()
    events = [json.loads(line) for line in lines.getvalue().splitlines()]
    (log,) = [event for event in events if event["event"] == "LogRecorded"]
    assert log["message"] == "disk low"
    assert log["stage_name"] == "Load"
    assert log["fields"] == {"free_mb": 3}


def test_root_logger_setup_from_the_docs_captures_warnings(
    fallback: Collecting,
) -> None:
    root = logging.getLogger()
    handler = NarrativeLogHandler(level=logging.WARNING, fallback=fallback)
    root.addHandler(handler)
    try:
        with StoryRecorder("Job") as recorder:
            logging.getLogger("some.library").warning("deprecated call")
            logging.getLogger("some.library").info("chatter")
    finally:
        root.removeHandler(handler)

    assert [(e.logger_name, e.message) for e in recorder.logs] == [
        ("some.library", "deprecated call")
    ]
