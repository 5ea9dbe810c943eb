"""The public surface is pinned, and importing it stays cheap."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import runtime_narrative

# The published package's public names, which users import today.
PUBLISHED = {
    "AlertRoutingRenderer",
    "AnthropicFailureAnalyzer",
    "CoalescingRenderer",
    "ConsoleRenderer",
    "DeduplicatingAnalyzer",
    "Event",
    "FailureAnalyzer",
    "FailureDiagnosticsConfig",
    "FailureOccurred",
    "FilteredRenderer",
    "HtmlReportRenderer",
    "HttpWebhookDestination",
    "JsonRenderer",
    "LLMAnalysisReady",
    "LLMFailureAnalyzer",
    "LogRecorded",
    "NarrativeLogHandler",
    "NarrativeTask",
    "NarrativeTaskGroup",
    "NarrativeTaskGroupError",
    "OllamaFailureAnalyzer",
    "OtelLogRenderer",
    "OtelMetricsRenderer",
    "OtelRenderer",
    "PrometheusRenderer",
    "RotatingJsonRenderer",
    "RuntimeNarrativeAsyncInterceptor",
    "RuntimeNarrativeDjangoMiddleware",
    "RuntimeNarrativeDjangoSyncMiddleware",
    "RuntimeNarrativeInterceptor",
    "RuntimeNarrativeMiddleware",
    "SlackWebhookDestination",
    "SqliteStoryRenderer",
    "StageCompleted",
    "StageStarted",
    "StoryCompleted",
    "StoryRecorder",
    "StoryRuntime",
    "StoryStarted",
    "auto_instrument",
    "build_enriched_failure",
    "connect_narrative",
    "effective_diagnostics_mode",
    "has_active_story",
    "http_outcome",
    "instrument_module",
    "narrative_class",
    "narrative_stage",
    "no_stage",
    "runtime_narrative_stage",
    "runtime_narrative_story",
    "stage",
    "story",
}

# Added here, beyond the published package.
ADDED = {
    "FailureDiagnostics",
    "NarrativeClientInterceptor",
    "narrative_async_client_interceptors",
    "PostgresStoryRenderer",
    "RulesFailureAnalyzer",
    "Stage",
    "Story",
    "StoryNotActiveError",
    "with_story_context",
}


def test_all_is_exactly_the_published_names_plus_ours() -> None:
    assert set(runtime_narrative.__all__) == PUBLISHED | ADDED
    assert runtime_narrative.__all__ == sorted(runtime_narrative.__all__)


def test_core_names_resolve_without_optional_dependencies() -> None:
    for name in ("story", "stage", "StoryRecorder", "ConsoleRenderer", "JsonRenderer"):
        assert getattr(runtime_narrative, name) is not None


def test_unknown_attribute_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="does_not_exist"):
        runtime_narrative.does_not_exist  # type: ignore[attr-defined]  # noqa: B018


OPTIONAL_MODULES = [
    "starlette",
    "fastapi",
    "opentelemetry",
    "prometheus_client",
    "anthropic",
    "django",
    "celery",
    "grpc",
    "psycopg",
    "httpx",
    "requests",
    "asyncio",
]


def test_import_loads_no_optional_dependency_even_when_installed() -> None:
    code = (
        "import json, sys; import runtime_narrative; "
        f"print(json.dumps([m for m in {OPTIONAL_MODULES!r} if m in sys.modules]))"
    )

    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )

    assert json.loads(result.stdout) == []


def test_a_sync_story_does_not_import_asyncio() -> None:
    code = (
        "import sys\n"
        "from runtime_narrative import story, stage\n"
        "with story('X', renderers=[]):\n"
        "    with stage('Y'): pass\n"
        "print('asyncio' in sys.modules)\n"
    )

    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == "False"
