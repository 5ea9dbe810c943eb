from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import StatusCode

from _otlp_receiver import otlp_receiver
from runtime_narrative import stage, story, with_story_context
from runtime_narrative.events import (
    FailureOccurred,
    LLMAnalysisReady,
    StoryCompleted,
    StoryStarted,
)
from runtime_narrative.renderers.otel import OtelRenderer

WHEN = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


def spans_by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    spans = exporter.get_finished_spans()
    named = {span.name: span for span in spans}
    assert len(named) == len(spans), [span.name for span in spans]
    return named


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def span_id(span: ReadableSpan) -> int:
    context = span.get_span_context()
    assert context is not None
    return context.span_id


# -- the acceptance tree, over OTLP/HTTP ----------------------------------------


def run_import_story(renderer: OtelRenderer) -> None:
    with story("Import", renderers=[renderer]):
        with stage("Load"):
            with stage("Parse"):
                pass
        with stage("Enrich"):
            with story("Lookup"):
                with stage("Query"):
                    pass
        with stage("Write"):
            with stage("Insert"):
                raise ValueError("duplicate key 42")


def test_span_tree_over_otlp_mirrors_the_story() -> None:
    with otlp_receiver() as receiver:
        provider = TracerProvider()
        provider.add_span_processor(
            SimpleSpanProcessor(OTLPSpanExporter(endpoint=receiver.url, timeout=5))
        )
        renderer = OtelRenderer(tracer_provider=provider)

        with pytest.raises(ValueError, match="duplicate key"):
            run_import_story(renderer)
        provider.shutdown()

    names = sorted(span.name for span in receiver.spans)
    assert names == sorted(
        ["Import", "Load", "Parse", "Enrich", "Lookup", "Query", "Write", "Insert"]
    )
    span = receiver.by_name
    root = span("Import")
    assert root.parent_span_id == b""
    expected_parent = {
        "Load": "Import",
        "Parse": "Load",
        "Enrich": "Import",
        "Lookup": "Enrich",
        "Query": "Lookup",
        "Write": "Import",
        "Insert": "Write",
    }
    for child, parent in expected_parent.items():
        assert span(child).parent_span_id == span(parent).span_id, child
        assert span(child).trace_id == root.trace_id
    for received in receiver.spans:
        assert received.end_ns >= received.start_ns > 0, received.name
    assert {s.name for s in receiver.spans if s.is_error} == {
        "Import",
        "Write",
        "Insert",
    }
    insert = span("Insert")
    assert insert.attributes["error.type"] == "ValueError"
    assert insert.attributes["error.message"] == "duplicate key 42"
    assert insert.attributes["code.function"] == "run_import_story"
    assert insert.attributes["code.filepath"].endswith("test_renderers_otel.py")
    assert isinstance(insert.attributes["code.lineno"], int)
    assert "ValueError" in insert.attributes["error.stack_trace"]
    assert "ValueError" in insert.attributes["narrative.exception_chain"]
    [(event_name, event_attributes)] = insert.events
    assert event_name == "exception"
    assert event_attributes["exception.type"] == "ValueError"
    assert event_attributes["exception.message"] == "duplicate key 42"
    assert "raise ValueError" in event_attributes["exception.stacktrace"]
    assert "error.type" not in span("Write").attributes
    assert root.attributes["error.type"] == "ValueError"
    assert root.attributes["narrative.success"] is False
    assert (
        span("Lookup").attributes["narrative.parent_story_id"]
        == (root.attributes["narrative.story_id"])
    )


# -- nesting and the current span ----------------------------------------------


