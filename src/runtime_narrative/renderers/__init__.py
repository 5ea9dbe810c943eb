"""The renderers shipped with runtime-narrative.

A renderer is any object with ``handle(self, event) -> None``. Only renderers
without optional dependencies are imported here.
"""

from __future__ import annotations

from .console import ConsoleRenderer
from .json import JsonRenderer

__all__ = ["ConsoleRenderer", "JsonRenderer"]
