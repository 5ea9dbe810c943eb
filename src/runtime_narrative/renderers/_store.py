"""What the SQLite and PostgreSQL story stores share.

Three parts, each independent of the database driver:

* the schema, its version and the migration of older stores;
* the background writer: ``handle()`` only queues an event; one thread per
  renderer writes queued events in batches, one short transaction per batch,
  retrying while the database is busy;
* the reader the ``runtime-narrative`` command uses.

SQL is written once with ``?`` placeholders; a :class:`Dialect` adapts it to
the driver (``%s`` for psycopg) and converts timestamps.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import queue
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, ClassVar, Optional, Union

from runtime_narrative.events import (
    FailureOccurred,
    LLMAnalysisReady,
    StageCompleted,
    StageStarted,
    StoryCompleted,
    StoryStarted,
)

__all__ = [
    "SCHEMA_VERSION",
    "BackgroundStoreWriter",
    "Dialect",
    "StoreError",
    "StoryReader",
    "ensure_schema",
    "like_pattern",
]

logger = logging.getLogger("runtime_narrative")

#: The schema this version writes. Version 1 is the published layout (the
#: key columns only, no version table); it is upgraded in place.
SCHEMA_VERSION = 2

_STORED_EVENTS = (
    StoryStarted,
    StageStarted,
    StageCompleted,
    FailureOccurred,
    StoryCompleted,
    LLMAnalysisReady,
)

# (column, kind); kinds are mapped to a type per dialect. The first columns of
# each table are the published ones, in the published order.
_TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "stories": (
        ("story_id", "key"),
        ("name", "text"),
        ("success", "int"),
        ("duration_seconds", "real"),
        ("started_at", "time"),
        ("completed_at", "time"),
        ("parent_story_id", "text"),
        ("root_story_id", "text"),
        ("outcome", "text"),
        ("status", "text"),
        ("error_type", "text"),
        ("module", "text"),
        ("total_stages", "int"),
        ("completed_stages", "int"),
        ("progress_percent", "int"),
    ),
    "stages": (
        ("story_id", "text"),
        ("stage_name", "text"),
        ("stage_index", "int"),
        ("parent_stage_name", "text"),
        ("duration_seconds", "real"),
        ("completed", "int"),
        ("failed", "int"),
        ("depth", "int"),
        ("started_at", "time"),
        ("completed_at", "time"),
    ),
    "failures": (
        ("story_id", "text"),
        ("stage_name", "text"),
        ("error_type", "text"),
        ("error_message", "text"),
        ("filename", "text"),
        ("lineno", "int"),
        ("traceback_text", "text"),
        ("llm_analysis", "text"),
        ("id", "serial"),
        ("function", "text"),
        ("source_line", "text"),
        ("exception_chain", "text"),
        ("rules_analysis", "text"),
        ("occurred_at", "time"),
        ("recorded", "int"),
        ("diagnostics_json", "text"),
    ),
}

_INDEXES = (
    "CREATE UNIQUE INDEX IF NOT EXISTS stages_story_index"
    " ON stages (story_id, stage_index)",
    "CREATE UNIQUE INDEX IF NOT EXISTS failures_story_stage_time"
    " ON failures (story_id, stage_name, occurred_at)",
    "CREATE INDEX IF NOT EXISTS failures_occurred ON failures (occurred_at)",
    "CREATE INDEX IF NOT EXISTS stories_parent ON stories (parent_story_id)",
    "CREATE INDEX IF NOT EXISTS stories_started ON stories (started_at)",
)

#: FailureOccurred fields kept in their own columns; the rest is the JSON.
_FAILURE_COLUMNS = (
    "story_id",
    "stage_name",
    "error_type",
    "error_message",
    "filename",
    "lineno",
    "traceback_text",
    "llm_analysis",
    "function",
    "source_line",
    "exception_chain",
    "rules_analysis",
    "recorded",
)


class StoreError(Exception):
    """A store cannot be opened or read; the message is one line for a user."""


# -- dialects ------------------------------------------------------------------


class Dialect:
    """How one database spells the shared SQL."""

    name = "sqlite"
    types: ClassVar[dict[str, str]] = {
        "key": "TEXT PRIMARY KEY",
        "text": "TEXT",
        "int": "INTEGER",
        "real": "REAL",
        "time": "TEXT",
        "serial": "INTEGER PRIMARY KEY",
    }
    #: The expression that orders failures by insertion and names one row.
    failure_key = "rowid"

    def sql(self, statement: str) -> str:
        return statement

    def time_param(self, value: Optional[datetime]) -> Any:
        return value.isoformat() if value is not None else None

    def time_value(self, value: Any) -> Optional[datetime]:
        if value is None or isinstance(value, datetime):
            return value
        try:
            return datetime.fromisoformat(str(value))
        except ValueError:
            return None

    def tables(self, cursor: Any) -> set[str]:
        cursor.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {row[0] for row in cursor.fetchall()}

    def columns(self, cursor: Any, table: str) -> set[str]:
        cursor.execute(f"PRAGMA table_info({table})")
        return {row[1] for row in cursor.fetchall()}

    def lock_for_migration(self, cursor: Any) -> None:
        """Serialise schema changes between processes (SQLite: BEGIN IMMEDIATE)."""

    def add_column(self, table: str, column: str, kind: str) -> str:
        kind_sql = self.types[kind]
        if kind == "serial":
            # SQLite cannot add a primary key; the implicit rowid serves.
            kind_sql = "INTEGER"
        return f"ALTER TABLE {table} ADD COLUMN {column} {kind_sql}"


def create_table_sql(dialect: Dialect, table: str) -> str:
    columns = ", ".join(
        f"{name} {dialect.types[kind]}" for name, kind in _TABLES[table]
    )
    return f"CREATE TABLE IF NOT EXISTS {table} ({columns})"


def read_version(dialect: Dialect, cursor: Any) -> Optional[int]:
    """The store's schema version; 1 for the published layout; None if empty."""
    tables = dialect.tables(cursor)
    if "schema_version" in tables:
        cursor.execute("SELECT MAX(version) FROM schema_version")
        row = cursor.fetchone()
        return int(row[0]) if row and row[0] is not None else 1
    if "stories" in tables:
        return 1
    if tables:
        raise StoreError("holds no runtime-narrative stories (no 'stories' table)")
    return None


