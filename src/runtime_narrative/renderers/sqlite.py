"""SqliteStoryRenderer: every story kept in a local SQLite file.

The tables and their columns are described in docs/persistence.md. The file
is opened in WAL mode with a busy timeout, so several threads, renderers and
processes can write to it at once, and the ``runtime-narrative`` command can
read it while they do.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Union

from ._store import (
    SCHEMA_VERSION,
    BackgroundStoreWriter,
    Dialect,
    Statement,
    StoreError,
    StoryReader,
    ensure_schema,
    read_version,
)

__all__ = ["SqliteStoryRenderer", "open_sqlite_reader"]

#: How long one statement waits for another writer's lock, in milliseconds.
_BUSY_TIMEOUT_MS = 10_000


class SqliteStoryRenderer(BackgroundStoreWriter):
    """Persist every story, stage, failure and late analysis to ``path``.

    Events are written by a background thread in short batched transactions,
    so a stage never waits for the disk; ``handle(StoryCompleted)`` returns
    once the whole story is committed, and events still queued at normal
    interpreter exit are written then. ``flush()`` and ``close()`` are there
    for programs that want to be sure earlier.

    The file and its tables are created on the first event. A file written
    by an older version is upgraded in place; a file of a newer schema
    version, or one that is not a SQLite database, is left alone and the
    events are reported lost on the ``runtime_narrative`` logger.

    .. versionadded:: 0.1.0
    """

    dialect = Dialect()
    _thread_name = "runtime-narrative-sqlite-writer"

    def __init__(
        self,
        path: Union[str, os.PathLike[str]] = "runtime_narrative.db",
        *,
        batch_size: int = 500,
        retry_seconds: float = 30.0,
        idle_seconds: float = 2.0,
    ) -> None:
        super().__init__(
            batch_size=batch_size,
            idle_seconds=idle_seconds,
            retry_seconds=retry_seconds,
        )
        self.path = os.fspath(path)

    def _describe_target(self) -> str:
        return self.path

    def _connect(self) -> sqlite3.Connection:
        connection = _connect(self.path)
        try:
            connection.execute("BEGIN IMMEDIATE")
            try:
                ensure_schema(self.dialect, connection, connection.cursor())
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        except BaseException:
            connection.close()
            raise
        return connection

    def _execute_batch(
        self, connection: sqlite3.Connection, statements: list[Statement]
    ) -> None:
        # BEGIN IMMEDIATE takes the write lock at once, so the busy timeout
        # covers the whole wait; a deferred transaction could fail to upgrade.
        connection.execute("BEGIN IMMEDIATE")
        try:
            for sql, params in statements:
                connection.execute(sql, params)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    def _is_transient(self, exc: BaseException) -> bool:
        if not isinstance(exc, sqlite3.OperationalError):
            return False
        text = str(exc).lower()
        return "locked" in text or "busy" in text

    def _is_broken(self, exc: BaseException) -> bool:
        return not isinstance(exc, (StoreError, sqlite3.IntegrityError))


def _connect(path: str) -> sqlite3.Connection:
    connection = sqlite3.connect(
        path,
        timeout=_BUSY_TIMEOUT_MS / 1000,
        isolation_level=None,  # transactions are explicit
        check_same_thread=False,
    )
    try:
        connection.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        if connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            connection.execute("PRAGMA journal_mode = WAL")
        # In WAL mode NORMAL keeps every commit through a crash of the
        # program; only a power loss can take back the last commits.
        connection.execute("PRAGMA synchronous = NORMAL")
    except sqlite3.DatabaseError as exc:
        connection.close()
        if "not a database" in str(exc):
            raise StoreError(f"{path} is not a SQLite database") from exc
        raise
    return connection


def open_sqlite_reader(path: str) -> StoryReader:
    """Open ``path`` for the command line; StoreError with one line if unusable.

    A store of an older schema version is upgraded (which needs write
    access); a missing file is not created.
    """
    if not os.path.exists(path):
        raise StoreError(
            f"no story database at {path} (SqliteStoryRenderer creates it;"
            " pass --db or set RUNTIME_NARRATIVE_DB)"
        )
    if os.path.isdir(path):
        raise StoreError(f"{path} is a directory, not a SQLite database")
    if os.path.getsize(path) == 0:
        raise StoreError(f"{path} is empty: no story has been recorded in it")
    dialect = Dialect()
    try:
        connection = sqlite3.connect(
            path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None
        )
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {path}: {exc}") from exc
    try:
        connection.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        version = read_version(dialect, connection.cursor())
        if version is None:
            raise StoreError(f"{path} is empty: no story has been recorded in it")
        if version != SCHEMA_VERSION:
            connection.execute("BEGIN IMMEDIATE")
            try:
                ensure_schema(dialect, connection, connection.cursor())
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
    except StoreError as exc:
        connection.close()
        text = str(exc)
        raise StoreError(text if text.startswith(path) else f"{path} {text}") from exc
    except sqlite3.DatabaseError as exc:
        connection.close()
        if "not a database" in str(exc) or "malformed" in str(exc):
            raise StoreError(f"{path} is not a SQLite database") from exc
        raise StoreError(f"cannot read {path}: {exc}") from exc
    return StoryReader(dialect, connection, connection.close)
