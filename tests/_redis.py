"""The Redis server some integration tests need.

Tests use ``RUNTIME_NARRATIVE_TEST_REDIS_URL`` (CI starts Redis on
127.0.0.1:63790). Without it, or when nothing answers there, they are
skipped, unless ``RUNTIME_NARRATIVE_REQUIRE_SERVERS=1``, where a missing
server is a failure.
"""

from __future__ import annotations

import os

import pytest

URL_VARIABLE = "RUNTIME_NARRATIVE_TEST_REDIS_URL"


def _unavailable(reason: str) -> None:
    if os.environ.get("RUNTIME_NARRATIVE_REQUIRE_SERVERS") == "1":
        pytest.fail(f"{reason}, and RUNTIME_NARRATIVE_REQUIRE_SERVERS=1")
    pytest.skip(reason)


def redis_url() -> str:
    """The test Redis URL, after checking that the server answers."""
    url = os.environ.get(URL_VARIABLE)
    if not url:
        _unavailable(f"{URL_VARIABLE} is not set")
        raise AssertionError("unreachable")
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        _unavailable(f"no Redis answers at {url}: {exc}")
    finally:
        client.close()
    return url
