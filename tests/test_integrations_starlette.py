from __future__ import annotations

import asyncio
import io
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import BackgroundTasks, FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

from _uvicorn import serve
from runtime_narrative import (
    ConsoleRenderer,
    JsonRenderer,
    StoryCompleted,
    StoryRecorder,
    stage,
)
from runtime_narrative._context import current_scope
from runtime_narrative.integrations.starlette import RuntimeNarrativeMiddleware
from runtime_narrative.story import StoryRuntime


class OrderError(Exception):
    pass


raised: list[BaseException] = []


def make_app(recorder: StoryRecorder, **options: object) -> FastAPI:
    app = FastAPI()
    app.add_middleware(RuntimeNarrativeMiddleware, renderers=[recorder], **options)

    @app.get("/orders/{order_id}")
    async def get_order(order_id: int) -> dict[str, int]:
        with stage("Load Order"):
            await asyncio.sleep(0)
        with stage("Render"):
            pass
        return {"id": order_id}

    @app.post("/orders")
    async def create_order() -> None:
        with stage("Validate Input"):
            error = OrderError("quantity must be positive")
            raised.append(error)
            raise error

    @app.get("/broken")
    async def broken() -> Response:
        with stage("Ask Upstream"):
            pass
        return PlainTextResponse("upstream down", status_code=503)

    @app.get("/health")
    async def health() -> str:
        return "ok"

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            for number in range(3):
                with stage(f"Chunk {number}"):
                    await asyncio.sleep(0)
                    yield f"chunk {number}\n".encode()

        return StreamingResponse(body(), media_type="text/plain")

    @app.get("/later")
    async def later(tasks: BackgroundTasks) -> str:
        def send_mail() -> None:
            with stage("Send Mail"):
                pass

        tasks.add_task(send_mail)
        return "queued"

    @app.get("/work/{number}")
    async def work(number: int) -> dict[str, str]:
        with stage(f"Work {number}"):
            await asyncio.sleep(0.001 * (number % 5))
        with stage(f"Finish {number}"):
            await asyncio.sleep(0)
        return {"done": str(number)}

    @app.get("/trace")
    async def trace() -> dict[str, str]:
        from opentelemetry import trace as otel_trace

        span_context = otel_trace.get_current_span().get_span_context()
        return {"trace_id": format(span_context.trace_id, "032x")}

    return app


def test_request_is_a_story_named_after_its_route_template() -> None:
    recorder = StoryRecorder()
    client = TestClient(make_app(recorder))

    response = client.get("/orders/42")

    assert response.json() == {"id": 42}
    [started] = recorder.stories_started
    assert started.story_name == "GET /orders/{order_id}"
    assert started.module == __name__
    recorder.assert_stages_completed(["Load Order", "Render"])
    [completed] = recorder.stories_completed
    assert completed.success is True
    assert completed.outcome == "200 OK"


def test_handler_exception_fails_the_story_and_propagates_unchanged() -> None:
    recorder = StoryRecorder()
    client = TestClient(make_app(recorder))
    raised.clear()

    with pytest.raises(OrderError) as caught:
        client.post("/orders")

    assert caught.value is raised[0]
    recorder.assert_stage_failed("Validate Input", "OrderError")
    [completed] = recorder.stories_completed
    assert completed.success is False
    assert completed.status == "failed"
    assert completed.outcome == "500 Internal Server Error"


def test_handler_exception_gives_the_client_a_500() -> None:
    recorder = StoryRecorder()
    client = TestClient(make_app(recorder), raise_server_exceptions=False)

    response = client.post("/orders")

    assert response.status_code == 500
    assert recorder.stories_completed[0].success is False


def test_server_error_status_fails_the_story_without_a_failure_event() -> None:
    recorder = StoryRecorder()
    client = TestClient(make_app(recorder))

    response = client.get("/broken")

    assert response.status_code == 503
    assert recorder.failures == []
    [completed] = recorder.stories_completed
    assert completed.success is False
    assert completed.status == "failed"
    assert completed.outcome == "503 Service Unavailable"


def test_client_error_is_an_outcome_not_a_failure() -> None:
    recorder = StoryRecorder()
    client = TestClient(make_app(recorder))

    response = client.get("/no/such/page")

    assert response.status_code == 404
    [started] = recorder.stories_started
    assert started.story_name == "GET /no/such/page"
    [completed] = recorder.stories_completed
    assert completed.success is True
    assert completed.outcome == "404 Not Found"


def test_wrong_method_is_named_after_the_route_it_reached() -> None:
    recorder = StoryRecorder()
    client = TestClient(make_app(recorder))

    response = client.delete("/orders/7")

    assert response.status_code == 405
    assert recorder.stories_started[0].story_name == "DELETE /orders/{order_id}"
    assert recorder.stories_completed[0].outcome == "405 Method Not Allowed"