def test_stage_span_is_current_so_other_spans_nest_inside(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracer = provider.get_tracer("http-client")

    with story("Fetch", renderers=[OtelRenderer(tracer_provider=provider)]):
        with stage("Call API"):
            with tracer.start_as_current_span("GET /users"):
                pass
        with tracer.start_as_current_span("in the story body"):
            pass

    spans = spans_by_name(exporter)
    assert parent_of(spans["GET /users"]) == span_id(spans["Call API"])
    assert parent_of(spans["in the story body"]) == span_id(spans["Fetch"])
    assert not trace.get_current_span().get_span_context().is_valid


def test_stage_nested_in_another_instrumentations_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracer = provider.get_tracer("db")

    with story("Sync", renderers=[OtelRenderer(tracer_provider=provider)]):
        with stage("Outer"):
            with tracer.start_as_current_span("transaction"):
                with stage("Inner"):
                    pass

    spans = spans_by_name(exporter)
    assert parent_of(spans["transaction"]) == span_id(spans["Outer"])
    assert parent_of(spans["Inner"]) == span_id(spans["transaction"])


def test_story_joins_the_trace_current_when_it_starts(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracer = provider.get_tracer("web")

    with tracer.start_as_current_span("POST /orders"):
        with story("Create order", renderers=[OtelRenderer(tracer_provider=provider)]):
            pass

    spans = spans_by_name(exporter)
    assert parent_of(spans["Create order"]) == span_id(spans["POST /orders"])


def test_handled_failure_ends_the_stage_as_error_and_later_stages_nest_right(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    with story("Retry", renderers=[OtelRenderer(tracer_provider=provider)]):
        with stage("Attempts"):
            try:
                with stage("First try"):
                    raise ConnectionError("refused")
            except ConnectionError:
                pass
            with stage("Second try"):
                pass

    spans = spans_by_name(exporter)
    assert spans["First try"].status.status_code is StatusCode.ERROR
    assert spans["First try"].end_time is not None
    assert parent_of(spans["Second try"]) == span_id(spans["Attempts"])
    assert spans["Second try"].status.status_code is StatusCode.UNSET
    assert spans["Attempts"].status.status_code is StatusCode.UNSET
    assert spans["Retry"].status.status_code is StatusCode.UNSET


def test_handled_failure_of_the_last_inner_stage_is_ended_with_its_parent(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    with story("Tolerant", renderers=[OtelRenderer(tracer_provider=provider)]):
        with stage("Outer"):
            try:
                with stage("Flaky"):
                    raise KeyError("x")
            except KeyError:
                pass

    spans = spans_by_name(exporter)
    assert set(spans) == {"Tolerant", "Outer", "Flaky"}
    assert spans["Flaky"].status.status_code is StatusCode.ERROR
    assert spans["Outer"].status.status_code is StatusCode.UNSET
    assert not trace.get_current_span().get_span_context().is_valid


def test_sub_story_in_a_thread_nests_under_the_stage_that_started_it(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    def work(n: int) -> None:
        with stage(f"Batch {n}"):
            with story(f"Worker {n}"):
                pass

    with story("Fan out", renderers=[OtelRenderer(tracer_provider=provider)]):
        with stage("Dispatch"), ThreadPoolExecutor(max_workers=3) as pool:
            list(pool.map(with_story_context(work), range(3)))

    spans = spans_by_name(exporter)
    for n in range(3):
        assert parent_of(spans[f"Batch {n}"]) == span_id(spans["Dispatch"])
        assert parent_of(spans[f"Worker {n}"]) == span_id(spans[f"Batch {n}"])


async def test_async_tasks_each_nest_under_their_own_stage(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    async def child(n: int) -> None:
        async with stage(f"Task {n}"):
            await asyncio.sleep(0)
            async with stage(f"Step {n}"):
                await asyncio.sleep(0)

    async with story("Gather", renderers=[OtelRenderer(tracer_provider=provider)]):
        async with stage("Parallel"):
            await asyncio.gather(*(child(n) for n in range(3)))

    spans = spans_by_name(exporter)
    for n in range(3):
        assert parent_of(spans[f"Task {n}"]) == span_id(spans["Parallel"])
        assert parent_of(spans[f"Step {n}"]) == span_id(spans[f"Task {n}"])


# -- every span ended ------------------------------------------------------------


async def test_cancelled_story_ends_every_span_without_error(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    started = asyncio.Event()

    async def job() -> None:
        async with story(
            "Long job", renderers=[OtelRenderer(tracer_provider=provider)]
        ):
            async with stage("Wait"):
                async with stage("Poll"):
                    started.set()
                    await asyncio.sleep(30)

    task = asyncio.ensure_future(job())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    spans = spans_by_name(exporter)
    assert set(spans) == {"Long job", "Wait", "Poll"}
    for span in spans.values():
        assert span.end_time is not None
        assert span.status.status_code is StatusCode.UNSET
        assert span.attributes is not None
        assert span.attributes["narrative.status"] == "cancelled"


def test_generator_closed_early_ends_its_stage_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    def rows() -> Iterator[int]:
        with stage("Stream rows"):
            yield 1
            yield 2

    with story("Read", renderers=[OtelRenderer(tracer_provider=provider)]):
        generator = rows()
        next(generator)
        generator.close()
        with stage("After"):
            pass

    spans = spans_by_name(exporter)
    assert set(spans) == {"Read", "Stream rows", "After"}
    assert parent_of(spans["After"]) == span_id(spans["Read"])


def test_story_body_failure_marks_only_the_story(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    with pytest.raises(RuntimeError):
        with story("Body", renderers=[OtelRenderer(tracer_provider=provider)]):
            with stage("Fine"):
                pass
            raise RuntimeError("outside any stage")

    spans = spans_by_name(exporter)
    assert spans["Fine"].status.status_code is StatusCode.UNSET
    assert spans["Body"].status.status_code is StatusCode.ERROR
    assert spans["Body"].attributes is not None
    assert spans["Body"].attributes["error.type"] == "RuntimeError"


# -- options ---------------------------------------------------------------------


def test_excluded_stage_gets_no_span_but_its_failure_marks_the_story(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    renderer = OtelRenderer(tracer_provider=provider, exclude_stages={"Health Check"})

    with pytest.raises(OSError):
        with story("Serve", renderers=[renderer]):
            with stage("Health Check"):
                with stage("Ping"):
                    pass
                raise OSError("down")

    spans = spans_by_name(exporter)
    assert set(spans) == {"Serve", "Ping"}
    assert parent_of(spans["Ping"]) == span_id(spans["Serve"])
    assert spans["Serve"].status.status_code is StatusCode.ERROR
    assert spans["Serve"].attributes is not None
    assert spans["Serve"].attributes["error.type"] == "OSError"


def test_min_duration_drops_short_stages_and_keeps_the_tree(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    renderer = OtelRenderer(
        tracer_provider=provider, min_duration_ms=20, exclude_stages={"Wrapper"}
    )

    with story("Batch", renderers=[renderer]):
        with stage("Slow outer"):
            with stage("Quick inner"):
                pass
            with stage("Wrapper"):
                with stage("Slow leaf"):
                    time.sleep(0.03)
        with stage("Quick sibling"):
            pass

    spans = spans_by_name(exporter)
    assert set(spans) == {"Batch", "Slow outer", "Slow leaf"}
    assert parent_of(spans["Slow outer"]) == span_id(spans["Batch"])
    assert parent_of(spans["Slow leaf"]) == span_id(spans["Slow outer"])
    leaf = spans["Slow leaf"]
    assert leaf.start_time is not None
    assert leaf.end_time is not None
    assert leaf.end_time - leaf.start_time >= 20_000_000


def test_min_duration_keeps_a_short_stage_that_failed(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    renderer = OtelRenderer(tracer_provider=provider, min_duration_ms=50)

    with pytest.raises(ZeroDivisionError):
        with story("Compute", renderers=[renderer]):
            with stage("Outer"):
                with stage("Divide"):
                    _ = 1 / 0

    spans = spans_by_name(exporter)
    assert set(spans) == {"Compute", "Outer", "Divide"}
    assert parent_of(spans["Divide"]) == span_id(spans["Outer"])
    assert spans["Divide"].status.status_code is StatusCode.ERROR
    assert spans["Divide"].attributes is not None
    assert spans["Divide"].attributes["error.type"] == "ZeroDivisionError"
    assert spans["Outer"].status.status_code is StatusCode.ERROR
    assert spans["Compute"].status.status_code is StatusCode.ERROR


def test_long_attributes_are_truncated(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    renderer = OtelRenderer(tracer_provider=provider, max_attribute_length=64)

    with pytest.raises(ValueError):
        with story("Validate", renderers=[renderer]):
            with stage("Check"):
                raise ValueError("x" * 500)

    attributes = spans_by_name(exporter)["Check"].attributes
    assert attributes is not None
    message = attributes["error.message"]
    assert isinstance(message, str)
    assert len(message) == 64
    assert message.endswith("…")


def test_invalid_options_are_refused() -> None:
    with pytest.raises(ValueError, match="min_duration_ms"):
        OtelRenderer(min_duration_ms=-1)
    with pytest.raises(ValueError, match="max_attribute_length"):
        OtelRenderer(max_attribute_length=0)


# -- analyses ----------------------------------------------------------------------


def test_llm_analysis_is_a_span_event_on_the_open_story(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    renderer = OtelRenderer(tracer_provider=provider)
    renderer.handle(StoryStarted("s1", "Nightly", WHEN))

    renderer.handle(LLMAnalysisReady("s1", "Nightly", "Load", "check the CSV", WHEN))
    renderer.handle(StoryCompleted("s1", "Nightly", False, 0, 0, 0, WHEN))

    [span] = exporter.get_finished_spans()
    [event] = span.events
    assert event.name == "llm_analysis_ready"
    assert event.attributes is not None
    assert event.attributes["narrative.llm_analysis"] == "check the CSV"


def test_late_llm_analysis_goes_on_a_child_of_the_ended_story(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    renderer = OtelRenderer(tracer_provider=provider)
    renderer.handle(StoryStarted("s2", "Nightly", WHEN))
    renderer.handle(StoryCompleted("s2", "Nightly", False, 0, 0, 0, WHEN))

    renderer.handle(LLMAnalysisReady("s2", "Nightly", "Load", "late advice", WHEN))

    spans = spans_by_name(exporter)
    child = spans["llm_analysis_ready"]
    assert parent_of(child) == span_id(spans["Nightly"])
    [event] = child.events
    assert event.attributes is not None
    assert event.attributes["narrative.llm_analysis"] == "late advice"


def test_events_of_unknown_stories_are_ignored(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    renderer = OtelRenderer(tracer_provider=provider)

    renderer.handle(StoryCompleted("nope", "Ghost", True, 100, 0, 0, WHEN))
    renderer.handle(LLMAnalysisReady("nope", "Ghost", "x", "y", WHEN))
    renderer.handle(object())

    assert exporter.get_finished_spans() == ()


def test_concurrent_stories_from_threads_each_get_their_own_trace(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    renderer = OtelRenderer(tracer_provider=provider)
    barrier = threading.Barrier(4)

    def run(n: int) -> None:
        barrier.wait()
        with story(f"Story {n}", renderers=[renderer]):
            for i in range(20):
                with stage(f"S{n}.{i}"):
                    pass

    threads = [threading.Thread(target=run, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    spans = spans_by_name(exporter)
    assert len(spans) == 4 * 21
    for n in range(4):
        root = spans[f"Story {n}"]
        for i in range(20):
            assert parent_of(spans[f"S{n}.{i}"]) == span_id(root)


# -- OtelLogRenderer -------------------------------------------------------------


def test_log_records_have_the_published_severities_and_link_to_spans(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import (
        InMemoryLogRecordExporter,
        SimpleLogRecordProcessor,
    )

    from runtime_narrative.renderers.otel import OtelLogRenderer

    log_exporter = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
    renderers = [
        OtelRenderer(tracer_provider=provider),
        OtelLogRenderer(logger_name="my_app", logger_provider=logger_provider),
    ]

    with pytest.raises(LookupError):
        with story("Nightly", renderers=renderers):
            with stage("Load"):
                raise LookupError("no such file")

    records = [item.log_record for item in log_exporter.get_finished_logs()]
    levels = [(r.attributes or {}).get("narrative.event") for r in records]
    assert levels == [
        "StoryStarted",
        "StageStarted",
        "FailureOccurred",
        "StoryCompleted",
    ]
    assert [r.severity_text for r in records] == ["INFO", "DEBUG", "ERROR", "INFO"]
    failure = records[2]
    assert failure.attributes is not None
    assert failure.attributes["error.type"] == "LookupError"
    assert str(failure.attributes["code.filepath"]).endswith("test_renderers_otel.py")
    assert "LookupError" in str(failure.attributes["error.stack_trace"])
    spans = spans_by_name(exporter)
    assert records[1].span_id == span_id(spans["Load"])
    assert records[0].span_id == span_id(spans["Nightly"])
    assert {r.trace_id for r in records} == {
        spans["Nightly"].get_span_context().trace_id  # type: ignore[union-attr]
    }
    logger_provider.shutdown()


# -- OtelMetricsRenderer ---------------------------------------------------------


def test_metrics_have_the_published_instruments_and_labels() -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from runtime_narrative.renderers.otel import OtelMetricsRenderer

    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    renderer = OtelMetricsRenderer(meter_name="my_app", meter_provider=meter_provider)

    with story("Orders", renderers=[renderer]):
        with stage("Validate"):
            pass
    with pytest.raises(TimeoutError):
        with story("Orders", renderers=[renderer]):
            raise TimeoutError("gateway")
    renderer.handle(StoryStarted("s9", "Orders", WHEN))
    renderer.handle(_failure_event("s9"))
    renderer.handle(LLMAnalysisReady("s9", "Orders", "Charge", "retry later", WHEN))

    data = reader.get_metrics_data()
    assert data is not None
    points: dict[str, list[tuple[dict[str, object], object]]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points[metric.name] = [
                    (dict(p.attributes or {}), p) for p in metric.data.data_points
                ]
    [(stage_labels, stage_point)] = points["narrative.stage.duration"]
    assert stage_labels == {"story_name": "Orders", "stage_name": "Validate"}
    assert stage_point.count == 1  # type: ignore[attr-defined]
    story_points = {
        labels["success"]: point.count  # type: ignore[attr-defined]
        for labels, point in points["narrative.story.duration"]
    }
    assert story_points == {True: 1, False: 1}
    failures = {
        labels["error_type"]: point.value  # type: ignore[attr-defined]
        for labels, point in points["narrative.story.failures"]
    }
    assert failures == {"TimeoutError": 1, "ValueError": 1}
    [(latency_labels, latency)] = points["narrative.llm.analysis_latency"]
    assert latency_labels == {"story_name": "Orders"}
    assert latency.count == 1  # type: ignore[attr-defined]
    meter_provider.shutdown()


def _failure_event(story_id: str) -> FailureOccurred:
    return FailureOccurred(
        story_id, "Orders", "Charge", "ValueError", "bad", "a.py", 1, "f", None,
        "ValueError", "", None, "", 0, 0, None, WHEN,
    )  # fmt: skip
