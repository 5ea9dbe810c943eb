"""LLMFailureAnalyzer: any OpenAI-compatible ``/v1/chat/completions`` server."""

from __future__ import annotations

from typing import Any, Optional

from ._base import HTTPAnalyzer
from ._http import AnalyzerRequestError

__all__ = ["LLMFailureAnalyzer"]

DEFAULT_ENDPOINT = "http://127.0.0.1:8080/v1/chat/completions"
DEFAULT_MODEL = "gpt-4o-mini"


class LLMFailureAnalyzer(HTTPAnalyzer):
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

    _default_model = DEFAULT_MODEL

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
        super().__init__(
            model, endpoint, timeout_seconds, max_context_chars, connect_timeout_seconds
        )
        self._api_key = api_key
        self.json_mode = json_mode
        self.temperature = temperature

    def _payload(self, prompt: str) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
        }
        if self.json_mode:
            payload["response_format"] = {"type": "json_object"}
        if self.temperature is not None:
            payload["temperature"] = self.temperature
        return payload

    def _headers(self) -> dict[str, str]:
        # A local server needs no key; sending none keeps it out of its logs.
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    def _text(self, answer: Any) -> str:
        try:
            content = answer["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            content = None
        if not isinstance(content, str):
            raise AnalyzerRequestError(
                f"POST {self.endpoint}: the answer has no"
                " choices[0].message.content text"
            )
        return content
