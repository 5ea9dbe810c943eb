"""What the language-model analyzers share: their settings, prompt and answer.

Each analyzer keeps its own ``__init__`` (the documented keyword names, order
and defaults differ from one to the next) and only says how to ask its model;
building the prompt and formatting the answer happen here, the same for all.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar, Optional

from runtime_narrative.diagnostics import FailureDiagnostics

from ._http import post_json
from ._prompt import build_prompt, format_answer

__all__ = ["HTTPAnalyzer", "PromptAnalyzer", "default_connect_timeout"]

MODEL_ENV = "RUNTIME_NARRATIVE_MODEL"
# A server that is not running should fail the analysis fast, whatever the
# overall timeout allows for a slow answer.
_CONNECT_TIMEOUT_CAP = 5.0


def default_connect_timeout(timeout_seconds: float) -> float:
    """The connection timeout used when none is given: 5 seconds at most."""
    return min(_CONNECT_TIMEOUT_CAP, timeout_seconds)


class PromptAnalyzer:
    """An analyzer that sends the shared prompt to a model and formats its reply.

    Subclasses set ``_default_model`` and implement :meth:`_ask`.
    """

    _default_model: ClassVar[str]

    def __init__(
        self,
        model: Optional[str],
        timeout_seconds: float,
        max_context_chars: int,
    ) -> None:
        # The environment variable lets one setting pick the model of every
        # analyzer, while an explicit argument still wins.
        self.model = model or os.environ.get(MODEL_ENV) or self._default_model
        self.timeout_seconds = float(timeout_seconds)
        self.max_context_chars = int(max_context_chars)

    def analyze_failure(
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
        return format_answer(self._ask(prompt))

    def _prompt(
        self,
        *,
        story_name: str,
        stage_name: str,
        failure: FailureDiagnostics,
        stage_timeline: str,
        progress_percent: int,
    ) -> str:
        return build_prompt(
            story_name=story_name,
            stage_name=stage_name,
            failure=failure,
            stage_timeline=stage_timeline,
            progress_percent=progress_percent,
            max_context_chars=self.max_context_chars,
        )

    def _ask(self, prompt: str) -> str:
        """The model's raw answer to ``prompt``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        # Only what identifies the analyzer: never a key.
        return f"{type(self).__name__}(model={self.model!r})"


class HTTPAnalyzer(PromptAnalyzer):
    """A PromptAnalyzer that POSTs JSON to an ``endpoint`` over plain HTTP(S).

    Subclasses build the request body (:meth:`_payload`) and read the text out
    of the decoded answer (:meth:`_text`).
    """

    def __init__(
        self,
        model: Optional[str],
        endpoint: str,
        timeout_seconds: float,
        max_context_chars: int,
        connect_timeout_seconds: Optional[float],
    ) -> None:
        super().__init__(model, timeout_seconds, max_context_chars)
        self.endpoint = endpoint
        self.connect_timeout_seconds = (
            float(connect_timeout_seconds)
            if connect_timeout_seconds is not None
            else default_connect_timeout(self.timeout_seconds)
        )

    def _ask(self, prompt: str) -> str:
        answer = post_json(
            self.endpoint,
            self._payload(prompt),
            headers=self._headers(),
            timeout=self.timeout_seconds,
            connect_timeout=self.connect_timeout_seconds,
        )
        return self._text(answer)

    def _payload(self, prompt: str) -> dict[str, Any]:
        raise NotImplementedError

    def _headers(self) -> dict[str, str]:
        return {}

    def _text(self, answer: Any) -> str:
        """The answer's text; raises AnalyzerRequestError when it has none."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(model={self.model!r}, endpoint={self.endpoint!r})"
        )
