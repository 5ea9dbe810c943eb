"""gRPC interceptors: every call is a story named by its method path.

``RuntimeNarrativeInterceptor`` is for ``grpc.server``,
``RuntimeNarrativeAsyncInterceptor`` for ``grpc.aio.server``. Both handle the
four kinds of method; for a streamed response the story lasts until the last
message is sent.

On the client side, ``NarrativeClientInterceptor`` (for
``grpc.intercept_channel``) and ``narrative_async_client_interceptors()``
(for ``grpc.aio`` channels) put the ids of the story open where a call is
made into its metadata, so the server's story becomes a sub-story of it.

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

import collections
import inspect
from collections.abc import AsyncIterator, Awaitable, Iterable, Iterator, Sequence
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
from ._propagation import add_story_headers, story_parent_from_headers

__all__ = [
    "NarrativeClientInterceptor",
    "RuntimeNarrativeAsyncInterceptor",
    "RuntimeNarrativeInterceptor",
    "narrative_async_client_interceptors",
]

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


def _is_abort(runtime: StoryRuntime, context: Any, exc: BaseException) -> bool:
    """Whether the handler's ``exc`` is an abort; if not, the call is UNKNOWN.

    The caller re-raises a non-abort itself, with a bare ``raise``, so the
    exception leaves with its traceback untouched.
    """
    if _aborted(context, exc):
        return True
    runtime.set_outcome(grpc.StatusCode.UNKNOWN.name)
    return False


class _Interceptor:
    """What the sync and the asyncio server interceptors share."""

    def __init__(
        self,
        *,
        renderers: Optional[Iterable[object]] = None,
        failure_analyzer: Optional[object] = None,
        runtime_environment: Optional[str] = None,
    ) -> None:
        self._options = _Options(renderers, failure_analyzer, runtime_environment)

    def _call_of(
        self, handler: Any, details: grpc.HandlerCallDetails
    ) -> Optional[tuple[str, Any, str, dict[str, Any]]]:
        """(kind, inner behaviour, story name, story options), or None."""
        kind = _kind(handler)
        if kind is None:
            return None
        return (
            kind,
            getattr(handler, kind),
            details.method,
            self._options.for_call(details),
        )


class RuntimeNarrativeInterceptor(_Interceptor, grpc.ServerInterceptor):  # type: ignore[misc]
    """A story per call on a ``grpc.server``, named by the full method path.

    ``grpc.server(pool, interceptors=[RuntimeNarrativeInterceptor(...)])``.
    An ``x-narrative-story`` metadata entry makes the story a sub-story of the
    caller's (see ``NarrativeClientInterceptor``).

    .. versionadded:: 0.1.0
    """

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Any],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = continuation(handler_call_details)
        call = self._call_of(handler, handler_call_details)
        if call is None:
            return handler
        kind, inner, name, options = call
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
            if not _is_abort(runtime, context, exc):
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
            if not _is_abort(runtime, context, exc):
                raise
            aborted = exc
        _note_status(runtime, context)
    if aborted is not None:
        raise aborted


class RuntimeNarrativeAsyncInterceptor(_Interceptor, grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """A story per call on a ``grpc.aio.server``; see RuntimeNarrativeInterceptor.

    Handlers written as ``async def`` (returning a response, or writing with
    ``context.write``) and as async generators are wrapped; a plain function
    handler passes through without a story.

    .. versionadded:: 0.1.0
    """

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(handler_call_details)
        call = self._call_of(handler, handler_call_details)
        if call is None:
            return handler
        kind, inner, name, options = call
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
            if not _is_abort(runtime, context, exc):
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
            if not _is_abort(runtime, context, exc):
                raise
            aborted = exc
        _note_status(runtime, context)
    if aborted is not None:
        raise aborted


# -- client side -------------------------------------------------------------------


def _with_story_metadata(metadata: Any, trace_context: bool) -> Any:
    """``metadata`` plus the story header (and trace context) not yet in it."""
    pairs: list[tuple[str, Any]] = list(metadata or ())
    present = {str(key).lower() for key, _ in pairs}
    extra: dict[str, str] = {}
    add_story_headers(extra, trace_context)
    added = [(key, value) for key, value in extra.items() if key not in present]
    if not added:
        return metadata
    if isinstance(metadata, grpc.aio.Metadata):
        return grpc.aio.Metadata(*pairs, *added)
    return (*pairs, *added)


class _ClientCallDetails(
    collections.namedtuple(
        "_ClientCallDetails",
        (
            "method",
            "timeout",
            "metadata",
            "credentials",
            "wait_for_ready",
            "compression",
        ),
    ),
    grpc.ClientCallDetails,  # type: ignore[misc]
):
    """The details of a sync call, with the metadata replaced."""


def _sync_details(details: Any, trace_context: bool) -> Any:
    metadata = _with_story_metadata(details.metadata, trace_context)
    if metadata is details.metadata:
        return details
    return _ClientCallDetails(
        details.method,
        details.timeout,
        metadata,
        details.credentials,
        getattr(details, "wait_for_ready", None),
        getattr(details, "compression", None),
    )


class NarrativeClientInterceptor(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[misc]
    grpc.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    """Send the caller's story ids with every call of a sync channel.

    ``channel = grpc.intercept_channel(channel, NarrativeClientInterceptor())``.
    Each call made while a story is open carries the ``x-narrative-story``
    metadata entry, so a server with ``RuntimeNarrativeInterceptor`` makes its
    story a sub-story of the caller's. Outside a story nothing is added, and
    an entry the caller set itself is kept. With ``trace_context=True`` and
    opentelemetry-api installed, W3C ``traceparent``/``tracestate`` are added
    too when not already set.

    .. versionadded:: 0.1.0
    """

    def __init__(self, *, trace_context: bool = True) -> None:
        self.trace_context = trace_context

    def intercept_unary_unary(
        self, continuation: Callable[[Any, Any], Any], details: Any, request: Any
    ) -> Any:
        return continuation(_sync_details(details, self.trace_context), request)

    def intercept_unary_stream(
        self, continuation: Callable[[Any, Any], Any], details: Any, request: Any
    ) -> Any:
        return continuation(_sync_details(details, self.trace_context), request)

    def intercept_stream_unary(
        self, continuation: Callable[[Any, Any], Any], details: Any, requests: Any
    ) -> Any:
        return continuation(_sync_details(details, self.trace_context), requests)

    def intercept_stream_stream(
        self, continuation: Callable[[Any, Any], Any], details: Any, requests: Any
    ) -> Any:
        return continuation(_sync_details(details, self.trace_context), requests)


class _AsyncClientInterceptor:
    """The part of the asyncio client interceptors that is the same for all."""

    def __init__(self, trace_context: bool) -> None:
        self.trace_context = trace_context

    def _details(self, details: Any) -> Any:
        metadata = _with_story_metadata(details.metadata, self.trace_context)
        if metadata is details.metadata:
            return details
        return grpc.aio.ClientCallDetails(
            details.method,
            details.timeout,
            metadata,
            details.credentials,
            details.wait_for_ready,
        )


class _AsyncUnaryUnary(_AsyncClientInterceptor, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_unary(
        self, continuation: Callable[[Any, Any], Any], details: Any, request: Any
    ) -> Any:
        return await continuation(self._details(details), request)


class _AsyncUnaryStream(
    _AsyncClientInterceptor,
    grpc.aio.UnaryStreamClientInterceptor,  # type: ignore[misc]
):
    async def intercept_unary_stream(
        self, continuation: Callable[[Any, Any], Any], details: Any, request: Any
    ) -> Any:
        return await continuation(self._details(details), request)


class _AsyncStreamUnary(
    _AsyncClientInterceptor,
    grpc.aio.StreamUnaryClientInterceptor,  # type: ignore[misc]
):
    async def intercept_stream_unary(
        self, continuation: Callable[[Any, Any], Any], details: Any, requests: Any
    ) -> Any:
        return await continuation(self._details(details), requests)


class _AsyncStreamStream(
    _AsyncClientInterceptor,
    grpc.aio.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    async def intercept_stream_stream(
        self, continuation: Callable[[Any, Any], Any], details: Any, requests: Any
    ) -> Any:
        return await continuation(self._details(details), requests)


def narrative_async_client_interceptors(
    *, trace_context: bool = True
) -> Sequence[grpc.aio.ClientInterceptor]:
    """Interceptors that send the caller's story ids with every asyncio call.

    ``grpc.aio.insecure_channel(target,
    interceptors=narrative_async_client_interceptors())``. One interceptor per
    kind of method, because a ``grpc.aio`` channel files each interceptor
    under a single kind; together they cover all four. What they add is what
    ``NarrativeClientInterceptor`` adds. A call's story is the one open where
    the call is made.

    .. versionadded:: 0.1.0
    """
    return [
        kind(trace_context)
        for kind in (
            _AsyncUnaryUnary,
            _AsyncUnaryStream,
            _AsyncStreamUnary,
            _AsyncStreamStream,
        )
    ]
