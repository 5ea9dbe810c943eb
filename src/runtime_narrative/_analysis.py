"""The failure path: capture diagnostics, run the analyzers, build the event.

Nothing here runs while a story succeeds. Everything is guarded: whatever
fails inside is logged on the ``runtime_narrative`` logger and the user's
exception goes on unchanged.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import threading
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Optional

from .diagnostics import FailureDiagnostics, FailureDiagnosticsConfig, capture
from .events import FailureOccurred, LLMAnalysisReady

if TYPE_CHECKING:
    from .story import StoryRuntime

__all__ = [
    "analyzer_timeout",
    "build_failure_event",
    "build_failure_event_async",
    "capture_safely",
]

logger = logging.getLogger("runtime_narrative")

#: Used when an analyzer states no timeout of its own.
DEFAULT_ANALYZER_TIMEOUT = 60.0
ANALYZER_TIMEOUT_ENV = "RUNTIME_NARRATIVE_ANALYZER_TIMEOUT_SECONDS"

# Background analyses still running, kept so they are not garbage collected.
_background: set[Any] = set()


def capture_safely(
    exc: BaseException, config: FailureDiagnosticsConfig
) -> FailureDiagnostics:
    """Capture ``exc``; if capture itself breaks, return what can be said."""
    try:
        return capture(exc, config)
    except Exception as error:
        logger.error(
            "diagnostics capture failed for %s; reporting the bare type",
            type(exc).__name__,
            exc_info=(type(error), error, error.__traceback__),
        )
        name = type(exc).__name__
        return FailureDiagnostics(
            error_type=name,
            error_message="<diagnostics unavailable>",
            filename=None,
            lineno=None,
            function=None,
            source_line=None,
            exception_chain=name,
            exact_cause=f"{name} was raised",
            traceback_text="",
            diagnostics_mode=config.effective_mode,
            primary_frame_reason="",
            frames=(),
            source_snippet=None,
            compressed_stack_summary="",
            hidden_frame_count=0,
            traceback_truncated=False,
            locals_by_frame=None,
            redaction_removed_keys=0,
            capture_error=f"{type(error).__name__}: {error}",
        )


def _rules_diagnosis(diagnostics: FailureDiagnostics) -> Optional[str]:
    try:
        from .analyzers.rules import diagnose
    except ImportError:
        return None
    try:
        return diagnose(diagnostics)
    except Exception as error:
        logger.error(
            "the built-in rules analyzer failed on %s",
            diagnostics.error_type,
            exc_info=(type(error), error, error.__traceback__),
        )
        return None


def stated_timeout(analyzer: object) -> Optional[float]:
    """The analyzer's own ``timeout_seconds``, or None when it states none."""
    own = getattr(analyzer, "timeout_seconds", None)
    return float(own) if isinstance(own, (int, float)) else None


def analyzer_timeout(analyzer: object) -> float:
    """The longest an analyzer may delay a failure, in seconds.

    The analyzer's own ``timeout_seconds``, bounded by the environment
    variable RUNTIME_NARRATIVE_ANALYZER_TIMEOUT_SECONDS when it is set.
    """
    own = stated_timeout(analyzer)
    timeout = own if own is not None else DEFAULT_ANALYZER_TIMEOUT
    raw = os.environ.get(ANALYZER_TIMEOUT_ENV)
    if raw:
        try:
            timeout = min(timeout, float(raw))
        except ValueError:
            logger.warning(
                "%s=%r is not a number of seconds; ignoring it",
                ANALYZER_TIMEOUT_ENV,
                raw,
            )
    return max(timeout, 0.0)


@dataclasses.dataclass(frozen=True)
class _Request:
    """One call of the story's analyzer: which one, with what, for how long."""

    analyzer: object
    kwargs: dict[str, Any]
    timeout: float


def _request(
    runtime: StoryRuntime, stage_name: str, diagnostics: FailureDiagnostics
) -> Optional[_Request]:
    """The analyzer call for this failure; None when no analyzer is set."""
    analyzer = runtime.failure_analyzer
    if analyzer is None:
        return None
    kwargs = {
        "story_name": runtime.story_name,
        "stage_name": stage_name,
        "failure": diagnostics,
        "stage_timeline": runtime.stage_timeline(),
        "progress_percent": runtime.progress_percent,
    }
    return _Request(analyzer, kwargs, analyzer_timeout(analyzer))


def _as_text(result: object, analyzer: object) -> Optional[str]:
    if result is None or isinstance(result, str):
        return result or None
    logger.warning(
        "analyzer %s returned %s, not a string; using its str()",
        type(analyzer).__name__,
        type(result).__name__,
    )
    return str(result)


def _log_analyzer_error(analyzer: object, error: BaseException) -> None:
    logger.error(
        "failure analyzer %s failed (%s: %s); the failure is reported without"
        " its analysis",
        type(analyzer).__name__,
        type(error).__name__,
        error,
        exc_info=(type(error), error, error.__traceback__),
    )


