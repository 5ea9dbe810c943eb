"""The story store, run against SQLite and against a real PostgreSQL server.

Every test taking the ``store`` fixture runs once per backend; the PostgreSQL
run uses a schema of its own (see tests/_pg.py).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from _pg import postgres_schema  # noqa: F401 - a fixture
from runtime_narrative import (
    FailureOccurred,
    LLMAnalysisReady,
    StageStarted,
    StoryRecorder,
    stage,
    story,
)
from runtime_narrative.renderers._store import SCHEMA_VERSION, StoryReader
from runtime_narrative.renderers.sqlite import SqliteStoryRenderer, open_sqlite_reader

SRC = str(Path(__file__).resolve().parents[1] / "src")


class Backend:
    """One store under test: how to make a renderer, a reader, and count rows."""

    def __init__(self, name: str, target: str, schema: str = "") -> None:
        self.name = name
        self.target = target
        self.schema = schema

    def renderer(self, **kwargs: Any) -> Any:
        if self.name == "sqlite":
            return SqliteStoryRenderer(self.target, **kwargs)
        from runtime_narrative.renderers.postgres import PostgresStoryRenderer

        return PostgresStoryRenderer(self.target, schema=self.schema, **kwargs)

    def reader(self) -> StoryReader:
        if self.name == "sqlite":
            return open_sqlite_reader(self.target)
        from runtime_narrative.renderers.postgres import open_postgres_reader

        return open_postgres_reader(self.target, schema=self.schema)

    def count(self, table: str, where: str = "") -> int:
        return int(self.scalar(f"SELECT COUNT(*) FROM {table} {where}"))

    def scalar(self, query: str) -> Any:
        if self.name == "sqlite":
            with sqlite3.connect(self.target) as connection:
                return connection.execute(query).fetchone()[0]
        import psycopg

        with psycopg.connect(self.target) as connection:
            connection.execute(f"SET search_path TO {self.schema}")
            row = connection.execute(query).fetchone()
            assert row is not None
            return row[0]

    def renderer_source(self) -> str:
        """Python source that builds the same renderer in another process."""
        if self.name == "sqlite":
            return f"SqliteStoryRenderer({self.target!r})"
        return f"PostgresStoryRenderer({self.target!r}, schema={self.schema!r})"


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        yield Backend("sqlite", str(tmp_path / "stories.db"))
        return
    url, schema = request.getfixturevalue("postgres_schema")
    yield Backend("postgres", url, schema)


def run_failing_story(renderer: Any, name: str = "Nightly ETL") -> str:
    with pytest.raises(ValueError), story(name, renderers=[renderer]) as runtime:
        with stage("Load"), stage("Parse"):
            pass
        with stage("Insert Records"):
            raise ValueError("duplicate customer id 7") from KeyError("7")
    return str(runtime.story_id)


def test_a_story_is_stored_with_its_stages_and_failure(store: Backend) -> None:
    renderer = store.renderer()

    story_id = run_failing_story(renderer)

    reader = store.reader()
    stored = reader.story(story_id)
    reader.close()
    assert stored.story["name"] == "Nightly ETL"
    assert stored.story["success"] == 0
    assert stored.story["status"] == "failed"
    assert stored.story["error_type"] == "ValueError"
    assert isinstance(stored.story["started_at"], datetime)
    stages = [
        (
            s["stage_name"],
            s["depth"],
            s["parent_stage_name"],
            s["completed"],
            s["failed"],
        )
        for s in stored.stages
    ]
    assert stages == [
        ("Load", 0, None, 1, 0),
        ("Parse", 1, "Load", 1, 0),
        ("Insert Records", 0, None, 0, 1),
    ]
    [failure] = stored.failures
    assert failure["error_type"] == "ValueError"
    assert failure["error_message"] == "duplicate customer id 7"
    assert failure["filename"].endswith("test_renderers_sqlite.py")
    assert "raise ValueError" in failure["traceback_text"]
    diagnostics = json.loads(failure["diagnostics_json"])
    assert [link["error_type"] for link in diagnostics["chain"]][-1].endswith(
        "KeyError"
    )
    renderer.close()


def test_every_row_is_on_disk_when_the_story_completes(store: Backend) -> None:
    renderer = store.renderer(idle_seconds=60)

    with story("Quick", renderers=[renderer]):
        for number in range(50):
            with stage(f"step {number}"):
                pass

    # No flush(): StoryCompleted alone must have waited for the writer.
    assert store.count("stages", "WHERE completed = 1") == 50
    assert store.count("stories", "WHERE success = 1") == 1
    renderer.close()


def test_a_late_analysis_is_back_filled_after_story_completed(store: Backend) -> None:
    renderer = store.renderer()
    story_id = run_failing_story(renderer)

    renderer.handle(
        LLMAnalysisReady(
            story_id=story_id,
            story_name="Nightly ETL",
            stage_name="Insert Records",
            llm_analysis="## Exact Why\nThe id was already there.",
            timestamp=datetime.now(timezone.utc),
        )
    )
    renderer.flush()

    reader = store.reader()
    [failure] = reader.failures()
    reader.close()
    assert failure["llm_analysis"] == "## Exact Why\nThe id was already there."
    renderer.close()


def test_eight_threads_on_one_renderer_lose_no_row(store: Backend) -> None:
    renderer = store.renderer()
    stories_per_thread = 24

    def work(thread_number: int) -> None:
        for number in range(stories_per_thread):
            try:
                with story(f"T{thread_number}", renderers=[renderer]):
                    with stage("a"):
                        pass
                    with stage("b"):
                        pass
                    if number % 2:
                        with stage("c"):
                            raise RuntimeError(f"{thread_number}/{number}")
            except RuntimeError:
                pass

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    total = 8 * stories_per_thread
    assert store.count("stories") == total
    assert store.count("stories", "WHERE success IS NOT NULL") == total
    assert store.count("stages") == 2 * total + total // 2
    assert store.count("failures") == total // 2
    renderer.close()


def test_several_renderers_on_one_store_lose_no_row(store: Backend) -> None:
    renderers = [store.renderer() for _ in range(4)]

    def work(renderer: Any) -> None:
        for _ in range(20):
            with story("Shared", renderers=[renderer]), stage("only"):
                pass

    threads = [threading.Thread(target=work, args=(r,)) for r in renderers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert store.count("stories", "WHERE success = 1") == 80
    assert store.count("stages", "WHERE completed = 1") == 80
    for renderer in renderers:
        renderer.close()


def test_one_story_given_to_two_renderers_is_stored_once(store: Backend) -> None:
    first, second = store.renderer(), store.renderer()

    run_failing_story_with = [first, second]
    with pytest.raises(ValueError), story("Twice", renderers=run_failing_story_with):
        with stage("x"):
            raise ValueError("once")

    assert store.count("stories") == 1
    assert store.count("stages") == 1
    assert store.count("failures") == 1
    first.close()
    second.close()


PROCESS_SCRIPT = """
import sys
from runtime_narrative import stage, story
from runtime_narrative.renderers.sqlite import SqliteStoryRenderer
{extra_import}
renderer = {renderer}
for number in range(30):
    try:
        with story("P" + sys.argv[1], renderers=[renderer]):
            with stage("a"):
                pass
            with stage("b"):
                if number % 3 == 0:
                    raise KeyError(number)
    except KeyError:
        pass
