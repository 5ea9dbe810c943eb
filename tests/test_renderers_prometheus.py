from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest

pytest.importorskip("prometheus_client")

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.parser import text_string_to_metric_families

from runtime_narrative import stage, story
from runtime_narrative.events import StageCompleted
from runtime_narrative.renderers.prometheus import PrometheusRenderer, bounded_label

WHEN = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics_url(registry: CollectorRegistry) -> Iterator[str]:
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        yield f"http://127.0.0.1:{server.server_port}/metrics"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode("utf-8")
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def labels(**values: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(values.items()))


def run_orders(renderer: PrometheusRenderer, fail: bool) -> None:
    with story("Orders", renderers=[renderer]):
        with stage("Validate"):
            pass
        with stage("Charge"):
            if fail:
                raise TimeoutError("gateway")


def test_scrape_shows_the_four_metrics_after_good_and_failed_stories(
    registry: CollectorRegistry, metrics_url: str
) -> None:
    renderer = PrometheusRenderer(registry=registry)

    for fail in (False, False, True, False, True):
        try:
            run_orders(renderer, fail)
        except TimeoutError:
            pass
    samples = scrape(metrics_url)

    story_total = "narrative_story_total"
    assert samples[(story_total, labels(story_name="Orders", success="true"))] == 3
    assert samples[(story_total, labels(story_name="Orders", success="false"))] == 2
    failures = (
        "narrative_story_failures_total",
        labels(story_name="Orders", error_type="TimeoutError"),
    )
    assert samples[failures] == 2
    story_count = "narrative_story_duration_seconds_count"
    assert samples[(story_count, labels(story_name="Orders", success="true"))] == 3
    assert samples[(story_count, labels(story_name="Orders", success="false"))] == 2
    stage_count = "narrative_stage_duration_seconds_count"
    assert (
        samples[(stage_count, labels(story_name="Orders", stage_name="Validate"))] == 5
    )
    # A failed stage has no duration to observe: only the three good charges.
    assert samples[(stage_count, labels(story_name="Orders", stage_name="Charge"))] == 3


def test_two_renderers_on_one_registry_share_the_metrics(
    registry: CollectorRegistry, metrics_url: str
) -> None:
    first = PrometheusRenderer(registry=registry)
    second = PrometheusRenderer(registry=registry)

    run_orders(first, fail=False)
    run_orders(second, fail=False)
    samples = scrape(metrics_url)

    key = ("narrative_story_total", labels(story_name="Orders", success="true"))
    assert samples[key] == 2


def test_renderers_on_different_registries_are_independent() -> None:
    one, two = CollectorRegistry(), CollectorRegistry()
    renderer = PrometheusRenderer(registry=one)
    PrometheusRenderer(registry=two)

    run_orders(renderer, fail=False)

    name, key = "narrative_story_total", {"story_name": "Orders", "success": "true"}
    assert one.get_sample_value(name, key) == 1
    assert two.get_sample_value(name, key) is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Process 1234", "Process {n}"),
        ("Load 3f2a9c1e-77b0-4c1d-9a8e-0123456789ab", "Load {uuid}"),
        ("Fetch blob 9f86d081884c7d65", "Fetch blob {hex}"),
        ("Decode facade", "Decode facade"),
        ("Retry 2 of 5", "Retry {n} of {n}"),
        ("x" * 300, "x" * 100),
    ],
)
def test_bounded_label(name: str, expected: str) -> None:
    assert bounded_label(name) == expected


def test_stage_names_with_ids_and_too_many_names_stay_bounded(
    registry: CollectorRegistry,
) -> None:
    renderer = PrometheusRenderer(registry=registry, max_stage_names=3)

    with story("Workers", renderers=[renderer]):
        for n in range(50):
            with stage(f"Process {n}"):
                pass
        for name in ("Alpha", "Beta", "Gamma", "Delta"):
            with stage(name):
                pass

    def count(stage_name: str) -> float | None:
        return registry.get_sample_value(
            "narrative_stage_duration_seconds_count",
            {"story_name": "Workers", "stage_name": stage_name},
        )

    assert count("Process {n}") == 50
    assert count("Alpha") == 1
    assert count("Beta") == 1
    assert count("Gamma") is None
    assert count("other") == 2


def test_story_names_beyond_the_limit_are_other(registry: CollectorRegistry) -> None:
    renderer = PrometheusRenderer(registry=registry, max_story_names=2)

    for name in ("A", "B", "C", "D"):
        renderer.handle(StageCompleted("id", "Step", WHEN, 0.1, 0, story_name=name))

    def count(story_name: str) -> float | None:
        return registry.get_sample_value(
            "narrative_stage_duration_seconds_count",
            {"story_name": story_name, "stage_name": "Step"},
        )

    assert (count("A"), count("B"), count("C"), count("other")) == (1, 1, None, 2)


def test_invalid_limits_are_refused(registry: CollectorRegistry) -> None:
    with pytest.raises(ValueError, match="max_stage_names"):
        PrometheusRenderer(registry=registry, max_stage_names=0)
