"""FailureDiagnosticsConfig, its environment variables and the safeguards."""

from __future__ import annotations

import pytest

from runtime_narrative import (
    FailureDiagnosticsConfig,
    effective_diagnostics_mode,
    stage,
    story,
)
from runtime_narrative.testing import StoryRecorder


def test_defaults_are_the_published_ones() -> None:
    config = FailureDiagnosticsConfig()

    assert config.runtime_environment == "development"
    assert config.failure_diagnostics == "lean"
    assert config.max_traceback_chars == 12_000
    assert config.production_traceback_cap == 8_000
    assert (config.max_locals_per_frame, config.max_local_value_len) == (12, 200)
    assert (config.max_local_depth, config.max_frames_with_locals) == (2, 2)
    assert config.snippet_context_lines == 2


def test_from_env_reads_the_three_variables() -> None:
    config = FailureDiagnosticsConfig.from_env(
        {
            "RUNTIME_NARRATIVE_ENV": "production",
            "RUNTIME_NARRATIVE_FAILURE_DIAGNOSTICS": "rich",
            "RUNTIME_NARRATIVE_ALLOW_RICH_IN_PRODUCTION": "true",
        }
    )

    assert config.is_production
    assert config.failure_diagnostics == "rich"
    assert effective_diagnostics_mode(config) == "rich"
    assert config.traceback_cap == 8_000


def test_production_downgrades_rich_to_lean_unless_allowed() -> None:
    config = FailureDiagnosticsConfig(
        runtime_environment="production", failure_diagnostics="rich"
    )

    assert effective_diagnostics_mode(config) == "lean"
    assert config.merge(allow_rich_in_production=True).effective_mode == "rich"


def test_invalid_environment_value_raises_at_story_construction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RUNTIME_NARRATIVE_FAILURE_DIAGNOSTICS", "verbose")

    with pytest.raises(
        ValueError, match=r"RUNTIME_NARRATIVE_FAILURE_DIAGNOSTICS.*lean, rich"
    ):
        story("X")


def test_invalid_mode_argument_names_the_allowed_values() -> None:
    with pytest.raises(ValueError, match="lean, rich"):
        story("X", failure_diagnostics="full")


def test_merge_extends_redaction_and_skips_none() -> None:
    base = FailureDiagnosticsConfig(redact_extra=("org_key",))

    merged = base.merge(redact_extra=["internal_id"], failure_diagnostics=None)

    assert merged.redact_extra == ("org_key", "internal_id")
    assert merged.failure_diagnostics == "lean"
    with pytest.raises(TypeError, match="no field"):
        base.merge(colour=True)


def test_production_caps_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNTIME_NARRATIVE_ENV", "production")

    def deep(n: int) -> None:
        if n == 0:
            raise ValueError("x" * 9000)
        deep(n - 1)

    with pytest.raises(ValueError), StoryRecorder("Prod") as recorder, stage("Deep"):
        deep(150)

    failure = recorder.failures[0]
    assert len(failure.traceback_text) <= 8_000
    assert failure.traceback_truncated is True


def test_rich_in_story_arguments_captures_locals_with_secrets_redacted() -> None:
    def charge(card_token: str, amount: int) -> None:
        password = "hunter2"  # noqa: F841
        raise RuntimeError("card declined")

    with (
        pytest.raises(RuntimeError),
        StoryRecorder("Pay", failure_diagnostics="rich") as recorder,
    ):
        with stage("Charge"):
            charge("tok_live_abcdef", 10)

    failure = recorder.failures[0]
    assert failure.diagnostics_mode == "rich"
    assert failure.locals_by_frame is not None
    text = repr(failure.locals_by_frame)
    assert "hunter2" not in text
    assert "tok_live_abcdef" not in text
    assert "amount" in text
    assert failure.redaction_removed_keys >= 2