def _log_no_answer(analyzer: object, timeout: float) -> None:
    logger.error(
        "failure analyzer %s gave no answer within %.1fs; going on without it",
        type(analyzer).__name__,
        timeout,
    )


def run_analyzer_sync(
    analyzer: object, kwargs: dict[str, Any], timeout: float
) -> Optional[str]:
    """Call ``analyze_failure`` in a thread, waiting at most ``timeout``."""
    method: Optional[Callable[..., Any]] = getattr(analyzer, "analyze_failure", None)
    if method is None:
        asynchronous = getattr(analyzer, "analyze_failure_async", None)
        if asynchronous is None:
            logger.error(
                "failure analyzer %s has neither analyze_failure nor"
                " analyze_failure_async",
                type(analyzer).__name__,
            )
            return None

        def method(**kw: Any) -> Any:
            return asyncio.run(asynchronous(**kw))

    outcome: list[Any] = []

    def call() -> None:
        try:
            outcome.append(method(**kwargs))
        except BaseException as error:  # reported below, in the story's thread
            outcome.append(error)

    worker = threading.Thread(
        target=call, name="runtime-narrative-analyzer", daemon=True
    )
    worker.start()
    worker.join(timeout)
    if not outcome:
        _log_no_answer(analyzer, timeout)
        return None
    result = outcome[0]
    if isinstance(result, BaseException):
        _log_analyzer_error(analyzer, result)
        return None
    return _as_text(result, analyzer)


async def run_analyzer_async(
    analyzer: object, kwargs: dict[str, Any], timeout: float
) -> Optional[str]:
    """Await ``analyze_failure_async`` (or run the sync one in a thread)."""
    asynchronous = getattr(analyzer, "analyze_failure_async", None)
    try:
        if asynchronous is not None:
            result = await asyncio.wait_for(asynchronous(**kwargs), timeout)
        else:
            loop = asyncio.get_running_loop()
            result = await asyncio.wait_for(
                loop.run_in_executor(
                    None, lambda: run_analyzer_sync(analyzer, kwargs, timeout)
                ),
                timeout + 1.0,
            )
    except asyncio.TimeoutError:
        _log_no_answer(analyzer, timeout)
        return None
    except Exception as error:
        _log_analyzer_error(analyzer, error)
        return None
    return _as_text(result, analyzer)


def _failure_event(
    runtime: StoryRuntime,
    diagnostics: FailureDiagnostics,
    stage_name: str,
    depth: int,
    stage_index: Optional[int],
    *,
    recorded: bool,
    rules: Optional[str],
    llm: Optional[str],
) -> FailureOccurred:
    return FailureOccurred(
        story_id=runtime.story_id,
        story_name=runtime.story_name,
        stage_name=stage_name,
        error_type=diagnostics.error_type,
        error_message=diagnostics.error_message,
        filename=diagnostics.filename,
        lineno=diagnostics.lineno,
        function=diagnostics.function,
        source_line=diagnostics.source_line,
        exception_chain=diagnostics.exception_chain,
        exact_cause=diagnostics.exact_cause,
        llm_analysis=llm,
        stage_timeline=runtime.stage_timeline(),
        progress_percent=runtime.progress_percent,
        completed_stages=runtime.progress_counts()[0],
        total_stages=runtime.progress_counts()[1],
        timestamp=datetime.now(timezone.utc),
        traceback_text=diagnostics.traceback_text,
        diagnostics_mode=diagnostics.diagnostics_mode,
        primary_frame_reason=diagnostics.primary_frame_reason,
        stack_frames=diagnostics.stack_frames,
        source_snippet=diagnostics.source_snippet,
        compressed_stack_summary=diagnostics.compressed_stack_summary,
        hidden_frame_count=diagnostics.hidden_frame_count,
        traceback_truncated=diagnostics.traceback_truncated,
        locals_by_frame=diagnostics.locals_by_frame,
        redaction_removed_keys=diagnostics.redaction_removed_keys,
        parent_story_id=runtime.parent_story_id,
        root_story_id=runtime.root_story_id,
        rules_analysis=rules,
        stage_depth=max(depth, 0),
        chain=tuple(link.to_dict() for link in diagnostics.chain),
        exception_group=diagnostics.group_members,
        recorded=recorded,
        stage_index=stage_index,
    )


def _prepare(
    runtime: StoryRuntime, exc: BaseException
) -> tuple[FailureDiagnostics, Optional[str]]:
    diagnostics = capture_safely(exc, runtime.config)
    rules = _rules_diagnosis(diagnostics)
    if rules is not None:
        diagnostics = dataclasses.replace(diagnostics, rules_analysis=rules)
    return diagnostics, rules


