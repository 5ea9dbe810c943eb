"""The FailureAnalyzer protocol: what a story calls when a stage fails."""

from __future__ import annotations

from typing import Optional, Protocol, runtime_checkable

from runtime_narrative.diagnostics import FailureDiagnostics

__all__ = ["FailureAnalyzer"]


@runtime_checkable
class FailureAnalyzer(Protocol):
    """Anything with ``analyze_failure(...)`` is a failure analyzer.

    The story calls it with keyword arguments only, after the built-in rules
    ran (their diagnosis is on ``failure.rules_analysis``), and puts the
    returned text on ``FailureOccurred.llm_analysis``. Returning ``None``
    means "nothing to add". ``failure`` is already redacted.

    An analyzer may also define ``async def analyze_failure_async(...)``
    with the same arguments; ``async with story(...)`` awaits it, and runs
    ``analyze_failure`` in a thread when there is none. An optional
    ``timeout_seconds`` attribute bounds how long the story waits.

    .. versionadded:: 0.1.0
    """

    def analyze_failure(
        self,
        *,
        story_name: str,
        stage_name: str,
        failure: FailureDiagnostics,
        stage_timeline: str,
        progress_percent: int,
    ) -> Optional[str]: ...
