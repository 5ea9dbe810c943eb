"""PostgresStoryRenderer: the story store in PostgreSQL, for a fleet of services.

The tables, columns and behaviour are those of SqliteStoryRenderer (see
docs/persistence.md); timestamps are ``timestamptz`` here. Needs psycopg 3:
``pip install "runtime-narrative[postgres]"``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Optional
from urllib.parse import urlsplit, urlunsplit

try:
    import psycopg
    from psycopg import sql as pg_sql
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "PostgresStoryRenderer needs psycopg 3: "
        'pip install "runtime-narrative[postgres]"'
    ) from exc

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

__all__ = ["PostgresStoryRenderer", "open_postgres_reader"]

_CONNECT_TIMEOUT_SECONDS = 10


class PostgresDialect(Dialect):
    name = "postgresql"
    types: ClassVar[dict[str, str]] = {
        "key": "TEXT PRIMARY KEY",
        "text": "TEXT",
        "int": "INTEGER",
        "real": "DOUBLE PRECISION",
        "time": "TIMESTAMPTZ",
        "serial": "BIGSERIAL PRIMARY KEY",
    }
    failure_key = "id"

    def sql(self, statement: str) -> str:
        # The shared SQL holds no literal "?" and no "%".
        return statement.replace("?", "%s")

    def time_param(self, value: Optional[datetime]) -> Any:
        return value

    def tables(self, cursor: Any) -> set[str]:
        cursor.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = current_schema()"
        )
        return {row[0] for row in cursor.fetchall()}

    def columns(self, cursor: Any, table: str) -> set[str]:
        cursor.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = %s",
            (table,),
        )
        return {row[0] for row in cursor.fetchall()}

    def lock_for_migration(self, cursor: Any) -> None:
        # Held until the transaction ends: one process creates the tables.
        cursor.execute(
            "SELECT pg_advisory_xact_lock(hashtext(current_schema()"
            " || '.runtime_narrative'))"
        )

    def add_column(self, table: str, column: str, kind: str) -> str:
        kind_sql = "BIGSERIAL" if kind == "serial" else self.types[kind]
        return f"ALTER TABLE {table} ADD COLUMN {column} {kind_sql}"


class PostgresStoryRenderer(BackgroundStoreWriter):
    """Persist every story to PostgreSQL at ``url`` (a libpq URL or DSN).

    Behaves as :class:`~runtime_narrative.SqliteStoryRenderer`: writes happen
    on a background thread in short batched transactions, StoryCompleted
    waits until the story is committed, a lost connection is re-opened and the
    batch retried for up to ``retry_seconds``, and what cannot be written is
    reported on the ``runtime_narrative`` logger.

    ``schema``, when given, is the PostgreSQL schema that holds the tables
    (created if missing); otherwise the connection's ``search_path`` decides.

    .. versionadded:: 0.1.0
    """

    dialect = PostgresDialect()
    _thread_name = "runtime-narrative-postgres-writer"

    def __init__(
        self,
        url: str,
        *,
        schema: Optional[str] = None,
        batch_size: int = 500,
        retry_seconds: float = 30.0,
        idle_seconds: float = 2.0,
    ) -> None:
        super().__init__(
            batch_size=batch_size,
            idle_seconds=idle_seconds,
            retry_seconds=retry_seconds,
        )
        self.url = url
        self.schema = schema

    def _describe_target(self) -> str:
        return redact_url(self.url)

    def _connect(self) -> Any:
        connection = _connect(self.url, self.schema, create_schema=True)
        try:
            with connection.transaction():
                ensure_schema(self.dialect, connection, connection.cursor())
        except BaseException:
            connection.close()
            raise
        return connection

    def _execute_batch(self, connection: Any, statements: list[Statement]) -> None:
        with connection.transaction(), connection.cursor() as cursor:
            for statement, params in statements:
                cursor.execute(self.dialect.sql(statement), params)

    def _is_transient(self, exc: BaseException) -> bool:
        return isinstance(
            exc,
            (
                psycopg.OperationalError,
                psycopg.errors.DeadlockDetected,
                psycopg.errors.SerializationFailure,
            ),
        )

    def _is_broken(self, exc: BaseException) -> bool:
        return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))


def _connect(url: str, schema: Optional[str], *, create_schema: bool) -> Any:
    connection = psycopg.connect(
        url, autocommit=True, connect_timeout=_CONNECT_TIMEOUT_SECONDS
    )
    if not schema:
        return connection
    name = pg_sql.Identifier(schema)
    try:
        if create_schema:
            # Two processes creating the same schema at once would collide
            # even with IF NOT EXISTS; the advisory lock takes turns.
            with connection.transaction():
                connection.execute(
                    "SELECT pg_advisory_xact_lock(hashtext('runtime_narrative.schema'))"
                )
                connection.execute(
                    pg_sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(name)
                )
        connection.execute(pg_sql.SQL("SET search_path TO {}").format(name))
    except BaseException:
        connection.close()
        raise
    return connection


def redact_url(url: str) -> str:
    """``url`` with its password replaced, for messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def open_postgres_reader(url: str, schema: Optional[str] = None) -> StoryReader:
    """Open the store at ``url`` for the command line; StoreError if unusable."""
    where = redact_url(url)
    try:
        connection = _connect(url, schema, create_schema=False)
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise StoreError(f"cannot connect to PostgreSQL at {where}: {first}") from exc
    dialect = PostgresDialect()
    try:
        version = read_version(dialect, connection.cursor())
        if version is None:
            raise StoreError("holds no runtime-narrative stories yet")
        if version != SCHEMA_VERSION:
            with connection.transaction():
                ensure_schema(dialect, connection, connection.cursor())
    except StoreError as exc:
        connection.close()
        raise StoreError(f"PostgreSQL at {where} {exc}") from exc
    except psycopg.Error as exc:
        connection.close()
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise StoreError(f"cannot read PostgreSQL at {where}: {first}") from exc
    return StoryReader(dialect, connection, connection.close)
