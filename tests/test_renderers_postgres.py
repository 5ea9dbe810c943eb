"""PostgreSQL specifics. The shared store suite runs against PostgreSQL in
tests/test_renderers_sqlite.py (the ``store`` fixture's "postgres" runs)."""

from __future__ import annotations

import logging

import pytest

pytest.importorskip("psycopg")

from runtime_narrative import stage, story
from runtime_narrative.renderers.postgres import (
    PostgresStoryRenderer,
    redact_url,
)


def test_redact_url_hides_only_the_password() -> None:
    assert redact_url("postgresql://app:s3cret@db:5432/x") == (
        "postgresql://app:***@db:5432/x"
    )
    assert redact_url("postgresql://app@db/x") == "postgresql://app@db/x"


@pytest.mark.allow_internal_errors
def test_an_unreachable_server_is_reported_as_lost_without_the_password(
    internal_errors: list[logging.LogRecord],
) -> None:
    renderer = PostgresStoryRenderer(
        "postgresql://app:s3cret@127.0.0.1:9/x", retry_seconds=0.2
    )

    with story("Unreachable", renderers=[renderer]), stage("s"):
        pass

    messages = [record.getMessage() for record in internal_errors]
    assert any("lost" in m and "Unreachable" in m for m in messages), messages
    assert all("s3cret" not in m for m in messages)
    assert all("app:***@127.0.0.1:9" in m for m in messages)
    renderer.close()