"""


def _script(store: Backend, body: str) -> str:
    extra = (
        "from runtime_narrative.renderers.postgres import PostgresStoryRenderer"
        if store.name == "postgres"
        else ""
    )
    return textwrap.dedent(body).format(
        extra_import=extra, renderer=store.renderer_source()
    )


def test_four_processes_on_one_store_lose_no_row(store: Backend) -> None:
    script = _script(store, PROCESS_SCRIPT)
    environment = {**os.environ, "PYTHONPATH": SRC}

    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(n)],
            env=environment,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    errors = [process.communicate(timeout=60)[1] for process in processes]

    assert [p.returncode for p in processes] == [0, 0, 0, 0], errors
    assert not any("locked" in e for e in errors), errors
    assert store.count("stories", "WHERE success IS NOT NULL") == 120
    assert store.count("stages") == 240
    assert store.count("failures") == 40


def test_events_still_queued_at_exit_are_written(store: Backend) -> None:
    # Only StoryStarted and StageStarted: nothing waits for the writer, so
    # the rows exist afterwards only if the exit hook flushed the queue.
    script = _script(
        store,
        """
        from datetime import datetime, timezone
        from runtime_narrative import StageStarted, StoryStarted
        {extra_import}
        from runtime_narrative.renderers.sqlite import SqliteStoryRenderer
        renderer = {renderer}
        now = datetime.now(timezone.utc)
        renderer.handle(StoryStarted(story_id="s1", story_name="Exit", timestamp=now))
        for index in range(100):
            renderer.handle(StageStarted(
                story_id="s1", stage_name="st", timestamp=now, stage_index=index))
        """,
    )

    subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONPATH": SRC},
        check=True,
        timeout=60,
    )

    assert store.count("stories") == 1
    assert store.count("stages") == 100


@pytest.mark.allow_internal_errors
def test_a_store_of_a_newer_schema_is_left_alone_and_the_loss_logged(
    store: Backend, internal_errors: list[logging.LogRecord]
) -> None:
    first = store.renderer()
    run_failing_story(first)
    first.close()
    store.scalar("UPDATE schema_version SET version = 99 RETURNING version")
    renderer = store.renderer()

    run_failing_story(renderer, "After")

    assert store.count("stories") == 1
    messages = [record.getMessage() for record in internal_errors]
    assert any("lost" in m and "After" in m and "99" in m for m in messages), messages
    renderer.close()


# -- SQLite only -----------------------------------------------------------------


def _make_published_v1_file(path: Path) -> None:
    """The layout of the published package: key columns, no version table."""
    with sqlite3.connect(path) as connection:
        connection.executescript(
            """
            CREATE TABLE stories (story_id TEXT PRIMARY KEY, name TEXT,
                success INTEGER, duration_seconds REAL, started_at TEXT,
                completed_at TEXT);
            CREATE TABLE stages (story_id TEXT, stage_name TEXT,
                stage_index INTEGER, parent_stage_name TEXT,
                duration_seconds REAL, completed INTEGER, failed INTEGER);
            CREATE TABLE failures (story_id TEXT, stage_name TEXT,
                error_type TEXT, error_message TEXT, filename TEXT,
                lineno INTEGER, traceback_text TEXT, llm_analysis TEXT);
            INSERT INTO stories VALUES ('0ld5t0ry', 'Old ETL', 0, 1.5,
                '2024-01-02T03:04:05+00:00', '2024-01-02T03:04:06.5+00:00');
            INSERT INTO stages VALUES ('0ld5t0ry', 'Load', 0, NULL, 0.5, 1, 0);
            INSERT INTO stages VALUES ('0ld5t0ry', 'Save', 1, NULL, NULL, 0, 1);
            INSERT INTO failures VALUES ('0ld5t0ry', 'Save', 'OSError',
                'disk full', 'etl.py', 12, 'Traceback ...', NULL);
            """
        )


def test_an_old_published_file_is_migrated_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _make_published_v1_file(path)
    renderer = SqliteStoryRenderer(path)

    new_id = run_failing_story(renderer)
    renderer.close()

    reader = open_sqlite_reader(str(path))
    old = reader.story(reader.resolve("0ld5"))
    new = reader.story(new_id)
    failures = reader.failures()
    reader.close()
    assert old.story["name"] == "Old ETL"
    assert [s["stage_name"] for s in old.stages] == ["Load", "Save"]
    assert old.failures[0]["error_message"] == "disk full"
    assert new.failures[0]["error_type"] == "ValueError"
    assert [f["story_id"] for f in failures] == [new_id, "0ld5t0ry"]
    with sqlite3.connect(path) as connection:
        version = connection.execute("SELECT version FROM schema_version").fetchone()
    assert version == (SCHEMA_VERSION,)


def test_reading_an_old_file_migrates_it(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _make_published_v1_file(path)

    reader = open_sqlite_reader(str(path))
    rows = reader.failures(stage="sav")
    reader.close()

    assert [(r["story_name"], r["error_type"]) for r in rows] == [
        ("Old ETL", "OSError")
    ]


@pytest.mark.allow_internal_errors
def test_a_write_that_fails_is_logged_with_what_was_lost(
    tmp_path: Path, internal_errors: list[logging.LogRecord]
) -> None:
    renderer = SqliteStoryRenderer(tmp_path / "missing-directory" / "stories.db")

    run_failing_story(renderer, "Lost Story")

    messages = [record.getMessage() for record in internal_errors]
    assert messages
    assert all("missing-directory" in m and "lost" in m for m in messages)
    assert any("Lost Story" in m and "StoryCompleted" in m for m in messages)
    renderer.close()


def test_the_file_uses_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    renderer = SqliteStoryRenderer(path)

    run_failing_story(renderer)
    renderer.close()

    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


# -- failures find their stage by index; text the database cannot encode -------


def _stage_rows(store: Backend, story_id: str) -> list[tuple[Any, ...]]:
    reader = store.reader()
    try:
        stored = reader.story(story_id)
    finally:
        reader.close()
    return [
        (s["stage_index"], s["stage_name"], s["completed"], s["failed"])
        for s in stored.stages
    ]


def _a_real_failure() -> FailureOccurred:
    recorder = StoryRecorder()
    with pytest.raises(ValueError), story("Sync", renderers=[recorder]):
        with stage("Fetch"):
            raise ValueError("upstream said no")
    [failure] = recorder.failures
    return failure


@pytest.mark.parametrize("recorded", [False, True], ids=["raised", "recorded"])
def test_a_failure_marks_the_stage_of_its_index_when_names_repeat(
    store: Backend, recorded: bool
) -> None:
    renderer = store.renderer()
    now = datetime.now(timezone.utc)
    story_id = "repeat-" + ("r" if recorded else "x")
    for index in range(3):  # three open stages of one name: attempts, nesting
        renderer.handle(
            StageStarted(story_id, "Fetch", now, index, story_name="Sync", depth=index)
        )
    failure = replace(
        _a_real_failure(),
        story_id=story_id,
        stage_name="Fetch",
        stage_index=1,
        recorded=recorded,
    )

    renderer.handle(failure)
    renderer.flush(10)

    assert _stage_rows(store, story_id) == [
        (0, "Fetch", 0, 0),
        (1, "Fetch", 0, 1),
        (2, "Fetch", 0, 0),
    ]
    renderer.close()


def test_a_failure_without_an_index_still_marks_its_stage_by_name(
    store: Backend,
) -> None:
    renderer = store.renderer()
    now = datetime.now(timezone.utc)
    renderer.handle(StageStarted("by-name", "Fetch", now, 0, story_name="Sync"))
    renderer.handle(StageStarted("by-name", "Parse", now, 1, story_name="Sync"))

    renderer.handle(replace(_a_real_failure(), story_id="by-name", stage_index=None))
    renderer.flush(10)

    assert _stage_rows(store, "by-name") == [(0, "Fetch", 0, 1), (1, "Parse", 0, 0)]
    renderer.close()


def test_a_story_named_with_a_lone_surrogate_keeps_every_event(
    store: Backend,
) -> None:
    renderer = store.renderer()
    name = "GET /u/\udcff"

    with pytest.raises(ValueError), story(name, renderers=[renderer]) as runtime:
        with stage("Look Up \udcfe"):
            raise ValueError("no user \udcff")
    renderer.close()

    reader = store.reader()
    stored = reader.story(runtime.story_id)
    reader.close()
    assert stored.story["name"] == "GET /u/\\udcff"
    assert stored.story["status"] == "failed"
    assert [s["stage_name"] for s in stored.stages] == ["Look Up \\udcfe"]
    [failure] = stored.failures
    assert failure["error_message"] == "no user \\udcff"
    assert failure["stage_name"] == "Look Up \\udcfe"
