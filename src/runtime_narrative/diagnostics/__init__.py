"""Failure diagnostics: capture an exception once into plain, redacted data.

:func:`capture` turns an exception into :class:`FailureDiagnostics`; every
renderer, analyzer and store reads that data and never the traceback itself.
This package imports only the standard library, and only the configuration
eagerly: capture and redaction load on the first failure, so a program that
never fails never pays for them.
"""

from __future__ import annotations

import importlib

from .config import (
    DEFAULT_REDACT_KEYS,
    FailureDiagnosticsConfig,
    effective_diagnostics_mode,
)

# typing costs milliseconds at import; it is needed only by type checkers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "DEFAULT_REDACT_KEYS",
    "ChainLink",
    "FailureDiagnostics",
    "FailureDiagnosticsConfig",
    "FrameInfo",
    "Redactor",
    "build_enriched_failure",
    "capture",
    "effective_diagnostics_mode",
    "safe_repr",
]

_LAZY = {
    "ChainLink": "_model",
    "FailureDiagnostics": "_model",
    "FrameInfo": "_model",
    "capture": "_capture",
    "build_enriched_failure": "_capture",
    "Redactor": "redact",
    "safe_repr": "saferepr",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module_name}"), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:  # pragma: no cover
    from ._capture import build_enriched_failure, capture
    from ._model import ChainLink, FailureDiagnostics, FrameInfo
    from .redact import Redactor
    from .saferepr import safe_repr
