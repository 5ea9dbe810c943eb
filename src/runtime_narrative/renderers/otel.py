"""OpenTelemetry renderers: stories as spans, events as log records, metrics.

* :class:`OtelRenderer` turns each story into a span and each stage into a
  child span of whatever encloses it, so a trace viewer shows the real tree.
* :class:`OtelLogRenderer` writes every event as an OpenTelemetry log record,
  correlated with the span that is current when it is written.
* :class:`OtelMetricsRenderer` records stage and story durations, failures and
  the latency of background analysis as OpenTelemetry instruments.

All three need the ``otel`` extra: ``pip install "runtime-narrative[otel]"``.
The decisions behind the mapping are written down in ``docs/observability.md``.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any, Callable, Optional, Union

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace import Span, SpanContext, Status, StatusCode
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "the OpenTelemetry renderers need the opentelemetry packages:"
        ' pip install "runtime-narrative[otel]"'
    ) from exc

from runtime_narrative.events import (
    STORY_BODY,
    FailureOccurred,
    LLMAnalysisReady,
    LogRecorded,
    StageCompleted,
    StageStarted,
    StoryCompleted,
    StoryStarted,
)

__all__ = ["OtelLogRenderer", "OtelMetricsRenderer", "OtelRenderer"]

logger = logging.getLogger("runtime_narrative")

_INSTRUMENTATION_NAME = "runtime_narrative"
_AttrValue = Union[str, bool, int, float]
# How a held-back stage span ended: status description, extra attributes, and
# the failure to record on it, if it is the failing stage.
_Outcome = tuple[str, dict[str, _AttrValue], Optional[FailureOccurred]]

# Stories open at once, per renderer. A story that never completes (its
# process state was lost, its generator was never closed) is ended, marked
# abandoned, once this many newer stories are open.
_MAX_OPEN_STORIES = 10_000
# Finished stories whose span a late LLMAnalysisReady can still attach to.
_MAX_FINISHED_STORIES = 1_024
# Completed stage spans held back per stage in min_duration_ms mode.
_MAX_BUFFERED_CHILDREN = 1_000


def _version() -> str:
    from runtime_narrative import __version__

    return __version__


# -- context handling ----------------------------------------------------------


def _reset(token: object) -> None:
    """Undo a context attach, silently when this is not the context it was made in.

    A stage may be left from another context than the one it entered (a
    generator closed by the garbage collector, say). A contextvars token
    refuses to reset there; that refusal is expected and not an error.
    """
    if token is None:
        return
    if isinstance(token, contextvars.Token):
        try:
            token.var.reset(token)
        except (ValueError, RuntimeError):
            pass
        return
    try:  # a runtime context other than the contextvars one
        otel_context.detach(token)  # type: ignore[arg-type]
    except Exception:
        pass


# -- per-story bookkeeping ---------------------------------------------------


class _Node:
    """A finished stage span held back until its enclosing span exists."""

    __slots__ = ("attributes", "children", "end_ns", "name", "start_ns", "status")

    def __init__(
        self,
        name: str,
        start_ns: int,
        end_ns: int,
        attributes: dict[str, _AttrValue],
        children: list[_Node],
        status: Optional[_Outcome],
    ) -> None:
        self.name = name
        self.start_ns = start_ns
        self.end_ns = end_ns
        self.attributes = attributes
        self.children = children
        self.status = status


class _OpenStage:
    """A stage that has started and not yet been seen to end."""

    __slots__ = (
        "attributes",
        "children",
        "depth",
        "dropped",
        "excluded",
        "index",
        "name",
        "parent",
        "span",
        "start_ns",
        "token",
    )

    def __init__(
        self,
        name: str,
        index: int,
        depth: int,
        parent: Optional[_OpenStage],
        excluded: bool,
    ) -> None:
        self.name = name
        self.index = index
        self.depth = depth
        self.parent = parent
        self.excluded = excluded
        self.span: Optional[Span] = None
        self.token: object = None
        # Deferred mode (min_duration_ms > 0) only:
        self.start_ns = 0
        self.attributes: dict[str, _AttrValue] = {}
        self.children: list[_Node] = []
        self.dropped = 0

    def descends_from(self, other: _OpenStage) -> bool:
        parent = self.parent
        while parent is not None:
            if parent is other:
                return True
            parent = parent.parent
        return False

    def nearest_span(self) -> Optional[Span]:
        record: Optional[_OpenStage] = self
        while record is not None:
            if record.span is not None:
                return record.span
            record = record.parent
        return None


class _OpenStory:
    __slots__ = (
        "by_span",
        "context",
        "failed",
        "name",
        "open",
        "span",
        "story_id",
        "token",
    )

    def __init__(
        self,
        story_id: str,
        name: str,
        span: Span,
        context: otel_context.Context,
        token: object,
    ) -> None:
        self.story_id = story_id
        self.name = name
        self.span = span
        self.context = context
        self.token = token
        self.failed = False
        self.open: dict[int, _OpenStage] = {}
        # id() of a live stage span -> its record; spans are held open by
        # their records, so an id is never reused while it is in here.
        self.by_span: dict[int, _OpenStage] = {}


# -- the span renderer ---------------------------------------------------------


class OtelRenderer:
    """Export each story as an OpenTelemetry span, and each stage as a child.

    The story span is a child of the span current when the story starts (an
    incoming request's span, say), or, for a sub-story, of the stage that
    opened it. Stage spans nest as the stages do. While a story or stage runs
    its span is the current span, so spans made by other instrumentation (an
    HTTP client, a database driver) nest inside it.

    Every span is ended whatever happens. A failure sets the span status to
    ERROR on the failing stage, on each stage the exception crossed, and on
    the story, and records the exception as a span event ``exception`` with
    the semantic-convention attributes; the failing stage and the story also
    carry ``error.type``, ``error.message``, ``code.filepath``,
    ``code.lineno``, ``code.function``, ``error.stack_trace`` and
    ``narrative.exception_chain``. Every text comes from the event, which
    diagnostics capture has already redacted. Cancellation is not an error:
    those spans keep the status UNSET and carry ``narrative.status``.

    ``exclude_stages`` names stages that get no span (their inner stages
    nest under the nearest enclosing span); when one fails, the story span
    is still ERROR. ``min_duration_ms`` drops stage spans shorter than that:
    because an OpenTelemetry span cannot be withdrawn once started, stage
    spans are then built when the stage ends, with its real start and end
    times, and are not the current span while it runs (see
    ``docs/observability.md``). Failed stages are always kept.
    ``max_attribute_length`` truncates string attributes. ``tracer_provider``
    defaults to the global one.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        *,
        tracer_provider: Optional[trace.TracerProvider] = None,
        exclude_stages: Optional[Iterable[str]] = None,
        min_duration_ms: float = 0.0,
        max_attribute_length: int = 8192,
    ) -> None:
        if min_duration_ms < 0:
            raise ValueError(f"min_duration_ms must be >= 0; got {min_duration_ms!r}")
        if max_attribute_length < 1:
            raise ValueError(
                f"max_attribute_length must be >= 1; got {max_attribute_length!r}"
            )
        self._tracer = trace.get_tracer(
            _INSTRUMENTATION_NAME, _version(), tracer_provider=tracer_provider
        )
        self.exclude_stages = frozenset(exclude_stages or ())
        self.min_duration_ms = float(min_duration_ms)
        self.max_attribute_length = max_attribute_length
        self._deferred = self.min_duration_ms > 0
        self._stories: OrderedDict[str, _OpenStory] = OrderedDict()
        self._finished: OrderedDict[str, tuple[str, SpanContext]] = OrderedDict()
        self._lock = threading.Lock()
        self._handlers: dict[type, Callable[[Any], None]] = {
            StoryStarted: self._story_started,
            StageStarted: self._stage_started,
            StageCompleted: self._stage_completed,
            FailureOccurred: self._failure,
            StoryCompleted: self._story_completed,
            LLMAnalysisReady: self._analysis_ready,
        }

    def handle(self, event: object) -> None:
        """Map ``event`` onto spans; events of other kinds are ignored."""
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)

    # -- stories -------------------------------------------------------------

    def _story_started(self, event: StoryStarted) -> None:
        parent_context = self._parent_context_for_story(event.parent_story_id)
        attributes: dict[str, _AttrValue] = {
            "narrative.story_id": event.story_id,
            "narrative.story_name": self._text(event.story_name),
        }
        if event.root_story_id:
            attributes["narrative.root_story_id"] = event.root_story_id
        if event.parent_story_id:
            attributes["narrative.parent_story_id"] = event.parent_story_id
        if event.module:
            attributes["narrative.module"] = self._text(event.module)
        if event.total_stages is not None:
            attributes["narrative.total_stages"] = event.total_stages
        span = self._tracer.start_span(
            self._text(event.story_name), context=parent_context, attributes=attributes
        )
        context = trace.set_span_in_context(span, parent_context)
        token = otel_context.attach(context)

        evicted = None
        with self._lock:
            self._stories[event.story_id] = _OpenStory(
                event.story_id, event.story_name, span, context, token
            )
            if len(self._stories) > _MAX_OPEN_STORIES:
                evicted = self._stories.popitem(last=False)
        if evicted is not None:
            logger.warning(
                "OtelRenderer: more than %d stories open; ending the span of the"
                " oldest, %r, as abandoned",
                _MAX_OPEN_STORIES,
                evicted[1].name,
            )
            self._end_story(evicted[1], "abandoned", None)

    def _parent_context_for_story(
        self, parent_story_id: Optional[str]
    ) -> otel_context.Context:
        current = otel_context.get_current()
        parent = self._stories.get(parent_story_id) if parent_story_id else None
        if parent is None:
            # A top-level story, or one continued from another process: it
            # joins whatever trace is current here (an extracted traceparent).
            return current
        parent_trace = parent.span.get_span_context().trace_id
        if trace.get_current_span(current).get_span_context().trace_id == parent_trace:
            return current
        # Delivered outside the parent's context: use its innermost live stage.
        with self._lock:
            stages = sorted(parent.open.values(), key=lambda r: r.index, reverse=True)
        for record in stages:
            span = record.nearest_span()
            if span is not None:
                return trace.set_span_in_context(span)
        return parent.context

    def _story_completed(self, event: StoryCompleted) -> None:
        with self._lock:
            state = self._stories.pop(event.story_id, None)
        if state is None:
            return
        span = state.span
        span.set_attribute("narrative.success", event.success)
        span.set_attribute("narrative.status", event.status)
        span.set_attribute("narrative.completed_stages", event.completed_stages)
        span.set_attribute("narrative.progress_percent", event.progress_percent)
        if event.total_stages is not None:
            span.set_attribute("narrative.total_stages", event.total_stages)
        if event.outcome:
            span.set_attribute("narrative.outcome", self._text(event.outcome))
        self._end_story(state, event.status, event)

    def _end_story(
        self, state: _OpenStory, status: str, event: Optional[StoryCompleted]
    ) -> None:
        cancelled = status in ("cancelled", "abandoned")
        with self._lock:
            leftovers = sorted(state.open.values(), key=lambda r: r.index, reverse=True)
            state.open.clear()
            state.by_span.clear()
        for record in leftovers:
            self._end_unfinished(state, record, cancelled=cancelled)
        if cancelled:
            state.span.set_attribute("narrative.status", status)
        elif not state.failed and event is not None and not event.success:
            description = event.error_type or status
            state.span.set_status(Status(StatusCode.ERROR, self._text(description)))
        state.span.end()
        for record in leftovers:
            _reset(record.token)
        _reset(state.token)
        with self._lock:
            context = state.span.get_span_context()
            self._finished[state.story_id] = (state.name, context)
            if len(self._finished) > _MAX_FINISHED_STORIES:
                self._finished.popitem(last=False)

    # -- stages ----------------------------------------------------------------

    def _stage_started(self, event: StageStarted) -> None:
        state = self._stories.get(event.story_id)
        if state is None:
            return
        excluded = event.stage_name in self.exclude_stages
        parent, context = self._resolve_stage_parent(state, event)
        record = _OpenStage(
            event.stage_name, event.stage_index, event.depth, parent, excluded
        )
        if not excluded:
            # One attribute only: each one costs the SDK a validation on the
            # hot path, and the story id and depth are the span's place in
            # the trace already.
            attributes: dict[str, _AttrValue] = {
                "narrative.stage_index": event.stage_index
            }
            if event.module:
                attributes["narrative.module"] = self._text(event.module)
            if self._deferred:
                record.start_ns = time.time_ns()
                record.attributes = attributes
            else:
                span = self._tracer.start_span(
                    self._text(event.stage_name), context=context, attributes=attributes
                )
                record.span = span
                record.token = otel_context.attach(
                    trace.set_span_in_context(span, context)
                )
        with self._lock:
            state.open[event.stage_index] = record
            if record.span is not None:
                state.by_span[id(record.span)] = record

    def _resolve_stage_parent(
        self, state: _OpenStory, event: StageStarted
    ) -> tuple[Optional[_OpenStage], otel_context.Context]:
        """The enclosing stage (None: the story) and the context for the span."""
        if not self._deferred:
            found = self._parent_from_current_span(state, event)
            if found is not None:
                return found
        parent = None
        if event.depth > 0:
            with self._lock:
                for record in sorted(
                    state.open.values(), key=lambda r: r.index, reverse=True
                ):
                    if (
                        record.depth == event.depth - 1
                        and record.name == event.parent_stage_name
                    ):
                        parent = record
                        break
        span = parent.nearest_span() if parent is not None else None
        if span is None:
            return parent, state.context
        return parent, trace.set_span_in_context(span)

    def _parent_from_current_span(
        self, state: _OpenStory, event: StageStarted
    ) -> Optional[tuple[Optional[_OpenStage], otel_context.Context]]:
        """Find the parent from this context's current span, the usual case.

        A stage span still current at the same depth or deeper belongs to a
        stage that raised and whose exception was handled: it is ended here,
        and the context it left behind is restored.
        """
        for _ in range(event.depth + 2):
            current = trace.get_current_span()
            if current is state.span:
                if event.depth == 0:
                    return None, otel_context.get_current()
                return None
            record = state.by_span.get(id(current))
            if record is None:
                if current.get_span_context().trace_id == (
                    state.span.get_span_context().trace_id
                ):
                    # Another instrumentation's span inside one of our stages.
                    return self._parent_by_name(
                        state, event
                    ), otel_context.get_current()
                return None
            if record.depth < event.depth:
                if (
                    record.depth == event.depth - 1
                    and record.name == event.parent_stage_name
                ):
                    return record, otel_context.get_current()
                return None
            self._end_dead_stage(state, record)
        return None

    def _parent_by_name(
        self, state: _OpenStory, event: StageStarted
    ) -> Optional[_OpenStage]:
        if event.depth == 0:
            return None
        with self._lock:
            for record in sorted(
                state.open.values(), key=lambda r: r.index, reverse=True
            ):
                if (
                    record.depth == event.depth - 1
                    and record.name == event.parent_stage_name
                ):
                    return record
        return None

    def _end_dead_stage(self, state: _OpenStory, record: _OpenStage) -> None:
        """End a stage that raised, now that the story has moved on without it."""
        with self._lock:
            state.open.pop(record.index, None)
            if record.span is not None:
                state.by_span.pop(id(record.span), None)
        self._end_unfinished(state, record, cancelled=False)
        _reset(record.token)
        record.token = None

    def _stage_completed(self, event: StageCompleted) -> None:
        state = self._stories.get(event.story_id)
        if state is None:
            return
        with self._lock:
            record = state.open.pop(event.stage_index, None)
            if record is None:
                return
            if record.span is not None:
                state.by_span.pop(id(record.span), None)
            inner = [
                r
                for r in state.open.values()
                if r.index > record.index and r.descends_from(record)
            ]
            for dead in inner:
                del state.open[dead.index]
                if dead.span is not None:
                    state.by_span.pop(id(dead.span), None)
        inner.sort(key=lambda r: r.index, reverse=True)
        for dead in inner:
            self._end_unfinished(state, dead, cancelled=False)
        if self._deferred:
            self._finish_deferred(state, record, event.duration_seconds, None)
            return
        if record.span is not None:
            record.span.end()
        _reset(record.token)

    def _end_unfinished(
        self, state: _OpenStory, record: _OpenStage, *, cancelled: bool
    ) -> None:
        """End a stage seen to have stopped without completing."""
        if cancelled:
            status: Optional[_Outcome] = None
        else:
            status = ("the stage did not complete", {}, None)
        if self._deferred:
            self._finish_deferred(state, record, None, status, cancelled=cancelled)
            return
        span = record.span
        if span is None:
            return
        if cancelled:
            span.set_attribute("narrative.status", "cancelled")
        else:
            span.set_status(Status(StatusCode.ERROR, "the stage did not complete"))
        span.end()

    # -- min_duration_ms: stage spans built when they end ---------------------

    def _finish_deferred(
        self,
        state: _OpenStory,
        record: _OpenStage,
        duration: Optional[float],
        status: Optional[_Outcome],
        *,
        cancelled: bool = False,
    ) -> None:
        keep = not record.excluded and (
            duration is None or duration * 1000.0 >= self.min_duration_ms
        )
        children = record.children
        if keep:
            attributes = record.attributes
            if cancelled:
                attributes["narrative.status"] = "cancelled"
            if record.dropped:
                attributes["narrative.dropped_child_spans"] = record.dropped
            end_ns = time.time_ns()
            if duration is not None:
                end_ns = max(record.start_ns, record.start_ns + int(duration * 1e9))
            node = _Node(
                self._text(record.name),
                record.start_ns,
                end_ns,
                attributes,
                children,
                status,
            )
            nodes = [node]
        else:
            nodes = children
        parent = record.parent
        while parent is not None and parent.excluded:
            parent = parent.parent
        if parent is None:
            for node in nodes:
                self._export(node, state.context)
            return
        with self._lock:
            room = _MAX_BUFFERED_CHILDREN - len(parent.children)
            parent.children.extend(nodes[: max(room, 0)])
            parent.dropped += max(len(nodes) - max(room, 0), 0)

    def _export(self, node: _Node, context: otel_context.Context) -> None:
        span = self._tracer.start_span(
            node.name,
            context=context,
            attributes=node.attributes,
            start_time=node.start_ns,
        )
        if node.status is not None:
            description, attributes, failure = node.status
            if failure is not None:
                self._record_failure(span, failure)
            else:
                span.set_attributes(attributes)
                span.set_status(Status(StatusCode.ERROR, description))
        inner = trace.set_span_in_context(span)
        for child in node.children:
            self._export(child, inner)
        span.end(end_time=node.end_ns)

    # -- failures and analyses -------------------------------------------------

    def _failure(self, event: FailureOccurred) -> None:
        state = self._stories.get(event.story_id)
        if state is None:
            return
        if event.recorded:
            # record_failure(): nothing propagated, the story goes on and ends
            # as it will; the failure is kept as an event on the story span.
            state.span.add_event("exception", self._exception_event(event, True))
            return
        with self._lock:
            stages = sorted(state.open.values(), key=lambda r: r.index, reverse=True)
            state.open.clear()
            state.by_span.clear()
        failing = None
        if event.stage_name != STORY_BODY:
            for record in stages:
                if (
                    record.name == event.stage_name
                    and record.depth == event.stage_depth
                ):
                    failing = record
                    break
        for record in stages:
            self._end_failed_stage(state, record, event, record is failing)
        for record in stages:
            _reset(record.token)
            record.token = None
        self._record_failure(state.span, event)
        state.failed = True

    def _end_failed_stage(
        self,
        state: _OpenStory,
        record: _OpenStage,
        event: FailureOccurred,
        failing: bool,
    ) -> None:
        crossed = self._text(f"{event.error_type} raised in {event.stage_name!r}")
        if self._deferred:
            status: _Outcome = (crossed, {}, event if failing else None)
            self._finish_deferred(state, record, None, status)
            return
        span = record.span
        if span is None:
            return
        if failing:
            self._record_failure(span, event)
        else:
            span.set_status(Status(StatusCode.ERROR, crossed))
        span.end()

    def _record_failure(self, span: Span, event: FailureOccurred) -> None:
        span.add_event("exception", self._exception_event(event, False))
        span.set_attributes(self._failure_attributes(event))
        description = f"{event.error_type}: {event.error_message}"
        span.set_status(Status(StatusCode.ERROR, self._text(description)))

    def _failure_attributes(self, event: FailureOccurred) -> dict[str, _AttrValue]:
        attributes: dict[str, _AttrValue] = {
            "error.type": self._text(event.error_type),
            "error.message": self._text(event.error_message),
            "narrative.exception_chain": self._text(event.exception_chain),
            "narrative.stage_name": self._text(event.stage_name),
        }
        if event.filename:
            attributes["code.filepath"] = self._text(event.filename)
        if event.lineno is not None:
            attributes["code.lineno"] = event.lineno
        if event.function:
            attributes["code.function"] = self._text(event.function)
        if event.traceback_text:
            attributes["error.stack_trace"] = self._text(event.traceback_text)
        return attributes

    def _exception_event(
        self, event: FailureOccurred, recorded: bool
    ) -> dict[str, _AttrValue]:
        attributes: dict[str, _AttrValue] = {
            "exception.type": self._text(event.error_type),
            "exception.message": self._text(event.error_message),
            "narrative.stage_name": self._text(event.stage_name),
        }
        if event.traceback_text:
            attributes["exception.stacktrace"] = self._text(event.traceback_text)
        if recorded:
            attributes["narrative.recorded"] = True
        return attributes

    def _analysis_ready(self, event: LLMAnalysisReady) -> None:
        if event.llm_analysis is None:
            return
        attributes: dict[str, _AttrValue] = {
            "narrative.llm_analysis": self._text(event.llm_analysis),
            "narrative.stage_name": self._text(event.stage_name),
        }
        state = self._stories.get(event.story_id)
        if state is not None:
            state.span.add_event("llm_analysis_ready", attributes)
            return
        with self._lock:
            finished = self._finished.get(event.story_id)
        if finished is None:
            return
        # The story span has ended: a short child span carries the analysis.
        context = trace.set_span_in_context(trace.NonRecordingSpan(finished[1]))
        span = self._tracer.start_span(
            "llm_analysis_ready",
            context=context,
            attributes={"narrative.story_id": event.story_id},
        )
        span.add_event("llm_analysis_ready", attributes)
        span.end()

    # -- helpers -----------------------------------------------------------------

    def _text(self, value: str) -> str:
        limit = self.max_attribute_length
        if len(value) <= limit:
            return value
        return value[: limit - 1] + "…"