def _ready_event(
    runtime: StoryRuntime,
    stage_name: str,
    analysis: Optional[str],
    *,
    abandoned: bool = False,
) -> LLMAnalysisReady:
    return LLMAnalysisReady(
        story_id=runtime.story_id,
        story_name=runtime.story_name,
        stage_name=stage_name,
        llm_analysis=analysis,
        timestamp=datetime.now(timezone.utc),
        root_story_id=runtime.root_story_id,
        abandoned=abandoned,
    )


def build_failure_event(
    runtime: StoryRuntime,
    exc: BaseException,
    stage_name: str,
    depth: int,
    *,
    recorded: bool,
    is_async: bool,
) -> Optional[FailureOccurred]:
    """Build the FailureOccurred for ``exc`` from synchronous code.

    With ``background_analysis`` the analyzer runs on a thread and
    LLMAnalysisReady follows; otherwise it runs here, bounded by its timeout.
    """
    try:
        diagnostics, rules = _prepare(runtime, exc)
        request = _request(runtime, stage_name, diagnostics)
        llm = _analyze_sync(runtime, stage_name, request)
        return _failure_event(
            runtime,
            diagnostics,
            stage_name,
            depth,
            runtime._attributed_index(exc, stage_name),
            recorded=recorded,
            rules=rules,
            llm=llm,
        )
    except Exception as error:
        _log_unreported(runtime, error)
        return None


async def build_failure_event_async(
    runtime: StoryRuntime, exc: BaseException, stage_name: str, depth: int
) -> Optional[FailureOccurred]:
    """As build_failure_event, awaiting the analyzer (or a background task)."""
    try:
        diagnostics, rules = _prepare(runtime, exc)
        request = _request(runtime, stage_name, diagnostics)
        llm = await _analyze_async(runtime, stage_name, request)
        return _failure_event(
            runtime,
            diagnostics,
            stage_name,
            depth,
            runtime._attributed_index(exc, stage_name),
            recorded=False,
            rules=rules,
            llm=llm,
        )
    except Exception as error:
        _log_unreported(runtime, error)
        return None


def _log_unreported(runtime: StoryRuntime, error: Exception) -> None:
    logger.error(
        "could not report a failure of story %r",
        runtime.story_name,
        exc_info=(type(error), error, error.__traceback__),
    )


def _analyze_sync(
    runtime: StoryRuntime, stage_name: str, request: Optional[_Request]
) -> Optional[str]:
    """The analysis to put on the failure; None when there is none yet."""
    if request is None:
        return None
    if runtime.background_analysis:
        _start_background_thread(runtime, stage_name, request)
        return None
    return run_analyzer_sync(request.analyzer, request.kwargs, request.timeout)


async def _analyze_async(
    runtime: StoryRuntime, stage_name: str, request: Optional[_Request]
) -> Optional[str]:
    """As _analyze_sync, awaiting the analyzer or leaving it to a task."""
    if request is None:
        return None
    if runtime.background_analysis:
        _start_background_task(runtime, stage_name, request)
        return None
    return await run_analyzer_async(request.analyzer, request.kwargs, request.timeout)


def _start_background_thread(
    runtime: StoryRuntime, stage_name: str, request: _Request
) -> None:
    thread: threading.Thread

    def work() -> None:
        try:
            analysis = run_analyzer_sync(
                request.analyzer, request.kwargs, request.timeout
            )
            runtime.dispatcher.emit(_ready_event(runtime, stage_name, analysis))
        except Exception as error:  # this thread's errors have nowhere else to go
            _log_analyzer_error(request.analyzer, error)
        finally:
            _background.discard(thread)

    # Not a daemon: a normal exit waits for the analysis, which its timeout
    # bounds, so LLMAnalysisReady is not lost.
    thread = threading.Thread(target=work, name="runtime-narrative-background-analysis")
    _background.add(thread)
    thread.start()


def _start_background_task(
    runtime: StoryRuntime, stage_name: str, request: _Request
) -> None:
    async def work() -> None:
        try:
            analysis = await run_analyzer_async(
                request.analyzer, request.kwargs, request.timeout
            )
        except asyncio.CancelledError:
            _report_abandoned(runtime, stage_name)
            raise
        await runtime.dispatcher.aemit(_ready_event(runtime, stage_name, analysis))

    task = asyncio.ensure_future(work())
    _background.add(task)
    task.add_done_callback(_background.discard)


def _report_abandoned(runtime: StoryRuntime, stage_name: str) -> None:
    # The loop is shutting down before the analysis finished: say so rather
    # than lose it silently, and without awaiting, as the task is cancelled.
    logger.warning(
        "background analysis for story %r was abandoned: its event loop closed first",
        runtime.story_name,
    )
    runtime.dispatcher.emit(_ready_event(runtime, stage_name, None, abandoned=True))


def pending_background_analyses() -> int:
    """How many background analyses are still running."""
    return len(_background)
