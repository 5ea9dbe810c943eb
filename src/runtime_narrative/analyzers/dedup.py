"""DeduplicatingAnalyzer: one analysis per recurring failure."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections import OrderedDict
from typing import Any, Optional

from runtime_narrative._analysis import stated_timeout
from runtime_narrative.diagnostics import FailureDiagnostics

__all__ = ["DeduplicatingAnalyzer", "failure_key"]


def failure_key(failure: FailureDiagnostics) -> str:
    """SHA-256 of the error type, file, line and exception chain."""
    parts = (
        failure.error_type,
        failure.filename or "",
        str(failure.lineno if failure.lineno is not None else ""),
        failure.exception_chain,
    )
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


class DeduplicatingAnalyzer:
    """Wrap an analyzer with an LRU cache of its answers.

    The same failure (same error type, file, line and exception chain)
    recurring in a loop or on every request is analysed once; later ones get
    the cached answer. ``None`` (a timeout, an unreachable server) is never
    cached, and neither is an exception, so the next failure tries again.
    Safe to share between threads; ``analyze_failure_async`` awaits the
    wrapped analyzer's own async method, or runs its sync one in a thread.

    .. versionadded:: 0.1.0
    """

    def __init__(self, analyzer: Any, max_cache_size: int = 256) -> None:
        if max_cache_size < 1:
            raise ValueError(f"max_cache_size must be at least 1; got {max_cache_size}")
        self.analyzer = analyzer
        self.max_cache_size = int(max_cache_size)
        self._cache: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def timeout_seconds(self) -> Optional[float]:
        """The wrapped analyzer's timeout, which bounds this one too."""
        return stated_timeout(self.analyzer)

    def analyze_failure(
        self,
        *,
        story_name: str,
        stage_name: str,
        failure: FailureDiagnostics,
        stage_timeline: str,
        progress_percent: int,
    ) -> Optional[str]:
        key = failure_key(failure)
        cached = self._lookup(key)
        if cached is not None:
            return cached
        result = self.analyzer.analyze_failure(
            story_name=story_name,
            stage_name=stage_name,
            failure=failure,
            stage_timeline=stage_timeline,
            progress_percent=progress_percent,
        )
        return self._store(key, result)

    async def analyze_failure_async(
        self,
        *,
        story_name: str,
        stage_name: str,
        failure: FailureDiagnostics,
        stage_timeline: str,
        progress_percent: int,
    ) -> Optional[str]:
        key = failure_key(failure)
        cached = self._lookup(key)
        if cached is not None:
            return cached
        kwargs: dict[str, Any] = {
            "story_name": story_name,
            "stage_name": stage_name,
            "failure": failure,
            "stage_timeline": stage_timeline,
            "progress_percent": progress_percent,
        }
        asynchronous = getattr(self.analyzer, "analyze_failure_async", None)
        if asynchronous is not None:
            result = await asynchronous(**kwargs)
        else:
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(
                None, lambda: self.analyzer.analyze_failure(**kwargs)
            )
        return self._store(key, result)

    def _lookup(self, key: str) -> Optional[str]:
        with self._lock:
            found = self._cache.get(key)
            if found is None:
                self.misses += 1
                return None
            self._cache.move_to_end(key)
            self.hits += 1
            return found

    def _store(self, key: str, result: Any) -> Optional[str]:
        if result is None:
            return None
        text = result if isinstance(result, str) else str(result)
        with self._lock:
            self._cache[key] = text
            self._cache.move_to_end(key)
            while len(self._cache) > self.max_cache_size:
                self._cache.popitem(last=False)
        return text

    def __len__(self) -> int:
        with self._lock:
            return len(self._cache)

    def clear(self) -> None:
        """Forget every cached answer."""
        with self._lock:
            self._cache.clear()

    def __repr__(self) -> str:
        return (
            f"DeduplicatingAnalyzer({self.analyzer!r},"
            f" max_cache_size={self.max_cache_size})"
        )
