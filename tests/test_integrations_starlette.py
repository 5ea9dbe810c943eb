from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import AsyncIterator

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
from runtime_narrative.integrations.starlette import RuntimeNarrativeMiddleware


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
