"""runtime-narrative: a program's execution as a story of named stages.

The core (``story``, ``stage``, the events, the diagnostics settings) is
imported here; everything else is loaded on first use, so
``import runtime_narrative`` stays cheap and imports no optional dependency.
"""

from __future__ import annotations

import importlib

from ._context import has_active_story
from ._errors import StoryNotActiveError
from ._threads import with_story_context
from .diagnostics.config import FailureDiagnosticsConfig, effective_diagnostics_mode
from .events import (
    FailureOccurred,
    LLMAnalysisReady,
    LogRecorded,
    StageCompleted,
    StageStarted,
    StoryCompleted,
    StoryStarted,
)
from .stage import Stage, stage
from .story import Story, StoryRuntime, http_outcome, story

__version__ = "0.1.0"

# typing costs milliseconds at import; it is needed only by type checkers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Public name -> the module that defines it, imported on first access.
_LAZY: dict[str, str] = {
    "Event": "events",
    "runtime_narrative_stage": "decorators",
    "runtime_narrative_story": "decorators",
    "narrative_class": "instrument",
    "narrative_stage": "instrument",
    "no_stage": "instrument",
    "instrument_module": "instrument",
    "auto_instrument": "instrument",
    "StoryRecorder": "testing",
    "build_enriched_failure": "diagnostics._capture",
    "FailureDiagnostics": "diagnostics._model",
    "ConsoleRenderer": "renderers.console",
    "JsonRenderer": "renderers.json",
    "RotatingJsonRenderer": "renderers.rotating",
    "HtmlReportRenderer": "renderers.html",
    "SqliteStoryRenderer": "renderers.sqlite",
    "PostgresStoryRenderer": "renderers.postgres",
    "OtelRenderer": "renderers.otel",
    "OtelLogRenderer": "renderers.otel",
    "OtelMetricsRenderer": "renderers.otel",
    "PrometheusRenderer": "renderers.prometheus",
    "AlertRoutingRenderer": "renderers.alerts",
    "SlackWebhookDestination": "renderers.alerts",
    "HttpWebhookDestination": "renderers.alerts",
    "FilteredRenderer": "renderers.filtering",
    "CoalescingRenderer": "renderers.filtering",
    "FailureAnalyzer": "analyzers.protocol",
    "RulesFailureAnalyzer": "analyzers.rules",
    "OllamaFailureAnalyzer": "analyzers.ollama",
    "LLMFailureAnalyzer": "analyzers.openai",
    "AnthropicFailureAnalyzer": "analyzers.anthropic",
    "DeduplicatingAnalyzer": "analyzers.dedup",
    "NarrativeTaskGroup": "taskgroup",
    "NarrativeTaskGroupError": "taskgroup",
    "NarrativeLogHandler": "logging",
    "RuntimeNarrativeMiddleware": "integrations.starlette",
    "RuntimeNarrativeDjangoMiddleware": "middleware_django",
    "RuntimeNarrativeDjangoSyncMiddleware": "middleware_django",
    "NarrativeTask": "integrations.celery",
    "connect_narrative": "integrations.celery",
    "RuntimeNarrativeInterceptor": "integrations.grpc",
    "RuntimeNarrativeAsyncInterceptor": "integrations.grpc",
    "NarrativeClientInterceptor": "integrations.grpc",
    "narrative_async_client_interceptors": "integrations.grpc",
}

__all__ = [
    "AlertRoutingRenderer",
    "AnthropicFailureAnalyzer",
    "CoalescingRenderer",
    "ConsoleRenderer",
    "DeduplicatingAnalyzer",
    "Event",
    "FailureAnalyzer",
    "FailureDiagnostics",
    "FailureDiagnosticsConfig",
    "FailureOccurred",
    "FilteredRenderer",
    "HtmlReportRenderer",
    "HttpWebhookDestination",
    "JsonRenderer",
    "LLMAnalysisReady",
    "LLMFailureAnalyzer",
    "LogRecorded",
    "NarrativeClientInterceptor",
    "NarrativeLogHandler",
    "NarrativeTask",
    "NarrativeTaskGroup",
    "NarrativeTaskGroupError",
    "OllamaFailureAnalyzer",
    "OtelLogRenderer",
    "OtelMetricsRenderer",
    "OtelRenderer",
    "PostgresStoryRenderer",
    "PrometheusRenderer",
    "RotatingJsonRenderer",
    "RulesFailureAnalyzer",
    "RuntimeNarrativeAsyncInterceptor",
    "RuntimeNarrativeDjangoMiddleware",
    "RuntimeNarrativeDjangoSyncMiddleware",
    "RuntimeNarrativeInterceptor",
    "RuntimeNarrativeMiddleware",
    "SlackWebhookDestination",
    "SqliteStoryRenderer",
    "Stage",
    "StageCompleted",
    "StageStarted",
    "Story",
    "StoryCompleted",
    "StoryNotActiveError",
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
    "narrative_async_client_interceptors",
    "narrative_class",
    "narrative_stage",
    "no_stage",
    "runtime_narrative_stage",
    "runtime_narrative_story",
    "stage",
    "story",
    "with_story_context",
]


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'runtime_narrative' has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{module_name}")
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover - names for type checkers and IDEs
    from .decorators import runtime_narrative_stage, runtime_narrative_story
    from .diagnostics._model import FailureDiagnostics
    from .events import Event
    from .renderers.console import ConsoleRenderer
    from .renderers.json import JsonRenderer
    from .testing import StoryRecorder
