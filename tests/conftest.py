"""Shared fixtures.

Internal errors of the library are logged on the ``runtime_narrative``
logger and never raised into the host program. In this project's own tests
such an error must not pass unnoticed: the autouse fixture below fails any
test that logs one, unless the test is marked ``allow_internal_errors``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(autouse=True)
def internal_errors(
    request: pytest.FixtureRequest,
) -> Iterator[list[logging.LogRecord]]:
    """Records of ERROR and above on the package logger during the test."""
    collector = _Collector()
    logger = logging.getLogger("runtime_narrative")
    logger.addHandler(collector)
    try:
        yield collector.records
    finally:
        logger.removeHandler(collector)
    if request.node.get_closest_marker("allow_internal_errors") is None:
        messages = [record.getMessage() for record in collector.records]
        assert not messages, f"runtime_narrative logged internal errors: {messages}"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start from the documented defaults, whatever the shell has set."""
    for name in (
        "RUNTIME_NARRATIVE_ENV",
        "RUNTIME_NARRATIVE_FAILURE_DIAGNOSTICS",
        "RUNTIME_NARRATIVE_ALLOW_RICH_IN_PRODUCTION",
        "RUNTIME_NARRATIVE_ANALYZER_TIMEOUT_SECONDS",
        "RUNTIME_NARRATIVE_RICH_LOG_FILE",
        "RUNTIME_NARRATIVE_RICH_LOG_CONSOLE",
        "NO_COLOR",
        "FORCE_COLOR",
    ):
        monkeypatch.delenv(name, raising=False)