def test_mounted_routes_are_named_with_the_full_template() -> None:
    async def item(request: Request) -> Response:
        return PlainTextResponse(request.path_params["item_id"])

    recorder = StoryRecorder()
    app = Starlette(
        routes=[Mount("/api", routes=[Route("/items/{item_id}", item)])],
    )
    app.add_middleware(RuntimeNarrativeMiddleware, renderers=[recorder])

    response = TestClient(app).get("/api/items/9")

    assert response.text == "9"
    assert recorder.stories_started[0].story_name == "GET /api/items/{item_id}"


def test_skip_if_lets_requests_through_without_a_story() -> None:
    recorder = StoryRecorder()
    app = make_app(recorder, skip_if=lambda request: request.url.path == "/health")
    client = TestClient(app)

    response = client.get("/health")

    assert response.json() == "ok"
    assert recorder.events == []


def test_background_tasks_run_inside_the_request_story() -> None:
    recorder = StoryRecorder()
    client = TestClient(make_app(recorder))

    response = client.get("/later")

    assert response.json() == "queued"
    recorder.assert_stages_completed(["Send Mail"])
    assert isinstance(recorder.events[-1], StoryCompleted)


def test_websocket_passes_through_without_a_story() -> None:
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(await websocket.receive_text())
        await websocket.close()

    recorder = StoryRecorder()
    app = Starlette(routes=[WebSocketRoute("/echo", echo)])
    app.add_middleware(RuntimeNarrativeMiddleware, renderers=[recorder])

    with TestClient(app).websocket_connect("/echo") as websocket:
        websocket.send_text("hello")
        reply = websocket.receive_text()

    assert reply == "hello"
    assert recorder.events == []


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("stream", "expected"),
    [(io.StringIO(), JsonRenderer), (FakeTerminal(), ConsoleRenderer)],
    ids=["pipe", "terminal"],
)
def test_default_renderer_depends_on_the_terminal(
    monkeypatch: pytest.MonkeyPatch, stream: io.StringIO, expected: type
) -> None:
    monkeypatch.setattr(sys, "stderr", stream)

    middleware = RuntimeNarrativeMiddleware(make_app(StoryRecorder()))

    [renderer] = middleware._options["renderers"].renderers
    assert isinstance(renderer, expected)


def test_incoming_trace_context_is_attached_for_the_request() -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    recorder = StoryRecorder()
    client = TestClient(make_app(recorder))

    response = client.get(
        "/trace", headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
    )

    assert response.json() == {"trace_id": trace_id}


def test_trace_context_is_left_alone_when_disabled() -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    client = TestClient(make_app(StoryRecorder(), propagate_trace_context=False))

    response = client.get(
        "/trace", headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
    )

    assert response.json() == {"trace_id": "0" * 32}


# -- a real server -----------------------------------------------------------


def test_streamed_body_is_inside_the_story_on_a_real_server() -> None:
    recorder = StoryRecorder()

    with serve(make_app(recorder)) as url, httpx.Client(base_url=url) as client:
        with client.stream("GET", "/stream") as response:
            lines = list(response.iter_lines())

    assert lines == ["chunk 0", "chunk 1", "chunk 2"]
    kinds = [type(event).__name__ for event in recorder.events]
    assert kinds[0] == "StoryStarted"
    assert kinds[-1] == "StoryCompleted"
    recorder.assert_stages_completed(["Chunk 0", "Chunk 1", "Chunk 2"])
    assert recorder.stories_completed[0].success is True


async def test_concurrent_requests_on_a_real_server_are_separate_stories() -> None:
    recorder = StoryRecorder()
    count = 40

    with serve(make_app(recorder)) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            responses = await asyncio.gather(
                *(client.get(f"/work/{number}") for number in range(count))
            )

    assert [r.json() for r in responses] == [{"done": str(n)} for n in range(count)]
    assert len(recorder.stories_started) == count
    assert len({event.story_id for event in recorder.stories_started}) == count
    stages_by_story: dict[str, set[str]] = {}
    for event in recorder.stages_completed:
        stages_by_story.setdefault(event.story_id, set()).add(event.stage_name)
    for names in stages_by_story.values():
        [number] = {name.split()[1] for name in names}
        assert names == {f"Work {number}", f"Finish {number}"}
    assert all(event.success for event in recorder.stories_completed)


# -- a skip_if that raises ------------------------------------------------------


def _broken_skip_if(request: Request) -> bool:
    raise RuntimeError("skip_if is broken")


@pytest.mark.allow_internal_errors
def test_skip_if_that_raises_narrates_the_request(
    internal_errors: list[logging.LogRecord],
) -> None:
    recorder = StoryRecorder()

    with TestClient(make_app(recorder, skip_if=_broken_skip_if)) as client:
        first = client.get("/orders/1")
        second = client.get("/health")

    assert (first.status_code, first.json()) == (200, {"id": 1})
    assert (second.status_code, second.json()) == (200, "ok")
    assert [e.success for e in recorder.stories_completed] == [True, True]
    [record] = internal_errors
    assert record.levelno == logging.ERROR
    assert "skip_if" in record.getMessage()
    assert record.exc_info is not None
    assert "skip_if is broken" in str(record.exc_info[1])


