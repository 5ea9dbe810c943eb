"""DeduplicatingAnalyzer: cache by failure, never cache None, thread-safe."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional

import pytest

from runtime_narrative import DeduplicatingAnalyzer, FailureAnalyzer
from runtime_narrative.analyzers.dedup import failure_key
from runtime_narrative.testing import StoryRecorder


class Counting:
    """An analyzer that answers from a script and counts its calls."""

    timeout_seconds = 7.0

    def __init__(self, *answers: Optional[str]) -> None:
        self.answers = list(answers)
        self.calls = 0
        self._lock = threading.Lock()

    def analyze_failure(self, *, failure: Any, **_: Any) -> Optional[str]:
        with self._lock:
            self.calls += 1
            if self.answers:
                return self.answers.pop(0)
        return f"analysis of {failure.error_type}"


class AsyncCounting(Counting):
    async def analyze_failure_async(self, *, failure: Any, **_: Any) -> Optional[str]:
        await asyncio.sleep(0)
        return self.analyze_failure(failure=failure)


def _fail(analyzer: Any, value: int = 0) -> Any:
    recorder = StoryRecorder("Dedup", failure_analyzer=analyzer)
    with pytest.raises(ZeroDivisionError):
        with recorder:
            print(1 / value)  # the same line every time
    return recorder.failures[0]


def test_the_same_failure_is_analysed_once() -> None:
    inner = Counting()
    analyzer = DeduplicatingAnalyzer(inner)

    first = _fail(analyzer)
    second = _fail(analyzer)

    assert isinstance(analyzer, FailureAnalyzer)
    assert inner.calls == 1
    assert first.llm_analysis == second.llm_analysis == "analysis of ZeroDivisionError"
    assert (analyzer.hits, analyzer.misses) == (1, 1)


def test_none_is_never_cached() -> None:
    inner = Counting(None, "second try")
    analyzer = DeduplicatingAnalyzer(inner)

    first = _fail(analyzer)
    second = _fail(analyzer)
    third = _fail(analyzer)

    assert first.llm_analysis is None
    assert second.llm_analysis == third.llm_analysis == "second try"
    assert inner.calls == 2


@pytest.mark.allow_internal_errors
def test_an_error_is_not_cached(internal_errors: list[Any]) -> None:
    class Flaky(Counting):
        def analyze_failure(self, *, failure: Any, **_: Any) -> Optional[str]:
            self.calls += 1
            if self.calls == 1:
                raise ConnectionError("model down")
            return "recovered"

    inner = Flaky()
    analyzer = DeduplicatingAnalyzer(inner)

    assert _fail(analyzer).llm_analysis is None
    assert _fail(analyzer).llm_analysis == "recovered"
    assert inner.calls == 2
    assert len(internal_errors) == 1


def test_different_failures_have_different_keys() -> None:
    inner = Counting()
    analyzer = DeduplicatingAnalyzer(inner)
    recorder = StoryRecorder("Two", failure_analyzer=analyzer)

    with pytest.raises(KeyError), recorder:
        {}["a"]
    _fail(analyzer)

    assert inner.calls == 2
    assert len(analyzer) == 2


def test_the_cache_is_bounded_and_least_recently_used_goes_first() -> None:
    inner = Counting()
    analyzer = DeduplicatingAnalyzer(inner, max_cache_size=2)

    for kind in (KeyError, IndexError, KeyError, TypeError, KeyError, IndexError):
        recorder = StoryRecorder("LRU", failure_analyzer=analyzer)
        with pytest.raises(kind), recorder:
            raise kind("x")

    # KeyError stayed cached (used again before TypeError came); IndexError
    # was the least recently used and had to be analysed again.
    assert inner.calls == 4
    assert len(analyzer) == 2
    assert analyzer.timeout_seconds == 7.0
    with pytest.raises(ValueError):
        DeduplicatingAnalyzer(Counting(), max_cache_size=0)


def test_the_key_is_sha256_of_type_file_line_and_chain() -> None:
    failure = _fail(DeduplicatingAnalyzer(Counting()))

    assert len(failure_key(failure)) == 64  # FailureOccurred has the same fields


def test_concurrent_threads_share_the_cache() -> None:
    inner = Counting()
    analyzer = DeduplicatingAnalyzer(inner)
    _fail(analyzer)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: _fail(analyzer).llm_analysis, range(32)))

    assert set(results) == {"analysis of ZeroDivisionError"}
    assert inner.calls == 1
    assert analyzer.hits == 32


async def test_async_delegates_to_the_async_method() -> None:
    inner = AsyncCounting()
    analyzer = DeduplicatingAnalyzer(inner)

    for _ in range(3):
        recorder = StoryRecorder("Async", failure_analyzer=analyzer)
        with pytest.raises(ZeroDivisionError):
            async with recorder:
                print(1 / 0)

    assert inner.calls == 1
    assert recorder.failures[0].llm_analysis == "analysis of ZeroDivisionError"


async def test_async_runs_a_sync_only_analyzer_in_a_thread() -> None:
    seen: list[str] = []

    class SyncOnly(Counting):
        def analyze_failure(self, *, failure: Any, **_: Any) -> Optional[str]:
            seen.append(threading.current_thread().name)
            return super().analyze_failure(failure=failure)

    analyzer = DeduplicatingAnalyzer(SyncOnly())
    recorder = StoryRecorder("Async", failure_analyzer=analyzer)

    with pytest.raises(ZeroDivisionError):
        async with recorder:
            print(1 / 0)

    assert recorder.failures[0].llm_analysis == "analysis of ZeroDivisionError"
    assert seen
    assert seen[0] != threading.main_thread().name
