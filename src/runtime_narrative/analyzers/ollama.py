"""OllamaFailureAnalyzer: ask a local Ollama (or compatible) server."""

from __future__ import annotations

from typing import Any, Optional

from ._base import HTTPAnalyzer
from ._http import AnalyzerRequestError

__all__ = ["OllamaFailureAnalyzer"]

DEFAULT_ENDPOINT = "http://127.0.0.1:11434/api/generate"
DEFAULT_MODEL = "llama3"


class OllamaFailureAnalyzer(HTTPAnalyzer):
    """Diagnose failures with a model served by Ollama's ``/api/generate``.

    ``model`` defaults to RUNTIME_NARRATIVE_MODEL, then ``"llama3"``.
    ``timeout_seconds`` bounds the whole request; ``connect_timeout_seconds``
    (default: 5 seconds, or ``timeout_seconds`` if smaller) bounds the
    connection alone, so an Ollama that is not running fails fast. The prompt
    never exceeds ``max_context_chars``. ``options`` is passed through as
    Ollama's ``options`` (``{"temperature": 0}``, ``{"num_ctx": 8192}``...).

    .. versionadded:: 0.1.0
    """

    _default_model = DEFAULT_MODEL

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
        super().__init__(
            model, endpoint, timeout_seconds, max_context_chars, connect_timeout_seconds
        )
        self.options = dict(options) if options else None

    def _payload(self, prompt: str) -> dict[str, Any]:
        # One JSON answer, not a stream of partial ones.
        payload: dict[str, Any] = {
            "model": self.model,
            "prompt": prompt,
            "stream": False,
            "format": "json",
        }
        if self.options:
            payload["options"] = self.options
        return payload

    def _text(self, answer: Any) -> str:
        text = answer.get("response") if isinstance(answer, dict) else None
        if not isinstance(text, str):
            raise AnalyzerRequestError(
                f"POST {self.endpoint}: the answer has no 'response' text"
            )
        return text
