from __future__ import annotations

import io
import logging
import threading
from datetime import datetime, timezone
from typing import Any

import pytest

from runtime_narrative.events import (
    STORY_BODY,
    FailureOccurred,
    LLMAnalysisReady,
    LogRecorded,
    StageCompleted,
    StageStarted,
    StoryCompleted,
    StoryStarted,
)
from runtime_narrative.renderers.console import ConsoleRenderer

WHEN = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
ROOT = "ad8cc2f0e1d2"
SUB = "d17c63a9b8c7"


class TtyStream(io.StringIO):
    def isatty(self) -> bool:
        return True


class RecordingStream:
    def __init__(self) -> None:
        self.writes: list[str] = []
        self.flushes = 0

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)

    def flush(self) -> None:
        self.flushes += 1


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NO_COLOR", "FORCE_COLOR", "TERM"):
        monkeypatch.delenv(name, raising=False)


def started(story_id: str = ROOT, name: str = "Import Customers", **kw: Any) -> Any:
    kw.setdefault("root_story_id", story_id)
    return StoryStarted(story_id, name, WHEN, **kw)


def stage_started(name: str, depth: int = 0, story_id: str = ROOT) -> StageStarted:
    return StageStarted(story_id, name, WHEN, 0, depth=depth, root_story_id=ROOT)


def stage_done(
    name: str, seconds: float, depth: int = 0, story_id: str = ROOT, **kw: Any
) -> StageCompleted:
    return StageCompleted(
        story_id, name, WHEN, seconds, 0, depth=depth, root_story_id=ROOT, **kw
    )


def completed(story_id: str = ROOT, name: str = "Import Customers", **kw: Any) -> Any:
    kw.setdefault("success", True)
    kw.setdefault("duration_seconds", 0.031)
    kw.setdefault("root_story_id", ROOT)
    return StoryCompleted(
        story_id,
        name,
        progress_percent=kw.pop("progress_percent", 100),
        completed_stages=kw.pop("completed_stages", 3),
        total_stages=kw.pop("total_stages", 3),
        timestamp=WHEN,
        **kw,
    )


def failure(**kw: Any) -> FailureOccurred:
    fields: dict[str, Any] = {
        "story_id": ROOT,
        "story_name": "Import Customers",
        "stage_name": "Insert Records",
        "error_type": "ValueError",
        "error_message": "duplicate customer id",
        "filename": "examples/import_customers.py",
        "lineno": 47,
        "function": "insert_rows",
        "source_line": '    raise ValueError("duplicate customer id") from exc',
        "exception_chain": (
            "ValueError: duplicate customer id <- IntegrityError: UNIQUE failed"
        ),
        "exact_cause": "insert_rows raised ValueError",
        "llm_analysis": None,
        "stage_timeline": "",
        "progress_percent": 66,
        "completed_stages": 2,
        "total_stages": 3,
        "timestamp": WHEN,
        "root_story_id": ROOT,
    }
    fields.update(kw)
    return FailureOccurred(**fields)


def render(*events: object, **options: Any) -> str:
    out = io.StringIO()
    renderer = ConsoleRenderer(out, **options)

    for event in events:
        renderer.handle(event)

    return out.getvalue()


def test_story_and_stage_lines_are_tagged_and_aligned() -> None:
    text = render(
        started(),
        stage_started("Load CSV"),
        stage_done("Load CSV", 0.0123),
        stage_started("Validate Data"),
        stage_done("Validate Data", 0.004),
        completed(),
    )

    assert text.splitlines() == [
        "[ad8cc2] ▶ Story started: Import Customers",
        "[ad8cc2]   ✔ Load CSV                              0.012s",
        "[ad8cc2]   ✔ Validate Data                         0.004s",
        "[ad8cc2] ✔ Story completed: Import Customers  (0.031s)",
    ]


def test_stage_starts_are_shown_only_on_request() -> None:
    events = (started(), stage_started("Load CSV"), stage_done("Load CSV", 0.01))

    quiet = render(*events)
    verbose = render(*events, show_stage_starts=True)
    silent = render(*events, show_stages=False)

    assert "▸" not in quiet
    assert "[ad8cc2]   ▸ Load CSV\n" in verbose
    assert silent == "[ad8cc2] ▶ Story started: Import Customers\n"


