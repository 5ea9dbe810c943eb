"""Carrying a story into threads."""

from __future__ import annotations

import contextvars
import functools

# typing costs milliseconds at import; it is needed only by type checkers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, TypeVar

    R = TypeVar("R")

__all__ = ["with_story_context"]


def with_story_context(function: Callable[..., R]) -> Callable[..., R]:
    """Bind ``function`` to a copy of the current context, story included.

    A new thread starts with no story; hand it work through this wrapper and
    its stages join the story that was active here, nested under the stage
    that was open::

        pool.submit(with_story_context(load_batch), batch)

    Each call runs in its own copy of the context, so two calls never see
    each other's stages.
    """
    context = contextvars.copy_context()

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> R:
        return context.copy().run(function, *args, **kwargs)

    return run