def ensure_schema(dialect: Dialect, connection: Any, cursor: Any) -> None:
    """Create the tables, or bring an older store up to SCHEMA_VERSION.

    Runs in the caller's open transaction. Raises StoreError for a store of a
    newer version, which this code must not write to.
    """
    dialect.lock_for_migration(cursor)
    version = read_version(dialect, cursor)
    if version == SCHEMA_VERSION:
        return
    if version is not None and version > SCHEMA_VERSION:
        raise StoreError(
            f"has schema version {version}; this runtime-narrative knows up to"
            f" {SCHEMA_VERSION}: upgrade runtime-narrative to read it"
        )
    existing = dialect.tables(cursor)
    for table in _TABLES:
        if table not in existing:
            cursor.execute(create_table_sql(dialect, table))
            continue
        present = dialect.columns(cursor, table)
        for column, kind in _TABLES[table]:
            if column not in present:
                cursor.execute(dialect.add_column(table, column, kind))
    if version == 1 and dialect.name == "sqlite":
        # The published layout had no unique key on stages; keep one row per
        # (story, stage index) before the unique index is built.
        cursor.execute(
            dialect.sql(
                f"DELETE FROM stages WHERE {dialect.failure_key} NOT IN ("
                f"SELECT MIN({dialect.failure_key}) FROM stages"
                " GROUP BY story_id, stage_index)"
            )
        )
        cursor.execute("UPDATE stages SET depth = 0 WHERE depth IS NULL")
    for statement in _INDEXES:
        cursor.execute(statement)
    cursor.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER)")
    cursor.execute("DELETE FROM schema_version")
    cursor.execute(
        dialect.sql("INSERT INTO schema_version (version) VALUES (?)"),
        (SCHEMA_VERSION,),
    )
    if version is not None:
        logger.info(
            "story store upgraded from schema %s to %s", version, SCHEMA_VERSION
        )