def test_nested_stages_are_indented_by_depth() -> None:
    text = render(
        started(),
        stage_started("Validate Data"),
        stage_started("Check schema", depth=1),
        stage_done("Check schema", 0.002, depth=1),
        stage_done("Validate Data", 0.004),
    )

    assert text.splitlines()[1:] == [
        "[ad8cc2]     ✔ Check schema                        0.002s",
        "[ad8cc2]   ✔ Validate Data                         0.004s",
    ]


def test_sub_story_is_indented_under_the_stage_that_opened_it() -> None:
    text = render(
        started(name="POST /orders"),
        stage_started("Persist Order"),
        started(SUB, "DB: INSERT orders", parent_story_id=ROOT, root_story_id=ROOT),
        stage_started("Execute Query", story_id=SUB),
        stage_done("Execute Query", 0.021, story_id=SUB),
        completed(SUB, "DB: INSERT orders", duration_seconds=0.034),
        stage_done("Persist Order", 0.034),
        completed(name="POST /orders", duration_seconds=0.052),
    )

    assert text.splitlines() == [
        "[ad8cc2] ▶ Story started: POST /orders",
        "[d17c63]     ▶ Story started: DB: INSERT orders",
        "[d17c63]       ✔ Execute Query                     0.021s",
        "[d17c63]     ✔ Story completed: DB: INSERT orders  (0.034s)",
        "[ad8cc2]   ✔ Persist Order                         0.034s",
        "[ad8cc2] ✔ Story completed: POST /orders  (0.052s)",
    ]


def test_sub_story_outside_any_stage_is_one_level_down() -> None:
    text = render(
        started(),
        started(SUB, "Child", parent_story_id=ROOT, root_story_id=ROOT),
    )

    assert text.splitlines()[1] == "[d17c63]   ▶ Story started: Child"


def test_progress_is_shown_when_known() -> None:
    text = render(
        started(total_stages=3),
        stage_done("Load CSV", 0.012, progress_percent=33),
    )

    assert text.splitlines() == [
        "[ad8cc2] ▶ Story started: Import Customers  (3 stages)",
        "[ad8cc2]   ✔ Load CSV                              0.012s  [33%]",
    ]


def test_failed_cancelled_and_outcome_endings() -> None:
    failed = completed(
        success=False, status="failed", error_type="ValueError", completed_stages=2
    )
    cancelled = completed(
        success=False,
        status="cancelled",
        error_type="TimeoutError",
        duration_seconds=0.5,
        total_stages=None,
    )
    answered = completed(name="GET /health", outcome="200 OK", duration_seconds=75.5)

    text = render(failed, cancelled, answered)

    assert text.splitlines() == [
        "[ad8cc2] ■ Story failed: Import Customers — ValueError  (0.031s, 2/3 stages)",
        "[ad8cc2] ⊘ Story cancelled: Import Customers — TimeoutError  (0.500s)",
        "[ad8cc2] ✔ Story completed: GET /health — 200 OK  (1m15.5s)",
    ]


def test_failure_block_shows_location_code_chain_and_stack() -> None:
    event = failure(
        chain=({"short_type": "ValueError"}, {"short_type": "IntegrityError"}),
        source_snippet="  46 |     try:\n> 47 |         raise ValueError(...)",
        compressed_stack_summary="main.py:12 run → import_customers.py:47 insert_rows",
        traceback_text="Traceback (most recent call last):\n  ...",
    )

    text = render(started(), event)

    assert text.splitlines()[1:] == [
        "[ad8cc2] ❌ Failure at: Insert Records",
        "           ValueError: duplicate customer id",
        "           Location:   examples/import_customers.py:47  insert_rows",
        '           Code:       raise ValueError("duplicate customer id") from exc',
        "           Chain:      ValueError ← IntegrityError",
        "           Snippet:",
        "                 46 |     try:",
        "               > 47 |         raise ValueError(...)",
        "           Stack:      main.py:12 run → import_customers.py:47 insert_rows",
    ]


def test_chain_falls_back_to_the_text_form() -> None:
    text = render(failure())

    assert "           Chain:      ValueError ← IntegrityError\n" in text


def test_single_exception_has_no_chain_line() -> None:
    text = render(failure(exception_chain="ValueError: duplicate customer id"))

    assert "Chain:" not in text


