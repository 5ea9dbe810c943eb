"""The renderers a story gets when it is given none."""

from __future__ import annotations

from typing import Optional

__all__ = ["default_renderers"]

_OFF = frozenset({"0", "false", "no", "off"})


def default_renderers(
    rich_log_file: Optional[str], rich_log_console: Optional[str]
) -> list[object]:
    """ConsoleRenderer, unless RUNTIME_NARRATIVE_RICH_LOG_CONSOLE turns it off;
    plus a RotatingJsonRenderer on RUNTIME_NARRATIVE_RICH_LOG_FILE when set."""
    renderers: list[object] = []
    if rich_log_console is None or rich_log_console.strip().lower() not in _OFF:
        from .console import ConsoleRenderer

        renderers.append(ConsoleRenderer())
    if rich_log_file:
        from .rotating import RotatingJsonRenderer

        renderers.append(RotatingJsonRenderer(rich_log_file))
    return renderers