# -- events to statements --------------------------------------------------------

Statement = tuple[str, tuple[Any, ...]]


def statements_for(dialect: Dialect, event: object) -> list[Statement]:
    """The SQL that records ``event``; empty for events a store does not keep.

    Text that cannot be encoded as UTF-8 (a lone surrogate, as from a path
    decoded with ``surrogateescape``) is stored with the surrogates escaped
    (``\\udcff``) rather than losing the row.
    """
    return [
        (sql, tuple(_encodable(value) for value in params))
        for sql, params in _statements_for(dialect, event)
    ]


def _encodable(value: Any) -> Any:
    if not isinstance(value, str) or value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def _statements_for(dialect: Dialect, event: object) -> list[Statement]:
    t = dialect.time_param
    if isinstance(event, StageStarted):
        return [
            (
                "INSERT INTO stages (story_id, stage_index, stage_name,"
                " parent_stage_name, depth, started_at, completed, failed)"
                " VALUES (?, ?, ?, ?, ?, ?, 0, 0)"
                " ON CONFLICT (story_id, stage_index) DO NOTHING",
                (
                    event.story_id,
                    event.stage_index,
                    event.stage_name,
                    event.parent_stage_name,
                    event.depth,
                    t(event.timestamp),
                ),
            )
        ]
    if isinstance(event, StageCompleted):
        return [
            (
                "INSERT INTO stages (story_id, stage_index, stage_name,"
                " parent_stage_name, depth, completed_at, duration_seconds,"
                " completed, failed) VALUES (?, ?, ?, ?, ?, ?, ?, 1, 0)"
                " ON CONFLICT (story_id, stage_index) DO UPDATE SET completed = 1,"
                " failed = 0, completed_at = excluded.completed_at,"
                " duration_seconds = excluded.duration_seconds",
                (
                    event.story_id,
                    event.stage_index,
                    event.stage_name,
                    event.parent_stage_name,
                    event.depth,
                    t(event.timestamp),
                    event.duration_seconds,
                ),
            )
        ]
    if isinstance(event, StoryStarted):
        return [
            (
                "INSERT INTO stories (story_id, name, started_at, parent_story_id,"
                " root_story_id, module, total_stages, status)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, 'running')"
                " ON CONFLICT (story_id) DO UPDATE SET name = excluded.name,"
                " started_at = excluded.started_at",
                (
                    event.story_id,
                    event.story_name,
                    t(event.timestamp),
                    event.parent_story_id,
                    event.root_story_id,
                    event.module,
                    event.total_stages,
                ),
            )
        ]
    if isinstance(event, StoryCompleted):
        return [_story_completed(dialect, event)]
    if isinstance(event, FailureOccurred):
        return _failure(dialect, event)
    if isinstance(event, LLMAnalysisReady):
        if event.llm_analysis is None:
            return []
        key = dialect.failure_key
        return [
            (
                f"UPDATE failures SET llm_analysis = ? WHERE {key} = ("
                f"SELECT MAX({key}) FROM failures WHERE story_id = ?"
                " AND stage_name = ?)",
                (event.llm_analysis, event.story_id, event.stage_name),
            )
        ]
    return []


