"""Per-context state: the active story and its stage stack.

One ContextVar holds the innermost open scope. A scope is immutable and points
to its parent, so the stage stack is a persistent linked list: asyncio tasks
and threads given a copied context each see their own stack, and a sibling's
stages can never appear in it.
"""

from __future__ import annotations

from contextvars import ContextVar

# typing costs milliseconds at import; it is needed only by type checkers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

    from .story import StoryRuntime

__all__ = ["Scope", "current_scope", "has_active_story"]


class Scope:
    """A story, or a stage of it. Never mutated after creation.

    The story's own scope has ``stage_name`` None and ``depth`` -1, so a
    top-level stage has depth 0.
    """

    __slots__ = ("depth", "parent", "runtime", "stage_index", "stage_name")

    def __init__(
        self,
        runtime: StoryRuntime,
        stage_name: Optional[str],
        stage_index: int,
        parent: Optional[Scope],
        depth: int,
    ) -> None:
        self.runtime = runtime
        self.stage_name = stage_name
        self.stage_index = stage_index
        self.parent = parent
        self.depth = depth

    def encloses(self, other: Optional[Scope]) -> bool:
        """True when ``other`` is this scope or one opened inside it."""
        while other is not None:
            if other is self:
                return True
            other = other.parent
        return False


current_scope: ContextVar[Optional[Scope]] = ContextVar(
    "runtime_narrative_scope", default=None
)


def has_active_story() -> bool:
    """Return True when a story is open in the current context (task or thread)."""
    return current_scope.get() is not None


def leave(scope: Scope) -> None:
    """Close ``scope`` in the current context.

    A ContextVar token cannot be used here: a generator holding a stage may be
    closed from another context (by the garbage collector, say), where the
    token is invalid. So the scope's parent is restored only when the scope is
    still on this context's stack; scopes left open above it (an inner stage
    of a generator that was never resumed) are closed with it.
    """
    current = current_scope.get()
    if current is scope or scope.encloses(current):
        current_scope.set(scope.parent)
