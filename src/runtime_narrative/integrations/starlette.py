"""RuntimeNarrativeMiddleware: every HTTP request of a Starlette or FastAPI app
is a story.

A pure ASGI middleware: the story is opened around the whole call of the
inner app, so a streamed body and BackgroundTasks run inside it, and nothing
is buffered. Websocket and lifespan scopes pass through untouched.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, MutableMapping, Sequence
from typing import Any, Callable, Optional

try:
    from starlette.requests import Request
    from starlette.routing import Match
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "RuntimeNarrativeMiddleware needs Starlette:"
        ' pip install "runtime-narrative[fastapi]"'
    ) from exc

from runtime_narrative.story import http_outcome, story

from ._common import SkipIf, story_options
from ._propagation import story_parent_from_headers

__all__ = ["RuntimeNarrativeMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class RuntimeNarrativeMiddleware:
    """Wrap each HTTP request in a story named ``"METHOD /route"``.

    ``app.add_middleware(RuntimeNarrativeMiddleware, renderers=[...])``.

    * The name uses the route template (``GET /orders/{order_id}``) when one
      of the app's routes matches, and the raw path otherwise.
    * A handler exception fails the story and propagates unchanged.
    * A response with status 500 or above ends the story as failed (without
      a FailureOccurred when no exception was raised); any status is kept as
      the story's outcome (``"404 Not Found"``).
    * An incoming ``x-narrative-story`` header makes the story a sub-story of
      the caller's; with ``propagate_trace_context`` and opentelemetry-api
      installed, incoming W3C trace context is attached for the request.
    * ``skip_if(request)`` returning true lets a request through without a
      story (health checks).

    ``renderers=None`` picks ConsoleRenderer when stderr is a terminal and
    JsonRenderer otherwise, once, when the middleware is built.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        renderers: Optional[Iterable[object]] = None,
        failure_analyzer: Optional[object] = None,
        runtime_environment: Optional[str] = None,
        skip_if: Optional[Callable[[Request], bool]] = None,
        propagate_trace_context: bool = True,
    ) -> None:
        self.app = app
        self.skip_if = skip_if
        self._skip_if = SkipIf(skip_if)
        self.propagate_trace_context = propagate_trace_context
        self._options = story_options(
            renderers, failure_analyzer, runtime_environment, __name__
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._skip_if and self._skip_if(Request(scope)):
            await self.app(scope, receive, send)
            return

        token = None
        if self.propagate_trace_context:
            token = _attach_trace_context(scope["headers"])
        try:
            await self._run_story(scope, receive, send)
        finally:
            if token is not None:
                _detach_trace_context(token)

    async def _run_story(self, scope: Scope, receive: Receive, send: Send) -> None:
        template, module = _route_template(scope, self.app)
        name = f"{scope['method']} {template}"
        options = dict(self._options)
        if module is not None:
            options["module"] = module
        options.update(story_parent_from_headers(scope["headers"]))
        status_code: Optional[int] = None
        response_complete = False
        disconnected = False

        async def receive_and_note_disconnect() -> Message:
            nonlocal disconnected
            message = await receive()
            if message.get("type") == "http.disconnect":
                disconnected = True
            return message

        async def send_and_note_status(message: Message) -> None:
            nonlocal status_code, response_complete, disconnected
            kind = message.get("type")
            if kind == "http.response.start":
                status_code = int(message["status"])
            elif kind == "http.response.body" and not message.get("more_body"):
                response_complete = True
            try:
                await send(message)
            except OSError:  # ASGI 2.4: the client has gone
                disconnected = True
                raise

        gone: Optional[BaseException] = None
        async with story(name, **options) as runtime:
            try:
                await self.app(scope, receive_and_note_disconnect, send_and_note_status)
            except Exception as exc:
                if not (disconnected or _is_client_disconnect(exc)):
                    # Starlette's error middleware, outside this one, answers
                    # 500.
                    runtime.set_outcome(http_outcome(status_code or 500))
                    raise
                # The client left: not a crash of the app. The story ends
                # cancelled and the exception goes on to the server.
                disconnected, gone = True, exc
            if status_code is not None:
                runtime.set_outcome(http_outcome(status_code))
                if status_code >= 500:
                    runtime.mark_failed(f"HTTP {status_code}")
            if disconnected and not response_complete:
                runtime.mark_cancelled("client disconnected")
        if gone is not None:
            raise gone


def _is_client_disconnect(exc: BaseException) -> bool:
    try:
        from starlette.requests import ClientDisconnect
    except ImportError:  # pragma: no cover - present since Starlette 0.13
        return False
    return isinstance(exc, ClientDisconnect)


def _route_template(scope: Scope, inner: object = None) -> tuple[str, Optional[str]]:
    """The matching route's path template and its endpoint's module.

    The middleware runs before routing, so the app's routes are matched here
    the way the router will match them; the raw path is used when none does.
    The routes are those of ``scope["app"]``, which Starlette sets when the
    middleware runs inside it, or else those found by walking down from the
    wrapped app (``app = RuntimeNarrativeMiddleware(starlette_app)``).
    """
    routes = _routes_of(scope.get("app"))
    if routes is None:
        routes = _routes_of(inner)
    found = _match_routes(routes, scope, "") if routes else None
    if found is not None:
        return found
    return scope.get("path") or "/", None


def _routes_of(app: object) -> Optional[Sequence[Any]]:
    """The routes of a Starlette app, router, or of the app some wrappers in."""
    seen: set[int] = set()
    current = app
    while current is not None and id(current) not in seen and len(seen) < 32:
        seen.add(id(current))
        router = getattr(current, "router", None)
        routes = getattr(router, "routes", None)
        if isinstance(routes, Sequence):
            return routes
        routes = getattr(current, "routes", None)
        if isinstance(routes, Sequence) and not isinstance(routes, (str, bytes)):
            return routes
        current = getattr(current, "app", None)
    return None


def _match_routes(
    routes: Sequence[Any], scope: Scope, prefix: str
) -> Optional[tuple[str, Optional[str]]]:
    partial: Optional[tuple[str, Optional[str]]] = None
    for route in routes:
        try:
            match, child_scope = route.matches(scope)
        except Exception:  # a custom route; the router will judge it
            continue
        if match is Match.NONE:
            continue
        found = _describe(route, {**scope, **child_scope}, prefix)
        if found is None:
            continue
        if match is Match.FULL:
            return found
        if partial is None:  # the path matched, the method did not (405)
            partial = found
    return partial


def _describe(
    route: Any, child_scope: Scope, prefix: str
) -> Optional[tuple[str, Optional[str]]]:
    template = prefix + str(getattr(route, "path", ""))
    children = getattr(route, "routes", None)
    if children:
        return _match_routes(children, child_scope, template)
    if hasattr(route, "routes"):  # a Mount of a plain ASGI app
        return template + "/{path:path}", None
    endpoint = getattr(route, "endpoint", None)
    module = getattr(endpoint, "__module__", None)
    return template or "/", module if isinstance(module, str) else None


def _attach_trace_context(headers: Iterable[tuple[bytes, bytes]]) -> Optional[object]:
    """Attach incoming W3C trace context, when opentelemetry is installed."""
    carrier = {
        key.decode("latin-1"): value.decode("latin-1")
        for key, value in headers
        if key in (b"traceparent", b"tracestate")
    }
    if "traceparent" not in carrier:
        return None
    try:
        from opentelemetry import context, propagate
    except ImportError:
        return None
    return context.attach(propagate.extract(carrier))


def _detach_trace_context(token: object) -> None:
    from opentelemetry import context

    context.detach(token)  # type: ignore[arg-type]