def test_rules_analysis_comes_before_llm_analysis() -> None:
    event = failure(
        rules_analysis="## Exact Why\nThe id already exists.\n\n## Targeted Fix\nSkip.",
        llm_analysis="## Exact Why\nA UNIQUE index rejected id 7.",
    )

    text = render(event)

    analysis = text.split("\n\n", 1)[1]
    assert analysis.splitlines() == [
        "           ## Exact Why",
        "             The id already exists.",
        "",
        "           ## Targeted Fix",
        "             Skip.",
        "",
        "           LLM analysis:",
        "           ## Exact Why",
        "             A UNIQUE index rejected id 7.",
    ]


def test_locals_and_traceback_are_shown_when_present() -> None:
    event = failure(
        locals_by_frame={
            "frame_2": {
                "filename": "examples/import_customers.py",
                "lineno": 47,
                "function": "insert_rows",
                "locals": {"row": "{'id': 7}"},
            }
        },
        traceback_text="Traceback (most recent call last):\n  File x",
    )

    hidden = render(event)
    shown = render(event, show_traceback=True)

    assert "Traceback" not in hidden
    assert (
        "           Locals:\n"
        "             insert_rows  examples/import_customers.py:47\n"
        "               row = {'id': 7}\n"
    ) in hidden
    assert (
        "           Traceback:\n"
        "               Traceback (most recent call last):\n"
        "                 File x\n"
    ) in shown


def test_failure_in_sub_story_and_story_body() -> None:
    text = render(
        started(),
        stage_started("Persist Order"),
        started(SUB, "DB", parent_story_id=ROOT, root_story_id=ROOT),
        failure(story_id=SUB, stage_name=STORY_BODY, recorded=True),
    )

    lines = text.splitlines()
    assert lines[2] == (
        "[d17c63]     ❌ Failure at: (story body)  (recorded; the story continues)"
    )
    assert lines[3] == "               ValueError: duplicate customer id"


def test_late_analysis_is_printed_under_its_stage() -> None:
    ready = LLMAnalysisReady(
        ROOT, "Import Customers", "Insert Records", "## Exact Why\nId 7 exists.", WHEN
    )
    abandoned = LLMAnalysisReady(
        ROOT, "Import Customers", "Insert Records", None, WHEN, abandoned=True
    )

    text = render(ready, abandoned)

    assert text.splitlines() == [
        "[ad8cc2] ◆ Analysis for Insert Records",
        "           ## Exact Why",
        "             Id 7 exists.",
        "[ad8cc2] ⚠ Analysis for Insert Records did not finish",
    ]


def log(level: str = "WARNING", **kw: Any) -> LogRecorded:
    kw.setdefault("fields", {"table": "orders", "ms": 812})
    return LogRecorded(
        kw.pop("story_id", ROOT),
        "Import Customers",
        ROOT,
        "Load CSV",
        level,
        "app.db",
        kw.pop("message", "slow query"),
        WHEN,
        **kw,
    )


def test_log_lines_sit_inside_the_open_stage() -> None:
    text = render(
        started(),
        stage_started("Load CSV"),
        log(),
        log("ERROR", fields={}, message="lost", exc_text="Traceback...\nOSError"),
        log(story_id=None, fields={"note": "two words"}),
    )

    assert text.splitlines()[1:] == [
        "[ad8cc2]     ⚠ WARNING app.db: slow query  table=orders  ms=812",
        "[ad8cc2]     ✖ ERROR app.db: lost",
        "               Traceback...",
        "               OSError",
        "[------] ⚠ WARNING app.db: slow query  note='two words'",
    ]


def test_level_icons_override_the_defaults() -> None:
    text = render(log("warning", fields={}), level_icons={"WARNING": "!!"})

    assert text == "[ad8cc2]   !! WARNING app.db: slow query\n"


def test_log_renderer_formats_log_records() -> None:
    text = render(log(), log_renderer=lambda event: f"LOG {event.message}")

    assert text == "LOG slow query\n"


@pytest.mark.allow_internal_errors
def test_failing_log_renderer_is_switched_off_and_reported_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(event: LogRecorded) -> str:
        raise RuntimeError("formatter bug")

    with caplog.at_level(logging.ERROR, logger="runtime_narrative"):
        text = render(log(fields={}), log(fields={}), log_renderer=broken)

    assert text.splitlines() == ["[ad8cc2]   ⚠ WARNING app.db: slow query"] * 2
    assert [r.message for r in caplog.records].count(
        "ConsoleRenderer's log_renderer raised; log records now use the default format"
    ) == 1