def _story_completed(dialect: Dialect, event: StoryCompleted) -> Statement:
    t = dialect.time_param
    started = None
    if event.duration_seconds:
        started = event.timestamp - timedelta(seconds=event.duration_seconds)
    return (
        "INSERT INTO stories (story_id, name, success, duration_seconds,"
        " started_at, completed_at, parent_story_id, root_story_id, outcome,"
        " status, error_type, total_stages, completed_stages, progress_percent)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (story_id) DO UPDATE SET success = excluded.success,"
        " duration_seconds = excluded.duration_seconds,"
        " completed_at = excluded.completed_at, outcome = excluded.outcome,"
        " status = excluded.status, error_type = excluded.error_type,"
        " total_stages = excluded.total_stages,"
        " completed_stages = excluded.completed_stages,"
        " progress_percent = excluded.progress_percent",
        (
            event.story_id,
            event.story_name,
            1 if event.success else 0,
            event.duration_seconds,
            t(started),
            t(event.timestamp),
            event.parent_story_id,
            event.root_story_id,
            event.outcome or None,
            event.status,
            event.error_type,
            event.total_stages,
            event.completed_stages,
            event.progress_percent,
        ),
    )


def _failure(dialect: Dialect, event: FailureOccurred) -> list[Statement]:
    data = event.to_dict()
    values = [data.pop(name) for name in _FAILURE_COLUMNS]
    values[-1] = 1 if values[-1] else 0  # recorded
    for name in ("event", "timestamp"):
        data.pop(name, None)
    columns = ", ".join(_FAILURE_COLUMNS)
    marks = ", ".join("?" for _ in range(len(_FAILURE_COLUMNS) + 2))
    statements: list[Statement] = [
        (
            f"INSERT INTO failures ({columns}, occurred_at, diagnostics_json)"
            f" VALUES ({marks})"
            " ON CONFLICT (story_id, stage_name, occurred_at) DO NOTHING",
            (
                *values,
                dialect.time_param(event.timestamp),
                json.dumps(data, ensure_ascii=False, allow_nan=False),
            ),
        )
    ]
    # The failed stage is named by its index when the failure knows it: stage
    # names repeat. A recorded failure (a Celery retry's attempt) marks the
    # stage too, if the stage has not completed.
    if event.stage_index is not None:
        statements.append(
            (
                "UPDATE stages SET failed = 1 WHERE story_id = ? AND stage_index = ?"
                " AND completed = 0",
                (event.story_id, event.stage_index),
            )
        )
    else:
        statements.append(
            (
                "UPDATE stages SET failed = 1 WHERE story_id = ? AND stage_name = ?"
                " AND completed = 0",
                (event.story_id, event.stage_name),
            )
        )
    return statements


# -- the background writer -------------------------------------------------------


class _Marker:
    """Put in the queue behind events; set once they are written."""

    __slots__ = ("done", "stop")

    def __init__(self, stop: bool = False) -> None:
        self.done = threading.Event()
        self.stop = stop


_Item = Union[object, _Marker]

_live_writers: weakref.WeakSet[BackgroundStoreWriter] = weakref.WeakSet()


def _flush_all_at_exit() -> None:
    for writer in list(_live_writers):
        writer.close(timeout=writer.exit_timeout)


def _reset_after_fork() -> None:
    for writer in list(_live_writers):
        writer._forget_thread()


