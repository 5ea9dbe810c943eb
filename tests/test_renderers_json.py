from __future__ import annotations

import io
import json
import logging
import threading
from datetime import datetime, timezone
from typing import Any

import pytest

from runtime_narrative.events import LogRecorded, StageCompleted, StoryStarted
from runtime_narrative.renderers.json import JsonRenderer

WHEN = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


class Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class SelfReferencing:
    """An event-like object whose to_dict() JSON cannot encode."""

    story_id = "ad8cc2f0"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"event": "Custom"}
        data["self"] = data
        return data


def log_event(**fields: Any) -> LogRecorded:
    story_id = "ad8cc2f0"
    return LogRecorded(
        story_id, "Import", story_id, "Load", "INFO", "app", "hi", WHEN, fields=fields
    )


def test_each_event_is_one_json_line() -> None:
    out = io.StringIO()
    renderer = JsonRenderer(out)

    renderer.handle(StoryStarted("ad8cc2f0", "Import", WHEN))
    renderer.handle(StageCompleted("ad8cc2f0", "Load CSV", WHEN, 0.012, 0))

    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["event"] == "StoryStarted"
    assert first["timestamp"] == "2024-05-01T12:00:00+00:00"
    assert second["event"] == "StageCompleted"
    assert second["duration_seconds"] == 0.012


def test_values_json_cannot_hold_are_converted() -> None:
    out = io.StringIO()
    event = log_event(
        raw=b"\xffid", tags={"b", "a"}, when=WHEN, odd=Unprintable(), ratio=float("nan")
    )

    JsonRenderer(out).handle(event)

    fields = json.loads(out.getvalue())["fields"]
    assert fields["raw"] == "\\xffid"
    assert fields["tags"] == ["a", "b"]
    assert fields["when"] == "2024-05-01T12:00:00+00:00"
    assert fields["odd"] == "<unrepresentable Unprintable: RuntimeError>"
    assert fields["ratio"] == "nan"


def test_output_is_ascii_and_keys_can_be_sorted() -> None:
    out = io.StringIO()

    JsonRenderer(out, sort_keys=True).handle(log_event(name="Zoë"))

    line = out.getvalue()
    assert line.isascii()
    assert json.loads(line)["fields"] == {"name": "Zoë"}
    keys = list(json.loads(line))
    assert keys == sorted(keys)


def test_indent_pretty_prints() -> None:
    out = io.StringIO()

    JsonRenderer(out, indent=2).handle(StoryStarted("ad8cc2f0", "Import", WHEN))

    assert out.getvalue().startswith('{\n  "event": "StoryStarted",\n')
    assert json.loads(out.getvalue())["story_name"] == "Import"


def test_default_output_is_stdout_at_write_time(
    capsys: pytest.CaptureFixture[str],
) -> None:
    renderer = JsonRenderer()

    renderer.handle(StoryStarted("ad8cc2f0", "Import", WHEN))

    assert json.loads(capsys.readouterr().out)["story_id"] == "ad8cc2f0"


def test_objects_without_to_dict_are_ignored() -> None:
    out = io.StringIO()

    JsonRenderer(out).handle(object())

    assert out.getvalue() == ""


@pytest.mark.allow_internal_errors
def test_an_unencodable_event_still_gets_a_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    out = io.StringIO()

    with caplog.at_level(logging.ERROR, logger="runtime_narrative"):
        JsonRenderer(out).handle(SelfReferencing())

    assert json.loads(out.getvalue()) == {
        "event": "SelfReferencing",
        "story_id": "ad8cc2f0",
        "encoding_error": "ValueError: Circular reference detected",
    }
    assert "could not encode a SelfReferencing event" in caplog.text


def test_each_event_is_one_write_followed_by_a_flush() -> None:
    writes: list[str] = []
    flushes: list[None] = []

    class Stream:
        def write(self, text: str) -> int:
            writes.append(text)
            return len(text)

        def flush(self) -> None:
            flushes.append(None)

    JsonRenderer(Stream()).handle(log_event(a=1))

    assert len(writes) == 1
    assert writes[0].endswith("}\n")
    assert len(flushes) == 1


def test_threads_write_whole_lines() -> None:
    out = io.StringIO()
    renderer = JsonRenderer(out)

    def work(worker: int) -> None:
        for n in range(200):
            renderer.handle(log_event(worker=worker, n=n, pad="x" * 500))

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(records) == 1600
    seen = {(r["fields"]["worker"], r["fields"]["n"]) for r in records}
    assert len(seen) == 1600