# -- wrapped from outside ---------------------------------------------------------


def _plain_starlette_app() -> Starlette:
    async def item(request: Request) -> Response:
        return PlainTextResponse(request.path_params["item_id"])

    return Starlette(
        routes=[
            Route("/items/{item_id}", item),
            Mount("/api", routes=[Route("/things/{thing_id:int}", item_thing)]),
        ]
    )


async def item_thing(request: Request) -> Response:
    return PlainTextResponse(str(request.path_params["thing_id"]))


def _fastapi_app() -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: str) -> str:
        return item_id

    return app


@pytest.mark.parametrize("build", [_plain_starlette_app, _fastapi_app])
def test_wrapping_from_outside_names_stories_by_route_template(
    build: object,
) -> None:
    recorder = StoryRecorder()
    inner = build()  # type: ignore[operator]
    app = RuntimeNarrativeMiddleware(inner, renderers=[recorder])

    with TestClient(app) as client:
        response = client.get("/items/blue-mug")

    assert response.status_code == 200
    [started] = recorder.stories_started
    assert started.story_name == "GET /items/{item_id}"


def test_wrapping_from_outside_on_a_real_server_both_ways() -> None:
    outside, inside = StoryRecorder(), StoryRecorder()
    wrapped = RuntimeNarrativeMiddleware(_plain_starlette_app(), renderers=[outside])
    added = _plain_starlette_app()
    added.add_middleware(RuntimeNarrativeMiddleware, renderers=[inside])

    for app in (wrapped, added):
        with serve(app) as url, httpx.Client(base_url=url) as client:
            assert client.get("/items/7").text == "7"
            assert client.get("/api/things/3").text == "3"
            assert client.get("/nowhere/9").status_code == 404

    for recorder in (outside, inside):
        names = [event.story_name for event in recorder.stories_started]
        assert names == [
            "GET /items/{item_id}",
            "GET /api/things/{thing_id:int}",
            "GET /nowhere/9",
        ]


# -- a client that disconnects mid-stream -----------------------------------------


def _endless_stream_app(recorder: StoryRecorder, started: list[object]) -> FastAPI:
    app = FastAPI()
    app.add_middleware(RuntimeNarrativeMiddleware, renderers=[recorder])

    @app.get("/endless")
    async def endless() -> StreamingResponse:
        scope = current_scope.get()
        assert scope is not None
        started.append(scope.runtime)

        async def body() -> AsyncIterator[bytes]:
            with stage("First Chunk"):
                yield b"first\n"
            with stage("Wait For More"):
                started.append("waiting")
                await asyncio.Event().wait()  # only a disconnect ends this
                yield b"never\n"

        return StreamingResponse(body(), media_type="text/plain")

    return app


def _wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def test_client_disconnect_mid_stream_cancels_the_story() -> None:
    recorder = StoryRecorder()
    waiting: list[object] = []

    with serve(_endless_stream_app(recorder, waiting)) as url:
        with httpx.Client(base_url=url) as client:
            with client.stream("GET", "/endless") as response:
                first = next(response.iter_lines())
                _wait_for(lambda: len(waiting) == 2)
        _wait_for(lambda: bool(recorder.stories_completed))

    assert first == "first"
    [completed] = recorder.stories_completed
    assert (completed.success, completed.status) == (False, "cancelled")
    assert completed.outcome == "200 OK"
    assert recorder.failures == []
    started = [event.stage_name for event in recorder.stages_started]
    assert started == ["First Chunk", "Wait For More"]
    # The stage open when the client left was ended, as cancelled.
    runtime = waiting[0]
    assert isinstance(runtime, StoryRuntime)
    timeline = runtime.stage_timeline()
    assert "First Chunk=completed" in timeline
    assert "Wait For More=cancelled" in timeline


async def test_send_failing_with_oserror_cancels_the_story() -> None:
    # An ASGI 2.4 server raises OSError from send() once the client is gone.
    recorder = StoryRecorder()
    app = _endless_stream_app(recorder, [])
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/endless",
        "raw_path": b"/endless",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        if message["type"] == "http.response.body" and sent:
            raise OSError("connection reset by peer")
        sent.append(message)

    with pytest.raises(Exception) as caught:
        await app(scope, receive, send)  # type: ignore[arg-type]

    assert type(caught.value).__name__ in {"ClientDisconnect", "OSError"}
    [completed] = recorder.stories_completed
    assert (completed.success, completed.status) == (False, "cancelled")
    assert recorder.failures == []
