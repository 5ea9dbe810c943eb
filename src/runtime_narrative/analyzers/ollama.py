"""OllamaFailureAnalyzer: ask a local Ollama (or compatible) server."""

from __future__ import annotations

import os
from typing import Any, Optional

from runtime_narrative.diagnostics import FailureDiagnostics

from ._http import AnalyzerRequestError, post_json
from ._prompt import build_prompt, format_answer

__all__ = ["OllamaFailureAnalyzer"]

DEFAULT_ENDPOINT = "http://127.0.0.1:11434/api/generate"
DEFAULT_MODEL = "llama3"


class OllamaFailureAnalyzer:
    """Diagnose failures with a model served by Ollama's ``/api/generate``.

    ``model`` defaults to RUNTIME_NARRATIVE_MODEL, then ``"llama3"``.
    ``timeout_seconds`` bounds the whole request; ``connect_timeout_seconds``
    (default: 5 seconds, or ``timeout_seconds`` if smaller) bounds the
    connection alone, so an Ollama that is not running fails fast. The prompt
    never exceeds ``max_context_chars``. ``options`` is passed through as
    Ollama's ``options`` (``{"temperature": 0}``, ``{"num_ctx": 8192}``...).

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        model: Optional[str] = None,
        endpoint: str = DEFAULT_ENDPOINT,
        timeout_seconds: float = 60.0,
        max_context_chars: int = 8000,
        *,
        connect_timeout_seconds: Optional[float] = None,
        options: Optional[dict[str, Any]] = None,
    ) -> None:
        self.model = model or os.environ.get("RUNTIME_NARRATIVE_MODEL") or DEFAULT_MODEL
        self.endpoint = endpoint
        self.timeout_seconds = float(timeout_seconds)
        self.connect_timeout_seconds = (
            float(connect_timeout_seconds)
            if connect_timeout_seconds is not None
            else min(5.0, self.timeout_seconds)
        )
        self.max_context_chars = int(max_context_chars)
        self.options = dict(options) if options else None

    def analyze_failure(
        self,
        *,
        story_name: str,
        stage_name: str,
        failure: FailureDiagnostics,
        stage_timeline: str,
        progress_percent: int,
    ) -> Optional[str]:
        prompt = build_prompt(
            story_name=story_name,
            stage_name=stage_name,
            failure=failure,
            stage_timeline=stage_timeline,
            progress_percent=progress_percent,
            max_context_chars=self.max_context_chars,
        )
        payload: dict[str, Any] = {
            "model": self.model,
            "prompt": prompt,
            "stream": False,
            "format": "json",
        }
        if self.options:
            payload["options"] = self.options
        answer = post_json(
            self.endpoint,
            payload,
            timeout=self.timeout_seconds,
            connect_timeout=self.connect_timeout_seconds,
        )
        text = answer.get("response") if isinstance(answer, dict) else None
        if not isinstance(text, str):
            raise AnalyzerRequestError(
                f"POST {self.endpoint}: the answer has no 'response' text"
            )
        return format_answer(text)

    def __repr__(self) -> str:
        return (
            f"OllamaFailureAnalyzer(model={self.model!r}, endpoint={self.endpoint!r})"
        )
