"""gRPC server interceptors: every call is a story named by its method path.

``RuntimeNarrativeInterceptor`` is for ``grpc.server``,
``RuntimeNarrativeAsyncInterceptor`` for ``grpc.aio.server``. Both handle the
four kinds of method; for a streamed response the story lasts until the last
message is sent.

How a call ends:

* the handler returns: the story succeeds, with the status as outcome
  (``"OK"``, or the code the handler set with ``context.set_code``);
* the handler calls ``context.abort(code, details)``: not a crash, so no
  FailureOccurred; the code is the outcome;
* the handler raises: the story fails with the exception, which goes on
  unchanged to gRPC, so the client sees what gRPC gives (``UNKNOWN``).

A status that signals a server-side problem (``UNKNOWN``, ``INTERNAL``,
``UNAVAILABLE``, ``DATA_LOSS``, ``DEADLINE_EXCEEDED``, ``UNIMPLEMENTED``)
ends the story as failed even without an exception; the other codes are
outcomes only, like an HTTP 4xx.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Iterable, Iterator
from typing import Any, Callable, Optional

try:
    import grpc
    import grpc.aio
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        'the gRPC interceptors need grpcio: pip install "runtime-narrative[grpc]"'
    ) from exc

from runtime_narrative.story import StoryRuntime, story

from ._common import story_options
from ._propagation import story_parent_from_headers

__all__ = ["RuntimeNarrativeAsyncInterceptor", "RuntimeNarrativeInterceptor"]

_FAILED_CODES = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
    }
)

_HANDLER_FACTORIES = {
    "unary_unary": grpc.unary_unary_rpc_method_handler,
    "unary_stream": grpc.unary_stream_rpc_method_handler,
    "stream_unary": grpc.stream_unary_rpc_method_handler,
    "stream_stream": grpc.stream_stream_rpc_method_handler,
}


class _Options:
    def __init__(
        self,
        renderers: Optional[Iterable[object]],
        failure_analyzer: Optional[object],
        runtime_environment: Optional[str],
    ) -> None:
        self.story_options = story_options(
            renderers, failure_analyzer, runtime_environment, __name__
        )

    def for_call(self, details: grpc.HandlerCallDetails) -> dict[str, Any]:
        options = dict(self.story_options)
        options.update(story_parent_from_headers(details.invocation_metadata or ()))
        return options


def _rebuild(handler: Any, kind: str, behaviour: Callable[..., Any]) -> Any:
    return _HANDLER_FACTORIES[kind](
        behaviour,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def _kind(handler: Any) -> Optional[str]:
    for kind in _HANDLER_FACTORIES:
        if getattr(handler, kind, None) is not None:
            return kind
    return None


def _status_code(context: Any) -> Any:
    code = getattr(context, "code", None)
    value = code() if callable(code) else None
    if isinstance(value, int):  # the aio context may answer a raw number
        by_number = {status.value[0]: status for status in grpc.StatusCode}
        value = by_number.get(value)
    return value if value is not None else grpc.StatusCode.OK


def _note_status(runtime: StoryRuntime, context: Any) -> None:
    status = _status_code(context)
    runtime.set_outcome(status.name)
    if status in _FAILED_CODES:
        runtime.mark_failed(f"gRPC status {status.name}")


def _aborted(context: Any, exc: BaseException) -> bool:
    """True when ``exc`` is how ``context.abort()`` ended the handler."""
    if isinstance(exc, grpc.aio.AbortError):
        return True
    # The sync server raises a bare Exception from abort() and flags its state.
    state = getattr(context, "_state", None)
    return bool(getattr(state, "aborted", False))


class RuntimeNarrativeInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """A story per call on a ``grpc.server``, named by the full method path.

    ``grpc.server(pool, interceptors=[RuntimeNarrativeInterceptor(...)])``.
    An ``x-narrative-story`` metadata entry makes the story a sub-story of the
    caller's (see ``narrative_metadata()``).

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        *,
        renderers: Optional[Iterable[object]] = None,
        failure_analyzer: Optional[object] = None,
        runtime_environment: Optional[str] = None,
    ) -> None:
        self._options = _Options(renderers, failure_analyzer, runtime_environment)

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Any],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = continuation(handler_call_details)
        kind = _kind(handler)
        if kind is None:
            return handler
        name = handler_call_details.method
        inner = getattr(handler, kind)
        options = self._options.for_call(handler_call_details)
        if handler.response_streaming:

            def stream_behaviour(request: Any, context: Any) -> Iterator[Any]:
                return _stream_story(inner, request, context, name, options)

            return _rebuild(handler, kind, stream_behaviour)

        def unary_behaviour(request: Any, context: Any) -> Any:
            return _unary_story(inner, request, context, name, options)

        return _rebuild(handler, kind, unary_behaviour)


