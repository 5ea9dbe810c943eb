"""Failure analyzers: the built-in rules, and optional language-model analyzers.

Each analyzer is loaded on first use, so importing this package imports no
HTTP client and no optional dependency::

    from runtime_narrative.analyzers import OllamaFailureAnalyzer
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "AnthropicFailureAnalyzer",
    "DeduplicatingAnalyzer",
    "FailureAnalyzer",
    "LLMFailureAnalyzer",
    "OllamaFailureAnalyzer",
    "RulesFailureAnalyzer",
]

_LAZY: dict[str, str] = {
    "AnthropicFailureAnalyzer": "anthropic",
    "DeduplicatingAnalyzer": "dedup",
    "FailureAnalyzer": "protocol",
    "LLMFailureAnalyzer": "openai",
    "OllamaFailureAnalyzer": "ollama",
    "RulesFailureAnalyzer": "rules",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{module_name}")
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover - names for type checkers and IDEs
    from .anthropic import AnthropicFailureAnalyzer
    from .dedup import DeduplicatingAnalyzer
    from .ollama import OllamaFailureAnalyzer
    from .openai import LLMFailureAnalyzer
    from .protocol import FailureAnalyzer
    from .rules import RulesFailureAnalyzer