def test_unknown_events_are_ignored() -> None:
    text = render(object(), "not an event", {"event": "StoryStarted"})

    assert text == ""


@pytest.mark.allow_internal_errors
def test_an_unformattable_event_still_produces_a_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    odd = StageCompleted(ROOT, "Load CSV", WHEN, None, 0)  # type: ignore[arg-type]

    with caplog.at_level(logging.ERROR, logger="runtime_narrative"):
        text = render(odd)

    assert text == "[------] ? StageCompleted (could not be shown)\n"
    assert "could not format a StageCompleted" in caplog.text


def test_each_event_is_one_write_followed_by_a_flush() -> None:
    stream = RecordingStream()
    renderer = ConsoleRenderer(stream)

    renderer.handle(started())
    renderer.handle(failure(source_snippet="> 47 | raise"))

    assert len(stream.writes) == 2
    assert stream.writes[1].count("\n") > 3
    assert stream.flushes == 2


def test_default_output_is_stderr_at_write_time(
    capsys: pytest.CaptureFixture[str],
) -> None:
    renderer = ConsoleRenderer()

    renderer.handle(started())

    assert capsys.readouterr().err == "[ad8cc2] ▶ Story started: Import Customers\n"


def test_no_colour_on_a_plain_stream() -> None:
    text = render(started(), stage_done("Load CSV", 0.01))

    assert "\x1b[" not in text


def test_colour_on_a_tty() -> None:
    out = TtyStream()

    ConsoleRenderer(out).handle(stage_done("Load CSV", 0.01))

    assert "\x1b[32m✔\x1b[0m" in out.getvalue()


def test_no_color_wins_over_a_tty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    out = TtyStream()

    ConsoleRenderer(out).handle(started())

    assert "\x1b[" not in out.getvalue()


def test_force_color_colours_a_plain_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")

    text = render(started())

    assert "\x1b[" in text


def test_color_argument_overrides_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    plain = render(started(), color=False)
    monkeypatch.setenv("NO_COLOR", "1")
    coloured = render(started(), color=True)

    assert "\x1b[" not in plain
    assert "\x1b[" in coloured


def test_a_story_family_shares_one_colour() -> None:
    text = render(
        started(),
        started(SUB, "Child", parent_story_id=ROOT, root_story_id=ROOT),
        color=True,
    )

    root_line, sub_line = text.splitlines()
    assert root_line.split("[ad8cc2]")[0] == sub_line.split("[d17c63]")[0]
    assert root_line.startswith("\x1b[")


def test_ascii_glyphs_when_the_stream_cannot_encode_unicode() -> None:
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="cp1252")
    renderer = ConsoleRenderer(out)

    renderer.handle(started(name="Import ✓ Customers"))
    renderer.handle(stage_done("Load CSV", 0.012))
    renderer.handle(failure())
    renderer.handle(log(fields={}))
    out.flush()

    lines = raw.getvalue().decode("cp1252").splitlines()
    assert lines[0] == r"[ad8cc2] > Story started: Import \u2713 Customers"
    assert lines[1] == "[ad8cc2]   [ok] Load CSV                           0.012s"
    assert lines[2] == "[ad8cc2] [FAIL] Failure at: Insert Records"
    assert "           Chain:      ValueError <- IntegrityError" in lines
    assert lines[-1] == "[ad8cc2]   [!] WARNING app.db: slow query"


def test_threads_write_whole_events() -> None:
    out = io.StringIO()
    renderer = ConsoleRenderer(out)
    block = failure(source_snippet="\n".join(f"{n:>3} | line" for n in range(20)))

    def work(worker: int) -> None:
        for _ in range(50):
            renderer.handle(stage_done(f"Stage {worker}", 0.01))
            renderer.handle(block)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    expected_block = render(block)
    text = out.getvalue()
    assert text.count(expected_block) == 400
    stage_lines = [line for line in text.splitlines() if "✔ Stage" in line]
    assert len(stage_lines) == 400
    assert all(line.endswith("0.010s") for line in stage_lines)