# -- log records ---------------------------------------------------------------

# The published severities: lifecycle INFO, stage events DEBUG, failures ERROR.
_LOG_LEVELS = {
    "DEBUG": "DEBUG",
    "INFO": "INFO",
    "WARNING": "WARN",
    "WARN": "WARN",
    "ERROR": "ERROR",
    "CRITICAL": "FATAL",
    "FATAL": "FATAL",
}


class OtelLogRenderer:
    """Write every event as an OpenTelemetry log record.

    StoryStarted, StoryCompleted and LLMAnalysisReady are INFO; StageStarted
    and StageCompleted are DEBUG; FailureOccurred is ERROR, with
    ``error.type``, ``error.message``, ``code.filepath``, ``code.lineno``,
    ``code.function``, ``error.stack_trace`` and ``narrative.exception_chain``;
    LogRecorded keeps its own level. The record carries the trace and span
    ids of the span current where the event is delivered, so with
    :class:`OtelRenderer` placed before it each record links to its stage or
    story span. The body is a one-line summary; the event's fields are
    attributes under ``narrative.*``. ``logger_provider`` defaults to the
    global one.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        logger_name: str = "runtime_narrative",
        *,
        logger_provider: Optional[Any] = None,
        max_attribute_length: int = 8192,
    ) -> None:
        from opentelemetry import _logs

        provider = (
            logger_provider
            if logger_provider is not None
            else _logs.get_logger_provider()
        )
        self._logger = provider.get_logger(logger_name, _version())
        self._severity = _logs.SeverityNumber
        self._record_class = _logs.LogRecord
        self.max_attribute_length = max_attribute_length
        self._story_spans: OrderedDict[str, SpanContext] = OrderedDict()
        self._lock = threading.Lock()

    def handle(self, event: object) -> None:
        """Emit ``event`` as a log record; objects that are not events are ignored."""
        described = self._describe(event)
        if described is None:
            return
        level, body, attributes = described
        record = self._record_class(
            timestamp=_time_ns(getattr(event, "timestamp", None)),
            context=self._context_for(event),
            severity_text=level,
            severity_number=getattr(self._severity, level),
            body=body,
            attributes=attributes,
        )
        self._logger.emit(record)

    def _context_for(self, event: object) -> otel_context.Context:
        """The current context; else the story's span, once it has ended.

        A failure and the story's end are delivered after OtelRenderer ended
        the spans they belong to; their records still link to the story span.
        """
        current = otel_context.get_current()
        story_id = getattr(event, "story_id", None)
        if not isinstance(story_id, str):
            return current
        span_context = trace.get_current_span(current).get_span_context()
        with self._lock:
            if isinstance(event, StoryStarted) and span_context.is_valid:
                self._story_spans[story_id] = span_context
                if len(self._story_spans) > _MAX_OPEN_STORIES:
                    self._story_spans.popitem(last=False)
                return current
            if isinstance(event, StoryCompleted):
                remembered = self._story_spans.pop(story_id, None)
            else:
                remembered = self._story_spans.get(story_id)
        if remembered is None or (
            span_context.is_valid and span_context.trace_id == remembered.trace_id
        ):
            return current
        return trace.set_span_in_context(trace.NonRecordingSpan(remembered), current)

    def _describe(
        self, event: object
    ) -> Optional[tuple[str, str, dict[str, _AttrValue]]]:
        if isinstance(event, StoryStarted):
            return "INFO", f"story {event.story_name!r} started", self._fields(event)
        if isinstance(event, StoryCompleted):
            return (
                "INFO",
                f"story {event.story_name!r} {event.status}"
                f" in {event.duration_seconds:.3f}s",
                self._fields(event),
            )
        if isinstance(event, StageStarted):
            return "DEBUG", f"stage {event.stage_name!r} started", self._fields(event)
        if isinstance(event, StageCompleted):
            return (
                "DEBUG",
                f"stage {event.stage_name!r} completed"
                f" in {event.duration_seconds:.3f}s",
                self._fields(event),
            )
        if isinstance(event, FailureOccurred):
            return "ERROR", self._failure_body(event), self._failure_fields(event)
        if isinstance(event, LLMAnalysisReady):
            return (
                "INFO",
                f"analysis ready for story {event.story_name!r}",
                self._fields(event),
            )
        if isinstance(event, LogRecorded):
            level = _LOG_LEVELS.get(event.level.upper(), "INFO")
            return level, self._text(event.message), self._fields(event)
        return None

    def _failure_body(self, event: FailureOccurred) -> str:
        return self._text(
            f"story {event.story_name!r} failed in stage {event.stage_name!r}:"
            f" {event.error_type}: {event.error_message}"
        )

    def _failure_fields(self, event: FailureOccurred) -> dict[str, _AttrValue]:
        attributes: dict[str, _AttrValue] = {
            "narrative.event": "FailureOccurred",
            "narrative.story_id": event.story_id,
            "narrative.story_name": self._text(event.story_name),
            "narrative.stage_name": self._text(event.stage_name),
            "narrative.exception_chain": self._text(event.exception_chain),
            "narrative.progress_percent": event.progress_percent,
            "error.type": self._text(event.error_type),
            "error.message": self._text(event.error_message),
            "exception.type": self._text(event.error_type),
            "exception.message": self._text(event.error_message),
        }
        if event.root_story_id:
            attributes["narrative.root_story_id"] = event.root_story_id
        if event.filename:
            attributes["code.filepath"] = self._text(event.filename)
        if event.lineno is not None:
            attributes["code.lineno"] = event.lineno
        if event.function:
            attributes["code.function"] = self._text(event.function)
        if event.traceback_text:
            attributes["error.stack_trace"] = self._text(event.traceback_text)
            attributes["exception.stacktrace"] = attributes["error.stack_trace"]
        if event.llm_analysis:
            attributes["narrative.llm_analysis"] = self._text(event.llm_analysis)
        return attributes

    def _fields(self, event: Any) -> dict[str, _AttrValue]:
        attributes: dict[str, _AttrValue] = {"narrative.event": type(event).__name__}
        for key, value in event.to_dict().items():
            if key in ("event", "timestamp", "fields") or value is None:
                continue
            if isinstance(value, str):
                attributes[f"narrative.{key}"] = self._text(value)
            elif isinstance(value, (bool, int, float)):
                attributes[f"narrative.{key}"] = value
        return attributes

    def _text(self, value: str) -> str:
        limit = self.max_attribute_length
        return value if len(value) <= limit else value[: limit - 1] + "…"


def _time_ns(timestamp: object) -> Optional[int]:
    from datetime import datetime, timezone

    if not isinstance(timestamp, datetime):
        return None
    if timestamp.tzinfo is None:
        timestamp = timestamp.replace(tzinfo=timezone.utc)
    delta = timestamp - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + (
        delta.microseconds * 1_000
    )


# -- metrics -------------------------------------------------------------------

_MAX_PENDING_ANALYSES = 1_024


class OtelMetricsRenderer:
    """Record story and stage metrics with the OpenTelemetry metrics API.

    ================================== ========= ==========================
    Instrument                         Type      Attributes
    ================================== ========= ==========================
    ``narrative.stage.duration``       Histogram story_name, stage_name
    ``narrative.story.duration``       Histogram story_name, success
    ``narrative.story.failures``       Counter   story_name, error_type
    ``narrative.llm.analysis_latency`` Histogram story_name
    ================================== ========= ==========================

    Durations are in seconds (unit ``s``). ``success`` is a boolean. The
    analysis latency is the time from a FailureOccurred without an analysis
    to the LLMAnalysisReady of the same story, so it is recorded only for
    background analysis. ``meter_provider`` defaults to the global one.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        meter_name: str = "runtime_narrative",
        *,
        meter_provider: Optional[Any] = None,
    ) -> None:
        from opentelemetry import metrics

        meter = metrics.get_meter(meter_name, _version(), meter_provider=meter_provider)
        self._stage_duration = meter.create_histogram(
            "narrative.stage.duration", unit="s", description="Duration of stages"
        )
        self._story_duration = meter.create_histogram(
            "narrative.story.duration", unit="s", description="Duration of stories"
        )
        self._failures = meter.create_counter(
            "narrative.story.failures", description="Failures reported by stories"
        )
        self._analysis_latency = meter.create_histogram(
            "narrative.llm.analysis_latency",
            unit="s",
            description="Time from a failure to its background analysis",
        )
        self._pending: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def handle(self, event: object) -> None:
        """Record what ``event`` measures; other events are ignored."""
        if isinstance(event, StageCompleted):
            self._stage_duration.record(
                event.duration_seconds,
                {"story_name": event.story_name, "stage_name": event.stage_name},
            )
        elif isinstance(event, StoryCompleted):
            self._story_duration.record(
                event.duration_seconds,
                {"story_name": event.story_name, "success": event.success},
            )
        elif isinstance(event, FailureOccurred):
            self._failures.add(
                1, {"story_name": event.story_name, "error_type": event.error_type}
            )
            if event.llm_analysis is None:
                with self._lock:
                    self._pending[event.story_id] = time.monotonic()
                    if len(self._pending) > _MAX_PENDING_ANALYSES:
                        self._pending.popitem(last=False)
        elif isinstance(event, LLMAnalysisReady):
            with self._lock:
                started = self._pending.pop(event.story_id, None)
            if started is not None and not event.abandoned:
                self._analysis_latency.record(
                    time.monotonic() - started, {"story_name": event.story_name}
                )
