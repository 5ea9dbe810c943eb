from __future__ import annotations

import logging
from typing import Any

import pytest

from runtime_narrative.diagnostics import FailureDiagnosticsConfig, Redactor

SECRET_TEXTS = {
    "url password": ("connect to postgres://bob:hunter2@db.local/app", "hunter2"),
    "bearer header": ("Authorization: Bearer abc.def-ghi_123", "abc.def-ghi_123"),
    "basic header": ("Authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
    "bare bearer": ("sent Bearer tok3nvalue9 upstream", "tok3nvalue9"),
    "jwt": (
        "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl given",
        "c2lnbmF0dXJl",
    ),
    "aws access key id": ("key AKIAIOSFODNN7EXAMPLE used", "AKIAIOSFODNN7EXAMPLE"),
    "aws secret": (
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "wJalrXUtnFEMI",
    ),
    "github token": ("ghp_abcdefghijklmnopqrstuvwxyz0123456789", "ghp_abcdef"),
    "github pat": ("github_pat_11ABCDEFG0123456789_abcdefghijkl", "11ABCDEFG"),
    "slack token": ("xoxb-1234567890-abcdefghij", "1234567890-abcdefghij"),
    "stripe key": ("sk_live_abcdefghijklmnop", "abcdefghijklmnop"),
    "stripe restricted key": ("rk_test_abcdefghijkl", "abcdefghijkl"),
    "openai key": ("sk-proj-abcdefghijklmnopqrstuvwxyz1234", "abcdefghijklmnop"),
    "anthropic key": ("sk-ant-api03-abcdefghijklmnop", "abcdefghijklmnop"),
    "google key": ("AIzaSyA1234567890abcdefghijklmnopqrstuv", "SyA1234567890"),
    "pem block": (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\nq83hd7\n"
        "-----END RSA PRIVATE KEY-----",
        "MIIEowIBAAKCAQEA",
    ),
    "luhn-valid card": ("paid with 4111 1111 1111 1111 today", "4111 1111"),
    "card without spaces": ("card=4111111111111111", "4111111111111111"),
    "key value": ("password=hunter2 user=bob", "hunter2"),
    "json pair": ('{"api_key": "k-123 456", "name": "bob"}', "k-123"),
    "python repr pair": ("{'client_secret': b'xyz987'}", "xyz987"),
    "header spelling": ("X-Api-Key: abc123", "abc123"),
    "query string": ("GET /cb?token=t0k3n&page=2", "t0k3n"),
}


@pytest.mark.parametrize("name", sorted(SECRET_TEXTS))
def test_redact_text_removes_each_secret_shape(name: str) -> None:
    text, secret = SECRET_TEXTS[name]
    redactor = Redactor()

    result = redactor.redact_text(text)

    assert secret not in result
    assert "<redacted>" in result


def test_redact_text_keeps_the_surroundings() -> None:
    redactor = Redactor()

    result = redactor.redact_text("connect to postgres://bob:hunter2@db.local/app")

    assert result == "connect to postgres://bob:<redacted>@db.local/app"


def test_luhn_invalid_number_is_kept() -> None:
    redactor = Redactor()

    result = redactor.redact_text("order 4111 1111 1111 1112 shipped")

    assert result == "order 4111 1111 1111 1112 shipped"


@pytest.mark.parametrize(
    "text",
    [
        "ValueError: duplicate customer id 7",
        "UNIQUE constraint failed: customers.id",
        "the basic idea is simple",
        "",
    ],
)
def test_plain_text_is_unchanged(text: str) -> None:
    redactor = Redactor()

    result = redactor.redact_text(text)

    assert result == text


def test_redaction_is_idempotent() -> None:
    redactor = Redactor()
    once = redactor.redact_text('password="x" Authorization: Bearer abcdef')

    twice = redactor.redact_text(once)

    assert twice == once


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("password", True),
        ("DB_PASSWORD", True),
        ("X-Api-Key", True),
        ("Authorization", True),
        ("sessionid", True),
        ("username", False),
        ("rows", False),
        ("", False),
    ],
)
def test_is_secret_key_default_names(key: str, expected: bool) -> None:
    redactor = Redactor()

    assert redactor.is_secret_key(key) is expected


