"""Django middlewares: every request is a story.

Configured from the ``RUNTIME_NARRATIVE`` setting, a dict with the optional
keys ``renderers``, ``failure_analyzer`` (or ``analyzer``),
``runtime_environment`` (or ``environment``) and ``skip_if`` (a callable
taking the request). The documented import path is
``runtime_narrative.middleware_django``.
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any, Callable, Optional

try:
    from asgiref.sync import iscoroutinefunction, markcoroutinefunction
    from django.conf import settings
    from django.urls import Resolver404, resolve
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        'the Django middlewares need Django: pip install "runtime-narrative[django]"'
    ) from exc

from runtime_narrative.story import Story, StoryRuntime, http_outcome, story

from ._common import SkipIf, story_options
from ._propagation import story_parent_from_headers

__all__ = ["RuntimeNarrativeDjangoMiddleware", "RuntimeNarrativeDjangoSyncMiddleware"]

# Where process_exception leaves the view's exception for __call__ to find.
_EXCEPTION_ATTRIBUTE = "_runtime_narrative_exception"


class RuntimeNarrativeDjangoSyncMiddleware:
    """A story per request, for WSGI (sync) Django.

    The story is named ``"METHOD /route"`` with the URL pattern when the path
    resolves (``GET /orders/<int:order_id>/``), the raw path otherwise. A view
    exception is recorded (through ``process_exception``) and then left to
    Django's own handling, which usually answers 500; a response of 500 or
    above fails the story. A streamed response keeps the story open until
    its last chunk is sent, and stages inside the streamed generator belong
    to it.

    .. versionadded:: 0.1.0
    """

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        config: dict[str, Any] = dict(getattr(settings, "RUNTIME_NARRATIVE", {}) or {})
        self._options = story_options(
            config.get("renderers"),
            config.get("failure_analyzer", config.get("analyzer")),
            config.get("runtime_environment", config.get("environment")),
            __name__,
        )
        self._skip_if = SkipIf(config.get("skip_if"))

    def process_exception(self, request: Any, exception: Exception) -> None:
        """Remember the view's exception; Django goes on handling it."""
        setattr(request, _EXCEPTION_ATTRIBUTE, exception)

    def __call__(self, request: Any) -> Any:
        if self._skip_if(request):
            return self.get_response(request)
        # The story lives in a context of its own, so it cannot outlive the
        # request in this (reused) thread, yet can be resumed while a
        # streamed body is sent.
        context = contextvars.copy_context()
        return context.run(self._respond, request, context)

    def _open(self, request: Any) -> Story:
        options = dict(self._options)
        options.update(story_parent_from_headers(request.headers))
        return story(f"{request.method} {_route(request)}", **options)

    def _respond(self, request: Any, context: contextvars.Context) -> Any:
        narrative = self._open(request)
        runtime = narrative.__enter__()
        try:
            response = self.get_response(request)
        except BaseException as exc:
            runtime.set_outcome(http_outcome(500))
            narrative.__exit__(type(exc), exc, exc.__traceback__)
            raise
        failure = _note_response(runtime, request, response)
        if failure is None and getattr(response, "streaming", False):
            if getattr(response, "is_async", False):
                response.streaming_content = _async_then_close(
                    response.streaming_content, narrative
                )
            else:
                response.streaming_content = _then_close(
                    response.streaming_content, narrative, context
                )
            return response
        _close(narrative, failure)
        return response


class RuntimeNarrativeDjangoMiddleware(RuntimeNarrativeDjangoSyncMiddleware):
    """A story per request, for ASGI (async) and WSGI Django alike.

    Runs as a coroutine when the rest of the chain is async, and as the sync
    middleware otherwise; behaves as ``RuntimeNarrativeDjangoSyncMiddleware``.

    .. versionadded:: 0.1.0
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        super().__init__(get_response)
        self._is_async = iscoroutinefunction(get_response)
        if self._is_async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self._is_async:
            return self._acall(request)
        return super().__call__(request)

    async def _acall(self, request: Any) -> Any:
        if self._skip_if(request):
            return await self.get_response(request)
        narrative = self._open(request)
        runtime = await narrative.__aenter__()
        try:
            response = await self.get_response(request)
        except BaseException as exc:
            runtime.set_outcome(http_outcome(500))
            await narrative.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        failure = _note_response(runtime, request, response)
        if failure is None and getattr(response, "streaming", False):
            # The body is sent from this same task, after the middlewares
            # return; the story stays open in it until the last chunk.
            if getattr(response, "is_async", False):
                response.streaming_content = _async_then_close(
                    response.streaming_content, narrative
                )
            else:
                response.streaming_content = _then_close(
                    response.streaming_content, narrative, None
                )
            return response
        if failure is None:
            await narrative.__aexit__(None, None, None)
        else:
            await narrative.__aexit__(type(failure), failure, failure.__traceback__)
        return response


def _route(request: Any) -> str:
    """The URL pattern the path resolves to, or the raw path."""
    try:
        match = resolve(request.path_info, getattr(request, "urlconf", None))
    except Resolver404:
        return str(request.path)
    route = getattr(match, "route", None)
    return f"/{route}" if route else str(request.path)


def _note_response(
    runtime: StoryRuntime, request: Any, response: Any
) -> Optional[BaseException]:
    """Set the outcome; return the view exception to fail the story with.

    Only an exception that Django turned into a 5xx response fails the story.
    One it answered with a 4xx (Http404, PermissionDenied, BadRequest,
    SuspiciousOperation) is the client's error, like a returned 404: the
    story succeeds with that outcome.
    """
    status_code = int(getattr(response, "status_code", 200))
    runtime.set_outcome(http_outcome(status_code))
    exc: Optional[BaseException] = request.__dict__.pop(_EXCEPTION_ATTRIBUTE, None)
    if status_code < 500:
        return None
    if exc is None:
        runtime.mark_failed(f"HTTP {status_code}")
    return exc


def _close(narrative: Story, exc: Optional[BaseException]) -> None:
    if exc is None:
        narrative.__exit__(None, None, None)
    else:
        narrative.__exit__(type(exc), exc, exc.__traceback__)


def _then_close(
    content: Iterable[Any], narrative: Story, context: Optional[contextvars.Context]
) -> Iterator[Any]:
    """Yield the streamed chunks inside the story, then close it."""
    iterator = iter(content)
    run = context.run if context is not None else _call
    try:
        while True:
            try:
                chunk = run(next, iterator)
            except StopIteration:
                break
            yield chunk
    except BaseException as exc:
        run(narrative.__exit__, type(exc), exc, exc.__traceback__)
        raise
    run(narrative.__exit__, None, None, None)


def _call(function: Callable[..., Any], *args: Any) -> Any:
    return function(*args)


async def _async_then_close(
    content: AsyncIterator[Any], narrative: Story
) -> AsyncIterator[Any]:
    try:
        async for chunk in content:
            yield chunk
    except BaseException as exc:
        await narrative.__aexit__(type(exc), exc, exc.__traceback__)
        raise
    await narrative.__aexit__(None, None, None)
