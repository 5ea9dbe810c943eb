"""Failure diagnostics: capture an exception once into plain, redacted data.

:func:`capture` turns an exception into :class:`FailureDiagnostics`; every
renderer, analyzer and store reads that data and never the traceback itself.
This package imports only the standard library.
"""

from __future__ import annotations

from ._model import ChainLink, FailureDiagnostics, FrameInfo
from .capture import capture
from .config import (
    DEFAULT_REDACT_KEYS,
    FailureDiagnosticsConfig,
    effective_diagnostics_mode,
)
from .redact import Redactor
from .saferepr import safe_repr

__all__ = [
    "DEFAULT_REDACT_KEYS",
    "ChainLink",
    "FailureDiagnostics",
    "FailureDiagnosticsConfig",
    "FrameInfo",
    "Redactor",
    "capture",
    "effective_diagnostics_mode",
    "safe_repr",
]
