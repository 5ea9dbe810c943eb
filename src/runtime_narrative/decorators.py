"""Decorators that make a function a story or a stage.

Plain functions, ``async def`` functions, generators and async generators
are each wrapped as what they are: a generator's stage covers its whole
iteration, not just the call that creates it. ``functools.wraps`` keeps the
name, docstring and signature.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncGenerator, Generator
from typing import Any, Callable, Optional, TypeVar, overload

from ._context import current_scope
from .stage import Stage
from .story import STORY_KWARGS, Story

__all__ = ["runtime_narrative_stage", "runtime_narrative_story", "wrap_in"]

F = TypeVar("F", bound=Callable[..., Any])


class _NoContext:
    """A context manager for ``with`` and ``async with`` that does nothing."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: object) -> None:
        return None

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc_info: object) -> None:
        return None


_NO_CONTEXT = _NoContext()


def wrap_in(
    function: F, make_context: Callable[[], Any], *, skip_outside_story: bool = False
) -> F:
    """Wrap ``function`` so each call runs inside ``make_context()``.

    ``make_context`` returns a fresh context manager usable with ``with`` and
    ``async with`` (a Story or a Stage). With ``skip_outside_story`` a call made
    while no story is open goes straight to ``function``: one ContextVar read
    is all it costs.
    """
    # Bound once: the check outside a story is then one call, no lookups.
    get_scope = current_scope.get

    def context() -> Any:
        if skip_outside_story and get_scope() is None:
            return _NO_CONTEXT
        return make_context()

    if inspect.isasyncgenfunction(function):

        @functools.wraps(function)
        async def async_gen_wrapper(
            *args: Any, **kwargs: Any
        ) -> AsyncGenerator[Any, Any]:
            # Decided when iteration starts, which is when the stage would open.
            async with context():
                agen = function(*args, **kwargs)
                try:
                    sent = None
                    while True:
                        try:
                            item = await agen.asend(sent)
                        except StopAsyncIteration:
                            return
                        sent = yield item
                finally:
                    await agen.aclose()

        return async_gen_wrapper  # type: ignore[return-value]

    if inspect.isgeneratorfunction(function):

        @functools.wraps(function)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
            with context():
                return (yield from function(*args, **kwargs))

        return gen_wrapper  # type: ignore[return-value]

    if inspect.iscoroutinefunction(function):

        @functools.wraps(function)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            async with context():
                return await function(*args, **kwargs)

        return async_wrapper  # type: ignore[return-value]

    if skip_outside_story:
        # The plain call is the common case of instrumented code: keep the
        # path outside a story free of any context manager.
        @functools.wraps(function)
        def wrapper_when_in_story(*args: Any, **kwargs: Any) -> Any:
            if get_scope() is None:
                return function(*args, **kwargs)
            with make_context():
                return function(*args, **kwargs)

        return wrapper_when_in_story  # type: ignore[return-value]

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with make_context():
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


@overload
def runtime_narrative_story(name: F) -> F: ...
@overload
def runtime_narrative_story(
    name: Optional[str] = None, **story_kwargs: Any
) -> Callable[[F], F]: ...


def runtime_narrative_story(name: Any = None, **story_kwargs: Any) -> Any:
    """Run each call of the decorated function as a story.

    Takes the same keyword arguments as ``story()``. Without a name, the
    function's ``__qualname__`` is the story's name. Also usable bare:
    ``@runtime_narrative_story``.
    """
    if callable(name):
        return runtime_narrative_story()(name)
    unknown = set(story_kwargs) - STORY_KWARGS
    if unknown:
        raise TypeError(
            "runtime_narrative_story() got unknown argument(s) "
            f"{', '.join(sorted(unknown))}; it accepts those of story()"
        )

    # Build one Story now, so bad arguments fail where the decorator is written.
    Story(name or "<validation>", **story_kwargs)

    def decorate(function: F) -> F:
        story_name = name or function.__qualname__
        return wrap_in(function, lambda: Story(story_name, **story_kwargs))

    return decorate


@overload
def runtime_narrative_stage(name: F) -> F: ...
@overload
def runtime_narrative_stage(
    name: Optional[str] = None, *, optional: bool = False, module: Optional[str] = None
) -> Callable[[F], F]: ...


def runtime_narrative_stage(
    name: Any = None, *, optional: bool = False, module: Optional[str] = None
) -> Any:
    """Run each call of the decorated function as a stage of the active story.

    Without a name, the function's ``__qualname__`` is the stage's name.
    Outside a story the call raises StoryNotActiveError, as ``stage()`` does,
    unless ``optional=True``.
    """
    if callable(name):
        return runtime_narrative_stage()(name)

    def decorate(function: F) -> F:
        stage_name = name or function.__qualname__
        stage_module = module or getattr(function, "__module__", None)
        return wrap_in(
            function,
            lambda: Stage(stage_name, optional=optional, module=stage_module),
        )

    return decorate