def test_redact_extra_patterns_and_callback() -> None:
    config = FailureDiagnosticsConfig(
        redact_extra=("ssn",),
        redact_patterns=(r"^signature$",),
        redact_callback=lambda key: key.startswith("internal_"),
    )
    redactor = Redactor.from_config(config)

    results = [
        redactor.is_secret_key(key)
        for key in ("customer_SSN", "Signature", "internal_id", "signatures", "name")
    ]

    assert results == [True, True, True, False, False]


def test_patterns_and_callback_apply_to_text_pairs() -> None:
    config = FailureDiagnosticsConfig(redact_callback=lambda key: key == "pin")
    redactor = Redactor.from_config(config)

    result = redactor.redact_text("pin=1234 name=bob")

    assert result == "pin=<redacted> name=bob"


def test_raising_callback_means_not_redacted() -> None:
    def callback(key: str) -> bool:
        raise RuntimeError("cannot decide")

    redactor = Redactor.from_config(FailureDiagnosticsConfig(redact_callback=callback))

    assert redactor.is_secret_key("harmless") is False
    assert redactor.is_secret_key("password") is True


@pytest.mark.allow_internal_errors
def test_invalid_pattern_is_ignored_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = FailureDiagnosticsConfig(redact_patterns=("([unclosed", "^pin$"))

    with caplog.at_level(logging.WARNING, logger="runtime_narrative"):
        redactor = Redactor.from_config(config)

    assert redactor.is_secret_key("pin") is True
    assert "invalid redact pattern" in caplog.text


def test_from_config_is_cached_per_config() -> None:
    config = FailureDiagnosticsConfig(redact_extra=("cache_probe",))

    first = Redactor.from_config(config)
    second = Redactor.from_config(
        FailureDiagnosticsConfig(redact_extra=("cache_probe",))
    )

    assert first is second


def test_unhashable_callback_still_builds_a_redactor() -> None:
    class Decider:
        __hash__ = None  # type: ignore[assignment]

        def __call__(self, key: str) -> bool:
            return key == "pin"

    config = FailureDiagnosticsConfig(redact_callback=Decider())

    redactor = Redactor.from_config(config)

    assert redactor.is_secret_key("pin") is True


def test_redact_mapping_nested_and_counted() -> None:
    redactor = Redactor()
    payload = {
        "user": "bob",
        "password": "hunter2",
        "settings": {"db": {"dsn": "postgres://u:p@h/db"}, "items": [{"token": "t"}]},
        "note": "Bearer abcdefghij",
    }

    result, count = redactor.redact_mapping(payload)

    assert result == {
        "user": "bob",
        "password": "<redacted>",
        "settings": {"db": {"dsn": "<redacted>"}, "items": [{"token": "<redacted>"}]},
        "note": "Bearer <redacted>",
    }
    assert count == 3
    assert payload["password"] == "hunter2"


def test_redact_mapping_header_pairs() -> None:
    redactor = Redactor()
    headers = [("Accept", "text/html"), ("Cookie", "sid=1"), ["X-Auth-Token", "t"]]

    result, count = redactor.redact_mapping(headers)

    assert result == [
        ("Accept", "text/html"),
        ("Cookie", "<redacted>"),
        ["X-Auth-Token", "<redacted>"],
    ]
    assert count == 2


@pytest.mark.parametrize("value", [None, 42, 3.5, b"password=x", object()])
def test_redact_mapping_passes_other_values_through(value: Any) -> None:
    redactor = Redactor()

    result, count = redactor.redact_mapping(value)

    assert result is value
    assert count == 0


def test_redact_mapping_survives_cycles() -> None:
    redactor = Redactor()
    cyclic: dict[str, Any] = {"name": "x"}
    cyclic["self"] = cyclic

    result, _ = redactor.redact_mapping(cyclic)

    assert result == {"name": "x", "self": "<redacted>"}


@pytest.mark.parametrize("value", [None, 12, b"bytes", ["list"]])
def test_weird_input_never_raises(value: Any) -> None:
    redactor = Redactor()

    assert redactor.is_secret_key(value) is False
    assert isinstance(redactor.redact_text(value), str)


def test_long_identifier_runs_stay_linear() -> None:
    redactor = Redactor()
    blob = ("tokenauth" * 20_000) + "=value"

    result = redactor.redact_text(blob)

    assert result.startswith("tokenauth")
