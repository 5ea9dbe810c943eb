"""Errors the library raises into user code, each saying what to do."""

from __future__ import annotations

__all__ = ["StoryNotActiveError"]


class StoryNotActiveError(RuntimeError):
    """``stage()`` was entered with no story open in this context.

    Open a ``story()`` first, or pass ``optional=True`` to make the stage a
    no-op outside a story. Work handed to a thread pool joins the story only
    when it carries the context: submit ``with_story_context(fn)``.
    """
