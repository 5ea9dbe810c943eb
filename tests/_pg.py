"""The PostgreSQL server the store tests use, and a fresh schema per test.

The server is named by RUNTIME_NARRATIVE_TEST_PG_URL (CI starts one on
127.0.0.1). Without it the tests skip, unless RUNTIME_NARRATIVE_REQUIRE_SERVERS
is 1, as in CI, where a missing server fails them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

URL_VARIABLE = "RUNTIME_NARRATIVE_TEST_PG_URL"


def require_postgres_url() -> str:
    """The test server's URL; skips (or fails, in CI) when there is none."""
    url = os.environ.get(URL_VARIABLE)
    required = os.environ.get("RUNTIME_NARRATIVE_REQUIRE_SERVERS") == "1"
    if not url:
        message = f"no PostgreSQL server: set {URL_VARIABLE} (see .ci/run)"
        if required:
            pytest.fail(message)
        pytest.skip(message)
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=5) as connection:
            connection.execute("SELECT 1")
    except Exception as exc:
        message = f"PostgreSQL at {URL_VARIABLE} is not reachable: {exc}"
        if required:
            pytest.fail(message)
        pytest.skip(message)
    return url


@pytest.fixture
def postgres_schema() -> Iterator[tuple[str, str]]:
    """(url, schema): a schema of its own for one test, dropped afterwards."""
    url = require_postgres_url()
    import psycopg

    schema = f"rn_test_{uuid.uuid4().hex[:12]}"
    yield url, schema
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
