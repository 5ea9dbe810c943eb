"""PrometheusRenderer: story and stage metrics for a Prometheus scrape.

Needs the ``prometheus`` extra: ``pip install "runtime-narrative[prometheus]"``.
"""

from __future__ import annotations

import re
import threading
import weakref
from typing import Any, Optional

try:
    import prometheus_client
    from prometheus_client import CollectorRegistry, Counter, Histogram
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "PrometheusRenderer needs prometheus-client:"
        ' pip install "runtime-narrative[prometheus]"'
    ) from exc

from runtime_narrative.events import FailureOccurred, StageCompleted, StoryCompleted

__all__ = ["OTHER_LABEL", "PrometheusRenderer", "bounded_label"]

#: The label value that stands for every name beyond the configured limit.
OTHER_LABEL = "other"

_MAX_LABEL_LENGTH = 100

# Most specific first: a UUID is also a run of hex digits and of numbers.
_UUID = re.compile(
    r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
)
# Eight or more hex digits with at least one digit among them: a hash or an
# id. A word made only of the letters a-f is left as it is.
_HEX = re.compile(r"\b(?=[0-9a-fA-F]*[0-9])[0-9a-fA-F]{8,}\b")
_NUMBER = re.compile(r"\d+")


def bounded_label(name: str) -> str:
    """``name`` with the parts that vary per call replaced by placeholders.

    UUIDs become ``{uuid}``, runs of eight or more hex digits that contain a
    digit become ``{hex}``, any other run of digits becomes ``{n}``; the
    result is cut to 100 characters. ``"Process 1234"`` → ``"Process {n}"``.
    """
    text = _UUID.sub("{uuid}", name)
    text = _HEX.sub("{hex}", text)
    text = _NUMBER.sub("{n}", text)
    return text[:_MAX_LABEL_LENGTH]


class _Metrics:
    """The four metrics of one registry, and the label values seen so far."""

    def __init__(
        self,
        registry: CollectorRegistry,
        buckets: Optional[tuple[float, ...]],
    ) -> None:
        extra: dict[str, Any] = {"registry": registry}
        if buckets is not None:
            extra["buckets"] = buckets
        self.story_duration = Histogram(
            "narrative_story_duration_seconds",
            "Duration of stories, in seconds.",
            ["story_name", "success"],
            **extra,
        )
        self.stage_duration = Histogram(
            "narrative_stage_duration_seconds",
            "Duration of completed stages, in seconds.",
            ["story_name", "stage_name"],
            **extra,
        )
        self.failures = Counter(
            "narrative_story_failures",
            "Failures reported by stories.",
            ["story_name", "error_type"],
            registry=registry,
        )
        self.stories = Counter(
            "narrative_story",
            "Stories completed.",
            ["story_name", "success"],
            registry=registry,
        )
        self.lock = threading.Lock()
        self.story_names: set[str] = set()
        self.stage_names: dict[str, set[str]] = {}


# One set of metrics per registry, so a second renderer on the same registry
# shares them instead of failing with a duplicated-timeseries error.
_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, _Metrics] = (
    weakref.WeakKeyDictionary()
)
_by_registry_lock = threading.Lock()


def _metrics_for(
    registry: CollectorRegistry, buckets: Optional[tuple[float, ...]]
) -> _Metrics:
    with _by_registry_lock:
        metrics = _by_registry.get(registry)
        if metrics is None:
            metrics = _Metrics(registry, buckets)
            _by_registry[registry] = metrics
        return metrics


class PrometheusRenderer:
    """Count stories and failures and time stories and stages, for Prometheus.

    ============================================ ========= ========================
    Metric                                       Type      Labels
    ============================================ ========= ========================
    ``narrative_story_duration_seconds``         Histogram story_name, success
    ``narrative_stage_duration_seconds``         Histogram story_name, stage_name
    ``narrative_story_failures_total``           Counter   story_name, error_type
    ``narrative_story_total``                    Counter   story_name, success
    ============================================ ========= ========================

    ``registry`` defaults to prometheus_client's default registry. Renderers
    on the same registry share the metrics (``buckets`` of the first one
    applies). ``success`` is ``"true"`` or ``"false"``; a failure is counted
    per FailureOccurred event, so a failure recorded with ``record_failure``
    counts too, and one that ends a sub-story and its parent counts once for
    each story.

    Label values stay bounded whatever the names: both story and stage names
    go through :func:`bounded_label` (``"Process 1234"`` → ``"Process {n}"``),
    at most ``max_story_names`` distinct story names are kept per registry and
    at most ``max_stage_names`` distinct stage names per story name; names
    beyond that are counted under ``"other"``.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        registry: Optional[CollectorRegistry] = None,
        *,
        buckets: Optional[tuple[float, ...]] = None,
        max_story_names: int = 200,
        max_stage_names: int = 100,
    ) -> None:
        if max_story_names < 1 or max_stage_names < 1:
            raise ValueError("max_story_names and max_stage_names must be >= 1")
        self.registry = registry if registry is not None else prometheus_client.REGISTRY
        self.max_story_names = max_story_names
        self.max_stage_names = max_stage_names
        self._metrics = _metrics_for(self.registry, buckets)

    def handle(self, event: object) -> None:
        """Update the metrics for ``event``; other event kinds are ignored."""
        if isinstance(event, StageCompleted):
            self._stage_completed(event)
        elif isinstance(event, StoryCompleted):
            self._story_completed(event)
        elif isinstance(event, FailureOccurred):
            self._failure(event)

    def _stage_completed(self, event: StageCompleted) -> None:
        story_name = self._story_label(event.story_name)
        stage_name = self._stage_label(story_name, event.stage_name)
        self._metrics.stage_duration.labels(story_name, stage_name).observe(
            event.duration_seconds
        )

    def _story_completed(self, event: StoryCompleted) -> None:
        story_name = self._story_label(event.story_name)
        success = "true" if event.success else "false"
        self._metrics.story_duration.labels(story_name, success).observe(
            event.duration_seconds
        )
        self._metrics.stories.labels(story_name, success).inc()

    def _failure(self, event: FailureOccurred) -> None:
        story_name = self._story_label(event.story_name)
        error_type = event.error_type[:_MAX_LABEL_LENGTH]
        self._metrics.failures.labels(story_name, error_type).inc()

    # -- bounded labels ------------------------------------------------------

    def _story_label(self, name: str) -> str:
        label = bounded_label(name)
        metrics = self._metrics
        if label in metrics.story_names:
            return label
        with metrics.lock:
            if label in metrics.story_names:
                return label
            if len(metrics.story_names) >= self.max_story_names:
                return OTHER_LABEL
            metrics.story_names.add(label)
        return label

    def _stage_label(self, story_label: str, name: str) -> str:
        label = bounded_label(name)
        metrics = self._metrics
        seen = metrics.stage_names.get(story_label)
        if seen is not None and label in seen:
            return label
        with metrics.lock:
            seen = metrics.stage_names.setdefault(story_label, set())
            if label in seen:
                return label
            if len(seen) >= self.max_stage_names:
                return OTHER_LABEL
            seen.add(label)
        return label
