"""AnthropicFailureAnalyzer: Claude through the official ``anthropic`` SDK.

Needs the ``anthropic`` extra: ``pip install "runtime-narrative[anthropic]"``.
"""

from __future__ import annotations

import os
from typing import Any, Optional

from runtime_narrative.diagnostics import FailureDiagnostics

from ._base import PromptAnalyzer, default_connect_timeout
from ._prompt import format_answer

try:
    import anthropic as _sdk
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "AnthropicFailureAnalyzer needs the anthropic SDK:"
        ' pip install "runtime-narrative[anthropic]"'
    ) from error

__all__ = ["DEFAULT_MODEL", "AnthropicFailureAnalyzer"]

DEFAULT_MODEL = "claude-haiku-4-5-20251001"


class AnthropicFailureAnalyzer(PromptAnalyzer):
    """Diagnose failures with Claude, synchronously or natively async.

    ``api_key`` defaults to ANTHROPIC_API_KEY; ``model`` to
    RUNTIME_NARRATIVE_MODEL, then ``"claude-haiku-4-5-20251001"``.
    ``timeout_seconds`` bounds each request (the SDK's retries are off by
    default, so it bounds the analysis too; ``max_retries`` turns them on).
    ``base_url`` points the SDK at another server (a proxy or gateway).

    ``analyze_failure`` uses ``anthropic.Anthropic``; ``analyze_failure_async``
    uses ``anthropic.AsyncAnthropic`` without a thread.

    .. versionadded:: 0.1.0
    """

    _default_model = DEFAULT_MODEL

    def __init__(
        self,
        model: Optional[str] = None,
        api_key: Optional[str] = None,
        max_tokens: int = 1024,
        timeout_seconds: float = 30.0,
        max_context_chars: int = 8000,
        *,
        base_url: Optional[str] = None,
        max_retries: int = 0,
    ) -> None:
        super().__init__(model, timeout_seconds, max_context_chars)
        self._api_key = api_key or os.environ.get("ANTHROPIC_API_KEY")
        self.max_tokens = int(max_tokens)
        self.base_url = base_url
        self.max_retries = int(max_retries)

    async def analyze_failure_async(
        self,
        *,
        story_name: str,
        stage_name: str,
        failure: FailureDiagnostics,
        stage_timeline: str,
        progress_percent: int,
    ) -> Optional[str]:
        prompt = self._prompt(
            story_name=story_name,
            stage_name=stage_name,
            failure=failure,
            stage_timeline=stage_timeline,
            progress_percent=progress_percent,
        )
        # An async client belongs to the event loop it first ran on; a story
        # may run under a new loop each time, so each analysis has its own.
        async with _sdk.AsyncAnthropic(**self._client_options()) as client:
            message = await client.messages.create(**self._request(prompt))
        return format_answer(_text_of(message))

    def _ask(self, prompt: str) -> str:
        # A client per analysis, closed after it: failures are rare, and a
        # pooled connection kept by an analyzer that is later collected would
        # leak its socket.
        with _sdk.Anthropic(**self._client_options()) as client:
            message = client.messages.create(**self._request(prompt))
        return _text_of(message)

    def _request(self, prompt: str) -> dict[str, Any]:
        return {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "messages": [{"role": "user", "content": prompt}],
        }

    def _client_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "api_key": self._api_key,
            "timeout": _sdk.Timeout(
                self.timeout_seconds,
                connect=default_connect_timeout(self.timeout_seconds),
            ),
            "max_retries": self.max_retries,
        }
        if self.base_url is not None:
            options["base_url"] = self.base_url
        return options


def _text_of(message: Any) -> str:
    blocks = getattr(message, "content", None) or ()
    return "".join(
        getattr(block, "text", "")
        for block in blocks
        if getattr(block, "type", None) == "text"
    )
