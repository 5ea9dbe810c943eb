from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import django
import httpx
import pytest
from django.conf import settings

from _uvicorn import serve
from runtime_narrative import StoryRecorder, stage

RECORDER = StoryRecorder()
ASYNC_MIDDLEWARE = (
    "runtime_narrative.middleware_django.RuntimeNarrativeDjangoMiddleware"
)
SYNC_MIDDLEWARE = (
    "runtime_narrative.middleware_django.RuntimeNarrativeDjangoSyncMiddleware"
)

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="test-only-not-secret",
        ALLOWED_HOSTS=["testserver", "127.0.0.1"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=[ASYNC_MIDDLEWARE],
        INSTALLED_APPS=[],
        DATABASES={},
        RUNTIME_NARRATIVE={
            "renderers": [RECORDER],
            "skip_if": lambda request: request.path == "/health/",
        },
    )
    django.setup()

from django.core.asgi import get_asgi_application  # noqa: E402
from django.core.exceptions import (  # noqa: E402
    BadRequest,
    PermissionDenied,
    SuspiciousOperation,
)
from django.http import (  # noqa: E402
    Http404,
    HttpRequest,
    HttpResponse,
    JsonResponse,
    StreamingHttpResponse,
)
from django.test import AsyncClient, Client, override_settings  # noqa: E402
from django.urls import include, path  # noqa: E402


class OrderError(Exception):
    pass


raised: list[BaseException] = []


def order(request: HttpRequest, order_id: int) -> HttpResponse:
    with stage("Load Order"):
        pass
    with stage("Render"):
        return JsonResponse({"id": order_id})


async def async_order(request: HttpRequest, order_id: int) -> HttpResponse:
    with stage(f"Load Order {order_id}"):
        await asyncio.sleep(0.001 * (order_id % 4))
    with stage(f"Render {order_id}"):
        return JsonResponse({"id": order_id})


def fail(request: HttpRequest) -> HttpResponse:
    with stage("Validate Input"):
        error = OrderError("quantity must be positive")
        raised.append(error)
        raise error


async def async_fail(request: HttpRequest) -> HttpResponse:
    with stage("Validate Input"):
        raise OrderError("async quantity must be positive")


def broken(request: HttpRequest) -> HttpResponse:
    return HttpResponse("upstream down", status=503)


