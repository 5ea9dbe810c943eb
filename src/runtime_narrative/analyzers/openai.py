"""LLMFailureAnalyzer: any OpenAI-compatible ``/v1/chat/completions`` server."""

from __future__ import annotations

import os
from typing import Any, Optional

from runtime_narrative.diagnostics import FailureDiagnostics

from ._http import AnalyzerRequestError, post_json
from ._prompt import build_prompt, format_answer

__all__ = ["LLMFailureAnalyzer"]

DEFAULT_ENDPOINT = "http://127.0.0.1:8080/v1/chat/completions"
DEFAULT_MODEL = "gpt-4o-mini"


class LLMFailureAnalyzer:
    """Diagnose failures through an OpenAI-compatible chat completions API.

    Works with OpenAI, vLLM, llama.cpp, LM Studio and Ollama's OpenAI mode.
    The default ``endpoint`` is a local server
    (``http://127.0.0.1:8080/v1/chat/completions``); pass
    ``"https://api.openai.com/v1/chat/completions"`` and an ``api_key`` to
    use OpenAI. ``model`` defaults to RUNTIME_NARRATIVE_MODEL, then
    ``"gpt-4o-mini"``. The answer is requested as a JSON object
    (``response_format``); set ``json_mode=False`` for servers that reject it.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        model: Optional[str] = None,
        endpoint: str = DEFAULT_ENDPOINT,
        api_key: Optional[str] = None,
        timeout_seconds: float = 60.0,
        max_context_chars: int = 8000,
        *,
        connect_timeout_seconds: Optional[float] = None,
        json_mode: bool = True,
        temperature: Optional[float] = 0.0,
    ) -> None:
        self.model = model or os.environ.get("RUNTIME_NARRATIVE_MODEL") or DEFAULT_MODEL
        self.endpoint = endpoint
        self._api_key = api_key
        self.timeout_seconds = float(timeout_seconds)
        self.connect_timeout_seconds = (
            float(connect_timeout_seconds)
            if connect_timeout_seconds is not None
            else min(5.0, self.timeout_seconds)
        )
        self.max_context_chars = int(max_context_chars)
        self.json_mode = json_mode
        self.temperature = temperature

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
            "messages": [{"role": "user", "content": prompt}],
        }
        if self.json_mode:
            payload["response_format"] = {"type": "json_object"}
        if self.temperature is not None:
            payload["temperature"] = self.temperature
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        answer = post_json(
            self.endpoint,
            payload,
            headers=headers,
            timeout=self.timeout_seconds,
            connect_timeout=self.connect_timeout_seconds,
        )
        return format_answer(_content(answer, self.endpoint))

    def __repr__(self) -> str:
        # Never the key.
        return f"LLMFailureAnalyzer(model={self.model!r}, endpoint={self.endpoint!r})"


def _content(answer: Any, endpoint: str) -> str:
    try:
        content = answer["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        content = None
    if not isinstance(content, str):
        raise AnalyzerRequestError(
            f"POST {endpoint}: the answer has no choices[0].message.content text"
        )
    return content