atexit.register(_flush_all_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


class BackgroundStoreWriter:
    """A renderer that writes events to a database from its own thread.

    ``handle()`` puts the event in a queue and returns; a writer thread,
    started on the first event and stopped after ``idle_seconds`` without
    one, writes what is queued in one transaction per batch. StoryCompleted
    is the exception: ``handle()`` returns only once everything queued before
    it is committed, so a finished story is on disk. Pending events are also
    written at normal interpreter exit.

    A batch that fails because the database is busy is retried for up to
    ``retry_seconds``; any other failure is retried event by event, so only
    what cannot be written is lost, and the loss is logged on the
    ``runtime_narrative`` logger with the stories it concerned.

    Subclasses provide the connection (``_connect``, ``_close_connection``),
    the transaction (``_execute_batch``) and ``_is_transient``.
    """

    dialect: Dialect = Dialect()
    exit_timeout = 10.0
    _thread_name = "runtime-narrative-store-writer"

    def __init__(
        self,
        *,
        batch_size: int = 500,
        idle_seconds: float = 2.0,
        retry_seconds: float = 30.0,
        flush_timeout: float = 60.0,
    ) -> None:
        self._batch_size = max(1, batch_size)
        self._idle_seconds = idle_seconds
        self._retry_seconds = retry_seconds
        self._flush_timeout = flush_timeout
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._thread: Optional[threading.Thread] = None
        self._thread_lock = threading.Lock()
        self._closed = False
        _live_writers.add(self)

    # -- what a story calls ----------------------------------------------------

    def handle(self, event: object) -> None:
        """Queue ``event``; on StoryCompleted, wait until it is written."""
        if not isinstance(event, _STORED_EVENTS):
            return
        self._queue.put(event)
        if self._thread is None:
            self._ensure_thread()
        if type(event) is StoryCompleted:
            self._wait(_Marker(), self._flush_timeout)

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait until every event queued so far is written (or given up on).

        Returns False when ``timeout`` (default: the renderer's flush timeout)
        passed first.
        """
        return self._wait(
            _Marker(), self._flush_timeout if timeout is None else timeout
        )

    def close(self, timeout: Optional[float] = None) -> bool:
        """Write what is queued and stop the writer thread. Events handled
        afterwards start it again."""
        return self._wait(
            _Marker(stop=True), self._flush_timeout if timeout is None else timeout
        )

    # -- thread management -----------------------------------------------------

    def _wait(self, marker: _Marker, timeout: float) -> bool:
        self._queue.put(marker)
        self._ensure_thread()
        if marker.done.wait(timeout):
            return True
        logger.warning(
            "%s is still writing after %.1fs; events are kept queued",
            type(self).__name__,
            timeout,
        )
        return False

    def _ensure_thread(self) -> None:
        with self._thread_lock:
            if self._thread is not None:
                return
            thread = threading.Thread(
                target=self._run, name=self._thread_name, daemon=True
            )
            self._thread = thread
            thread.start()

    def _forget_thread(self) -> None:
        # In a forked child the parent's thread does not exist; the queue may
        # hold the parent's events, which the parent writes itself.
        self._queue = queue.SimpleQueue()
        self._thread = None
        self._thread_lock = threading.Lock()

    def _retire(self) -> bool:
        """Stop this thread if nothing is queued; False if work arrived."""
        with self._thread_lock:
            if not self._queue.empty():
                return False
            self._thread = None
            return True

    def _run(self) -> None:
        connection: Any = None
        try:
            while True:
                try:
                    first = self._queue.get(timeout=self._idle_seconds)
                except queue.Empty:
                    if self._retire():
                        return
                    continue
                batch = [first]
                while len(batch) < self._batch_size:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                connection, stop = self._process(connection, batch)
                if stop and self._retire():
                    return
        finally:
            if connection is not None:
                self._safe_close(connection)

    def _process(self, connection: Any, batch: list[_Item]) -> tuple[Any, bool]:
        events = [item for item in batch if not isinstance(item, _Marker)]
        markers = [item for item in batch if isinstance(item, _Marker)]
        try:
            if events:
                connection = self._write(connection, events)
        except Exception:  # never let the writer thread die
            logger.exception("%s: unexpected error in the writer", type(self).__name__)
        stop = False
        for marker in markers:
            marker.done.set()
            stop = stop or marker.stop
        if stop and connection is not None:
            self._safe_close(connection)
            connection = None
        return connection, stop

    # -- writing ---------------------------------------------------------------

    def _write(self, connection: Any, events: list[object]) -> Any:
        statements = [statements_for(self.dialect, event) for event in events]
        deadline = time.monotonic() + self._retry_seconds
        delay = 0.01
        while True:
            try:
                if connection is None:
                    connection = self._connect()
                self._execute_batch(
                    connection, [s for group in statements for s in group]
                )
                return connection
            except Exception as exc:
                if connection is not None and self._is_broken(exc):
                    self._safe_close(connection)
                    connection = None
                if not self._is_transient(exc) or time.monotonic() >= deadline:
                    break
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
        # One event per transaction: only what cannot be written is lost.
        for index, (event, group) in enumerate(zip(events, statements)):
            if connection is None:
                try:
                    connection = self._connect()
                except Exception as exc:
                    self._report_loss(events[index:], exc)
                    return None
            try:
                self._execute_batch(connection, group)
            except Exception as exc:
                self._report_loss([event], exc)
                if connection is not None and self._is_broken(exc):
                    self._safe_close(connection)
                    connection = None
        return connection

    def _report_loss(self, events: Sequence[object], exc: BaseException) -> None:
        stories = sorted(
            {
                f"{getattr(e, 'story_id', '?')[:8]} {getattr(e, 'story_name', '')!r}"
                for e in events
            }
        )
        kinds = sorted({type(e).__name__ for e in events})
        logger.error(
            "%s could not write to %s; lost %d event(s) (%s) of story %s: %s",
            type(self).__name__,
            self._describe_target(),
            len(events),
            ", ".join(kinds),
            ", ".join(stories),
            _one_line(exc),
        )

    def _safe_close(self, connection: Any) -> None:
        try:
            self._close_connection(connection)
        except Exception:  # closing a broken connection may fail as well
            logger.debug("closing the store connection failed", exc_info=True)

    # -- provided by subclasses ------------------------------------------------

    def _connect(self) -> Any:
        raise NotImplementedError

    def _close_connection(self, connection: Any) -> None:
        connection.close()

    def _execute_batch(self, connection: Any, statements: list[Statement]) -> None:
        raise NotImplementedError

    def _is_transient(self, exc: BaseException) -> bool:
        return False

    def _is_broken(self, exc: BaseException) -> bool:
        return not isinstance(exc, StoreError)

    def _describe_target(self) -> str:
        return type(self).__name__


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


# -- reading -------------------------------------------------------------------


def like_pattern(text: str) -> str:
    """A plain word matches as a substring; ``%`` and ``_`` work as in LIKE."""
    if "%" in text or "_" in text:
        return text
    return f"%{text}%"


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass
class StoredStory:
    """One story as read back from a store, with its stages and failures."""

    story: dict[str, Any]
    stages: list[dict[str, Any]]
    failures: list[dict[str, Any]]
    children: list[StoredStory] = field(default_factory=list)


class StoryReader:
    """Queries over an open store connection (sqlite3 or psycopg)."""

    def __init__(self, dialect: Dialect, connection: Any, close: Callable[[], None]):
        self.dialect = dialect
        self._connection = connection
        self._close = close

    def close(self) -> None:
        self._close()

    def _query(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        cursor = self._connection.cursor()
        try:
            cursor.execute(self.dialect.sql(sql), tuple(params))
            names = [d[0] for d in cursor.description]
            rows = [dict(zip(names, row)) for row in cursor.fetchall()]
        finally:
            cursor.close()
        for row in rows:
            for name in list(row):
                if name.endswith("_at"):
                    row[name] = self.dialect.time_value(row[name])
        return rows

    def failures(
        self,
        last: int = 10,
        stage: Optional[str] = None,
        story: Optional[str] = None,
    ) -> list[dict[str, Any]]:
        """The most recent failures, newest first.

        A story that failed without a failure row (an HTTP 5xx response, a
        gRPC error status: ``mark_failed``) is listed too, with its outcome
        (``"502 Bad Gateway"``) as the error message and stage ``<story>``.
        """
        where: list[str] = []
        story_where: list[str] = []
        params: list[Any] = []
        story_params: list[Any] = []
        if stage:
            where.append("LOWER(f.stage_name) LIKE LOWER(CAST(? AS TEXT))")
            params.append(like_pattern(stage))
            story_where.append("LOWER('<story>') LIKE LOWER(CAST(? AS TEXT))")
            story_params.append(like_pattern(stage))
        if story:
            where.append("LOWER(COALESCE(s.name, '')) LIKE LOWER(CAST(? AS TEXT))")
            params.append(like_pattern(story))
            story_where.append(
                "LOWER(COALESCE(s.name, '')) LIKE LOWER(CAST(? AS TEXT))"
            )
            story_params.append(like_pattern(story))
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        story_clause = "".join(f" AND {item}" for item in story_where)
        key = self.dialect.failure_key
        rows = self._query(
            "SELECT f.story_id, s.name AS story_name, f.stage_name, f.error_type,"
            " f.error_message, f.filename, f.lineno, f.llm_analysis,"
            " f.rules_analysis, f.recorded,"
            " COALESCE(f.occurred_at, s.completed_at) AS occurred_at"
            " FROM failures f LEFT JOIN stories s ON s.story_id = f.story_id"
            f" {clause}"
            " ORDER BY (COALESCE(f.occurred_at, s.completed_at) IS NULL),"
            f" COALESCE(f.occurred_at, s.completed_at) DESC, f.{key} DESC"
            " LIMIT ?",
            [*params, last],
        )
        unexplained = self._query(
            "SELECT s.story_id, s.name AS story_name, s.error_type, s.outcome,"
            " s.status, s.completed_at AS occurred_at"
            " FROM stories s WHERE s.success = 0 AND s.status = 'failed'"
            " AND NOT EXISTS (SELECT 1 FROM failures f"
            " WHERE f.story_id = s.story_id)"
            f"{story_clause}"
            " ORDER BY (s.completed_at IS NULL), s.completed_at DESC LIMIT ?",
            [*story_params, last],
        )
        for row in unexplained:
            rows.append(
                {
                    "story_id": row["story_id"],
                    "story_name": row["story_name"],
                    "stage_name": "<story>",
                    "error_type": row.get("error_type") or "",
                    "error_message": row.get("outcome") or "failed",
                    "filename": None,
                    "lineno": None,
                    "llm_analysis": None,
                    "rules_analysis": None,
                    "recorded": 0,
                    "occurred_at": row["occurred_at"],
                }
            )
        if unexplained:
            oldest = datetime.min.replace(tzinfo=timezone.utc)

            def newest_first(row: dict[str, Any]) -> datetime:
                when = row.get("occurred_at")
                if not isinstance(when, datetime):
                    return oldest
                return when if when.tzinfo else when.replace(tzinfo=timezone.utc)

            rows.sort(key=newest_first, reverse=True)
        return rows[:last]

    def resolve(self, prefix: str) -> str:
        """The one story id starting with ``prefix``; StoreError otherwise."""
        prefix = prefix.strip()
        if not prefix:
            raise StoreError("a story id is needed")
        rows = self._query(
            "SELECT story_id, name, started_at FROM stories"
            " WHERE story_id LIKE ? ESCAPE '\\' ORDER BY started_at DESC LIMIT 11",
            (_like_escape(prefix) + "%",),
        )
        exact = [row for row in rows if row["story_id"] == prefix]
        if exact:
            return prefix
        if not rows:
            # A failure may name a story whose own rows never arrived.
            orphan = self._query(
                "SELECT DISTINCT story_id FROM failures"
                " WHERE story_id LIKE ? ESCAPE '\\' LIMIT 2",
                (_like_escape(prefix) + "%",),
            )
            if len(orphan) == 1:
                return str(orphan[0]["story_id"])
            raise StoreError(f"no story with id {prefix!r}")
        if len(rows) > 1:
            shown = "; ".join(
                f"{row['story_id'][:12]} {row['name']!r}" for row in rows[:10]
            )
            more = " and more" if len(rows) > 10 else ""
            raise StoreError(
                f"story id {prefix!r} is ambiguous: {shown}{more}; give more characters"
            )
        return str(rows[0]["story_id"])

    def story(self, story_id: str, depth: int = 0) -> StoredStory:
        rows = self._query("SELECT * FROM stories WHERE story_id = ?", (story_id,))
        story = rows[0] if rows else {"story_id": story_id, "name": None}
        stages = self._query(
            "SELECT * FROM stages WHERE story_id = ? ORDER BY stage_index", (story_id,)
        )
        failures = self._query(
            "SELECT * FROM failures WHERE story_id = ?"
            f" ORDER BY {self.dialect.failure_key}",
            (story_id,),
        )
        result = StoredStory(story, stages, failures)
        if depth < 10:  # a cycle of parent ids cannot recurse forever
            for child in self._query(
                "SELECT story_id FROM stories WHERE parent_story_id = ?"
                " ORDER BY started_at",
                (story_id,),
            ):
                result.children.append(self.story(str(child["story_id"]), depth + 1))
        return result

    def stage_runs(
        self, story: Optional[str] = None, since: Optional[datetime] = None
    ) -> list[dict[str, Any]]:
        """Every stage run (oldest first) with its story's name."""
        where, params = self._story_filter(story, since)
        return self._query(
            "SELECT s.name AS story_name, g.stage_name, g.duration_seconds,"
            " g.completed, g.failed, COALESCE(g.started_at, s.started_at) AS started_at"
            " FROM stages g JOIN stories s ON s.story_id = g.story_id"
            f" {where} ORDER BY s.started_at, g.stage_index",
            params,
        )

    def story_runs(
        self, story: Optional[str] = None, since: Optional[datetime] = None
    ) -> list[dict[str, Any]]:
        """Every completed story run (oldest first)."""
        where, params = self._story_filter(story, since)
        where = f"{where} AND" if where else "WHERE"
        return self._query(
            "SELECT s.name AS story_name, s.duration_seconds, s.success, s.started_at"
            f" FROM stories s {where} s.success IS NOT NULL ORDER BY s.started_at",
            params,
        )

    def _story_filter(
        self, story: Optional[str], since: Optional[datetime]
    ) -> tuple[str, list[Any]]:
        where: list[str] = []
        params: list[Any] = []
        if story:
            where.append("LOWER(s.name) LIKE LOWER(CAST(? AS TEXT))")
            params.append(like_pattern(story))
        if since is not None:
            where.append("s.started_at >= ?")
            params.append(self.dialect.time_param(since))
        return (f"WHERE {' AND '.join(where)}" if where else ""), params


def rebuild_failure(row: dict[str, Any], story_name: str) -> FailureOccurred:
    """A FailureOccurred event from a ``failures`` row (for the console and HTML)."""
    try:
        data = json.loads(row.get("diagnostics_json") or "{}")
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    for name in _FAILURE_COLUMNS:
        if row.get(name) is not None:
            data[name] = row[name]
    fields = set(FailureOccurred.__dataclass_fields__)
    values: dict[str, Any] = {k: v for k, v in data.items() if k in fields}
    for name in ("stack_frames", "chain", "exception_group"):
        raw = values.get(name)
        values[name] = (
            tuple(x for x in raw if isinstance(x, dict))
            if isinstance(raw, list)
            else ()
        )
    if not isinstance(values.get("locals_by_frame"), (dict, type(None))):
        values["locals_by_frame"] = None
    defaults: dict[str, Any] = {
        "story_id": row.get("story_id") or "",
        "story_name": story_name,
        "stage_name": row.get("stage_name") or "",
        "error_type": row.get("error_type") or "Error",
        "error_message": row.get("error_message") or "",
        "filename": row.get("filename"),
        "lineno": row.get("lineno"),
        "function": None,
        "source_line": None,
        "exception_chain": "",
        "exact_cause": "",
        "llm_analysis": row.get("llm_analysis"),
        "stage_timeline": "",
        "progress_percent": 0,
        "completed_stages": 0,
        "total_stages": None,
    }
    for key, value in defaults.items():
        values.setdefault(key, value)
    values["story_name"] = story_name or values.get("story_name") or ""
    values["recorded"] = bool(values.get("recorded"))
    occurred = row.get("occurred_at")
    values["timestamp"] = (
        occurred if isinstance(occurred, datetime) else datetime.now(timezone.utc)
    )
    return FailureOccurred(**values)