def health(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


def stream(request: HttpRequest) -> StreamingHttpResponse:
    def body() -> Iterator[bytes]:
        for number in range(3):
            with stage(f"Chunk {number}"):
                yield f"chunk {number}\n".encode()

    return StreamingHttpResponse(body())


def async_stream(request: HttpRequest) -> StreamingHttpResponse:
    async def body() -> AsyncIterator[bytes]:
        for number in range(3):
            with stage(f"Chunk {number}"):
                await asyncio.sleep(0)
                yield f"chunk {number}\n".encode()

    return StreamingHttpResponse(body())


def item(request: HttpRequest, slug: str) -> HttpResponse:
    return HttpResponse(slug)


CLIENT_ERRORS: dict[str, tuple[type[Exception], int]] = {
    "missing": (Http404, 404),
    "denied": (PermissionDenied, 403),
    "suspicious": (SuspiciousOperation, 400),
    "bad": (BadRequest, 400),
}


def client_error(request: HttpRequest, kind: str) -> HttpResponse:
    raise CLIENT_ERRORS[kind][0](f"view says {kind}")


async def async_client_error(request: HttpRequest, kind: str) -> HttpResponse:
    await asyncio.sleep(0)
    raise CLIENT_ERRORS[kind][0](f"async view says {kind}")


urlpatterns = [
    path("orders/<int:order_id>/", order),
    path("async/orders/<int:order_id>/", async_order),
    path("fail/", fail),
    path("async/fail/", async_fail),
    path("broken/", broken),
    path("health/", health),
    path("stream/", stream),
    path("async/stream/", async_stream),
    path("raises/<str:kind>/", client_error),
    path("async/raises/<str:kind>/", async_client_error),
    path("api/", include([path("items/<slug:slug>/", item)])),
]


@pytest.fixture(autouse=True)
def recorder() -> Iterator[StoryRecorder]:
    RECORDER.clear()
    raised.clear()
    yield RECORDER
    RECORDER.clear()


both_middlewares = pytest.mark.parametrize(
    "middleware", [ASYNC_MIDDLEWARE, SYNC_MIDDLEWARE], ids=["async", "sync"]
)


@both_middlewares
def test_request_is_a_story_named_after_the_url_pattern(
    recorder: StoryRecorder, middleware: str
) -> None:
    with override_settings(MIDDLEWARE=[middleware]):
        response = Client().get("/orders/42/")

    assert response.json() == {"id": 42}
    [started] = recorder.stories_started
    assert started.story_name == "GET /orders/<int:order_id>/"
    recorder.assert_stages_completed(["Load Order", "Render"])
    [completed] = recorder.stories_completed
    assert (completed.success, completed.outcome) == (True, "200 OK")


def test_included_patterns_are_named_in_full(recorder: StoryRecorder) -> None:
    response = Client().get("/api/items/blue-mug/")

    assert response.content == b"blue-mug"
    assert recorder.stories_started[0].story_name == "GET /api/items/<slug:slug>/"


@both_middlewares
def test_view_exception_fails_the_story_and_reaches_django_unchanged(
    recorder: StoryRecorder, middleware: str
) -> None:
    with override_settings(MIDDLEWARE=[middleware]):
        with pytest.raises(OrderError) as caught:
            Client().post("/fail/")

    assert caught.value is raised[0]
    recorder.assert_stage_failed("Validate Input", "OrderError")
    [completed] = recorder.stories_completed
    assert (completed.success, completed.status) == (False, "failed")
    assert completed.outcome == "500 Internal Server Error"


def test_django_still_answers_500_for_a_view_exception(
    recorder: StoryRecorder,
) -> None:
    response = Client(raise_request_exception=False).post("/fail/")

    assert response.status_code == 500
    assert len(recorder.failures) == 1
    assert recorder.stories_completed[0].success is False


def test_server_error_status_fails_and_client_error_does_not(
    recorder: StoryRecorder,
) -> None:
    client = Client()

    broken_response = client.get("/broken/")
    missing_response = client.get("/no/such/page/")

    assert (broken_response.status_code, missing_response.status_code) == (503, 404)
    assert recorder.failures == []
    first, second = recorder.stories_completed
    assert (first.success, first.outcome) == (False, "503 Service Unavailable")
    assert (second.success, second.outcome) == (True, "404 Not Found")
    assert recorder.stories_started[1].story_name == "GET /no/such/page/"


def test_skip_if_from_settings_lets_a_request_through(recorder: StoryRecorder) -> None:
    response = Client().get("/health/")

    assert response.content == b"ok"
    assert recorder.events == []


@both_middlewares
@pytest.mark.parametrize("kind", sorted(CLIENT_ERRORS))
@pytest.mark.parametrize("prefix", ["", "/async"], ids=["sync-view", "async-view"])
def test_raised_client_error_succeeds_with_its_outcome(
    recorder: StoryRecorder, middleware: str, kind: str, prefix: str
) -> None:
    with override_settings(MIDDLEWARE=[middleware]):
        response = Client().get(f"{prefix}/raises/{kind}/")

    status = CLIENT_ERRORS[kind][1]
    assert response.status_code == status
    assert recorder.failures == []
    [completed] = recorder.stories_completed
    assert (completed.success, completed.status) == (True, "success")
    assert completed.outcome is not None
    assert completed.outcome.startswith(f"{status} ")


async def test_raised_client_error_under_the_async_client(
    recorder: StoryRecorder,
) -> None:
    response = await AsyncClient().get("/async/raises/missing/")

    assert response.status_code == 404
    assert recorder.failures == []
    [completed] = recorder.stories_completed
    assert (completed.success, completed.outcome) == (True, "404 Not Found")


def _broken_skip_if(request: HttpRequest) -> bool:
    raise RuntimeError("skip_if is broken")


@both_middlewares
@pytest.mark.allow_internal_errors
def test_skip_if_that_raises_narrates_the_request(
    recorder: StoryRecorder, middleware: str, internal_errors: list[Any]
) -> None:
    config = {"renderers": [recorder], "skip_if": _broken_skip_if}
    with override_settings(MIDDLEWARE=[middleware], RUNTIME_NARRATIVE=config):
        client = Client()
        first = client.get("/orders/7/")
        second = client.get("/orders/8/")

    assert (first.json(), second.json()) == ({"id": 7}, {"id": 8})
    assert [e.success for e in recorder.stories_completed] == [True, True]
    [record] = internal_errors
    assert "skip_if" in record.getMessage()
    assert record.exc_info is not None
    assert "skip_if is broken" in str(record.exc_info[1])


@pytest.mark.allow_internal_errors
async def test_skip_if_that_raises_narrates_an_async_request(
    recorder: StoryRecorder, internal_errors: list[Any]
) -> None:
    config = {"renderers": [recorder], "skip_if": _broken_skip_if}
    with override_settings(RUNTIME_NARRATIVE=config):
        response = await AsyncClient().get("/async/orders/5/")

    assert response.json() == {"id": 5}
    [completed] = recorder.stories_completed
    assert completed.success is True
    assert len(internal_errors) == 1


@both_middlewares
def test_streamed_body_is_inside_the_story(
    recorder: StoryRecorder, middleware: str
) -> None:
    with override_settings(MIDDLEWARE=[middleware]):
        response = Client().get("/stream/")
        completed_before_body = list(recorder.stories_completed)
        body = b"".join(response.streaming_content)

    assert completed_before_body == []
    assert body == b"chunk 0\nchunk 1\nchunk 2\n"
    recorder.assert_stages_completed(["Chunk 0", "Chunk 1", "Chunk 2"])
    assert recorder.stories_completed[0].success is True


def test_caller_header_makes_the_request_a_sub_story(recorder: StoryRecorder) -> None:
    Client().get("/orders/1/", headers={"x-narrative-story": "abc123;root=root99"})

    [started] = recorder.stories_started
    assert (started.parent_story_id, started.root_story_id) == ("abc123", "root99")


# -- async ------------------------------------------------------------------------


async def test_async_view_through_the_async_client(recorder: StoryRecorder) -> None:
    client = AsyncClient(raise_request_exception=False)

    ok = await client.get("/async/orders/3/")
    failed = await client.get("/async/fail/")

    assert (ok.status_code, failed.status_code) == (200, 500)
    names = [event.story_name for event in recorder.stories_started]
    assert names == ["GET /async/orders/<int:order_id>/", "GET /async/fail/"]
    recorder.assert_stage_failed("Validate Input", "OrderError")
    assert [e.success for e in recorder.stories_completed] == [True, False]


async def test_real_asgi_server_concurrent_requests(recorder: StoryRecorder) -> None:
    count = 30
    application: Any = get_asgi_application()

    with serve(application) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            responses = await asyncio.gather(
                *(
                    client.get(f"/async/orders/{n}/" if n % 2 else f"/orders/{n}/")
                    for n in range(count)
                )
            )
            streamed = await client.get("/async/stream/")

    assert [r.json() for r in responses] == [{"id": n} for n in range(count)]
    assert streamed.text == "chunk 0\nchunk 1\nchunk 2\n"
    stories = recorder.stories_completed
    assert len({event.story_id for event in stories}) == count + 1
    assert all(event.success for event in stories)
    stages: dict[str, set[str]] = {}
    for event in recorder.stages_completed:
        stages.setdefault(event.story_id, set()).add(event.stage_name)
    async_names = [names for names in stages.values() if "Load Order" not in names]
    for names in async_names:
        numbers = {name.rsplit(" ", 1)[1] for name in names}
        assert len(numbers) == 1 or numbers == {"0", "1", "2"}
    assert {"Chunk 0", "Chunk 1", "Chunk 2"} in stages.values()