def _unary_story(
    inner: Callable[[Any, Any], Any],
    request: Any,
    context: Any,
    name: str,
    options: dict[str, Any],
) -> Any:
    aborted: Optional[BaseException] = None
    with story(name, **options) as runtime:
        try:
            response = inner(request, context)
        except Exception as exc:
            if not _aborted(context, exc):
                runtime.set_outcome(grpc.StatusCode.UNKNOWN.name)
                raise
            aborted = exc
        _note_status(runtime, context)
    if aborted is not None:
        raise aborted
    return response


def _stream_story(
    inner: Callable[[Any, Any], Iterable[Any]],
    request: Any,
    context: Any,
    name: str,
    options: dict[str, Any],
) -> Iterator[Any]:
    aborted: Optional[BaseException] = None
    with story(name, **options) as runtime:
        try:
            yield from inner(request, context)
        except Exception as exc:
            if not _aborted(context, exc):
                runtime.set_outcome(grpc.StatusCode.UNKNOWN.name)
                raise
            aborted = exc
        _note_status(runtime, context)
    if aborted is not None:
        raise aborted


class RuntimeNarrativeAsyncInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """A story per call on a ``grpc.aio.server``; see RuntimeNarrativeInterceptor.

    Handlers written as ``async def`` (returning a response, or writing with
    ``context.write``) and as async generators are wrapped; a plain function
    handler passes through without a story.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        *,
        renderers: Optional[Iterable[object]] = None,
        failure_analyzer: Optional[object] = None,
        runtime_environment: Optional[str] = None,
    ) -> None:
        self._options = _Options(renderers, failure_analyzer, runtime_environment)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(handler_call_details)
        kind = _kind(handler)
        if kind is None:
            return handler
        name = handler_call_details.method
        inner = getattr(handler, kind)
        options = self._options.for_call(handler_call_details)
        if inspect.isasyncgenfunction(inner):
            # gRPC looks at the handler itself to tell a stream from a
            # coroutine, so the wrapper must be an async generator too.
            async def stream_behaviour(
                request: Any, context: Any
            ) -> AsyncIterator[Any]:
                stream = _async_stream_story(inner, request, context, name, options)
                async for response in stream:
                    yield response

            return _rebuild(handler, kind, stream_behaviour)
        if not inspect.iscoroutinefunction(inner):
            return handler

        async def behaviour(request: Any, context: Any) -> Any:
            return await _async_unary_story(inner, request, context, name, options)

        return _rebuild(handler, kind, behaviour)


async def _async_unary_story(
    inner: Callable[[Any, Any], Awaitable[Any]],
    request: Any,
    context: Any,
    name: str,
    options: dict[str, Any],
) -> Any:
    aborted: Optional[BaseException] = None
    async with story(name, **options) as runtime:
        try:
            response = await inner(request, context)
        except Exception as exc:
            if not _aborted(context, exc):
                runtime.set_outcome(grpc.StatusCode.UNKNOWN.name)
                raise
            aborted = exc
        _note_status(runtime, context)
    if aborted is not None:
        raise aborted
    return response


async def _async_stream_story(
    inner: Callable[[Any, Any], AsyncIterator[Any]],
    request: Any,
    context: Any,
    name: str,
    options: dict[str, Any],
) -> AsyncIterator[Any]:
    aborted: Optional[BaseException] = None
    async with story(name, **options) as runtime:
        try:
            async for response in inner(request, context):
                yield response
        except Exception as exc:
            if not _aborted(context, exc):
                runtime.set_outcome(grpc.StatusCode.UNKNOWN.name)
                raise
            aborted = exc
        _note_status(runtime, context)
    if aborted is not None:
        raise aborted
