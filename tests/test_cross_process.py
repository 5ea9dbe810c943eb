from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
import requests
from fastapi import FastAPI
from requests.adapters import HTTPAdapter

from _uvicorn import serve
from runtime_narrative import StoryRecorder, stage, story
from runtime_narrative.integrations import (
    STORY_HEADER,
    format_story_header,
    install_httpx,
    install_requests,
    narrative_headers,
    narrative_metadata,
    parse_story_header,
    story_parent_from_headers,
)
from runtime_narrative.integrations.starlette import RuntimeNarrativeMiddleware

# -- the header ----------------------------------------------------------------


def test_header_round_trips_the_story_ids() -> None:
    value = format_story_header("a1b2", "c3d4")

    parsed = parse_story_header(value)

    assert value == "a1b2;root=c3d4"
    assert parsed == ("a1b2", "c3d4")


def test_header_of_a_root_story_leaves_the_root_out() -> None:
    assert format_story_header("a1b2", "a1b2") == "a1b2"
    assert parse_story_header("a1b2") == ("a1b2", "a1b2")


@pytest.mark.parametrize(
    "value", ["", ";root=abc", "a b", "x" * 65, "abc;root=<script>", None]
)
def test_malformed_header_is_ignored_or_loses_only_the_bad_part(
    value: str | None,
) -> None:
    parsed = parse_story_header(value)

    assert parsed is None or parsed == ("abc", "abc")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("abc,def", ("abc", "abc")),
        ("abc;root=r1, def;root=r2", ("abc", "r1")),
        ("<bad>, def;root=r2", ("def", "r2")),
        ("abc;root=r1;root=r2", ("abc", "r1")),
        ("abc;root=<bad>;root=r2", ("abc", "r2")),
    ],
)
def test_header_merged_by_a_proxy_takes_the_first_valid_value(
    value: str, expected: tuple[str, str]
) -> None:
    assert parse_story_header(value) == expected


def test_request_with_a_merged_header_continues_the_first_story() -> None:
    from starlette.testclient import TestClient

    recorder = StoryRecorder()
    app = FastAPI()
    app.add_middleware(RuntimeNarrativeMiddleware, renderers=[recorder])

    @app.get("/ping")
    def ping() -> dict[str, str]:
        return {"ok": "yes"}

    with TestClient(app) as client:
        client.get("/ping", headers={STORY_HEADER: "p1;root=r1,p2;root=r2"})

    [started] = recorder.stories_started
    assert (started.parent_story_id, started.root_story_id) == ("p1", "r1")


def test_parent_is_read_from_a_mapping_or_from_asgi_pairs() -> None:
    expected = {"parent_story_id": "p1", "root_story_id": "r1"}

    assert story_parent_from_headers({"X-Narrative-Story": "p1;root=r1"}) == expected
    assert story_parent_from_headers([(b"x-narrative-story", b"p1;root=r1")]) == (
        expected
    )
    assert story_parent_from_headers({"other": "x"}) == {}


def test_headers_name_the_open_story_and_nothing_outside_one() -> None:
    with StoryRecorder("Outer") as outer, story("Inner", renderers=[]) as inner:
        headers = narrative_headers()
        metadata = narrative_metadata()

    assert outer.runtime is not None
    assert headers == {STORY_HEADER: f"{inner.story_id};root={outer.runtime.story_id}"}
    assert metadata == list(headers.items())
    assert narrative_headers() == {}


def test_the_integrations_package_imports_nothing_optional() -> None:
    code = (
        "import sys, runtime_narrative.integrations;"
        "print(sorted({'httpx', 'requests', 'starlette', 'django', 'celery', 'grpc',"
        " 'opentelemetry'} & {name.split('.')[0] for name in sys.modules}))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}

    shown = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )

    assert shown.stdout.strip() == "[]", shown.stderr


# -- the A -> B acceptance test --------------------------------------------------


def service_b(recorder: StoryRecorder) -> FastAPI:
    app = FastAPI()
    app.add_middleware(RuntimeNarrativeMiddleware, renderers=[recorder])

    @app.get("/stock/{sku}")
    async def stock(sku: str) -> dict[str, int]:
        with stage("Count Stock"):
            return {sku: 3}

    return app


def service_a(recorder: StoryRecorder, b_url: str) -> FastAPI:
    app = FastAPI()
    app.add_middleware(RuntimeNarrativeMiddleware, renderers=[recorder])

    @app.get("/orders/{sku}")
    async def order(sku: str) -> dict[str, int]:
        with stage("Check Stock"):
            async with install_httpx(httpx.AsyncClient(base_url=b_url)) as client:
                response = await client.get(f"/stock/{sku}")
        return dict(response.json())

    return app


async def test_request_to_a_that_calls_b_is_one_story_tree() -> None:
    a_recorder, b_recorder = StoryRecorder(), StoryRecorder()

    with serve(service_b(b_recorder)) as b_url:
        with serve(service_a(a_recorder, b_url)) as a_url:
            async with httpx.AsyncClient(base_url=a_url) as client:
                responses = await asyncio.gather(
                    *(client.get(f"/orders/sku{n}") for n in range(10))
                )

    assert [r.json() for r in responses] == [{f"sku{n}": 3} for n in range(10)]
    a_stories = {event.story_id: event for event in a_recorder.stories_started}
    b_stories = b_recorder.stories_started
    assert len(a_stories) == len(b_stories) == 10
    assert {event.parent_story_id for event in b_stories} == set(a_stories)
    for b_story in b_stories:
        a_story = a_stories[b_story.parent_story_id or ""]
        assert a_story.root_story_id == a_story.story_id
        assert b_story.root_story_id == a_story.story_id
    roots = {e.root_story_id for e in b_recorder.stories_completed}
    assert roots == set(a_stories)


def test_a_caller_story_in_a_request_is_kept_as_the_root() -> None:
    b_recorder = StoryRecorder()

    with serve(service_b(b_recorder)) as b_url:
        with StoryRecorder("Nightly Job") as job, story("Sync Stock") as sync:
            with install_httpx(httpx.Client(base_url=b_url)) as client:
                client.get("/stock/x")

    [b_story] = b_recorder.stories_started
    assert job.runtime is not None
    assert b_story.parent_story_id == sync.story_id
    assert b_story.root_story_id == job.runtime.story_id


def test_requests_session_carries_the_story_and_keeps_its_adapters() -> None:
    b_recorder = StoryRecorder()
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=2))
    install_requests(session)
    install_requests(session)

    with serve(service_b(b_recorder)) as b_url:
        with StoryRecorder("Caller") as caller:
            response = session.get(f"{b_url}/stock/y", timeout=10)
        outside = session.get(f"{b_url}/stock/z", timeout=10)
    session.close()

    assert response.json() == {"y": 3}
    assert outside.json() == {"z": 3}
    assert session.adapters["http://"].inner.max_retries.total == 2
    assert not hasattr(session.adapters["http://"].inner, "inner")
    assert caller.runtime is not None
    first, second = b_recorder.stories_started
    assert first.parent_story_id == caller.runtime.story_id
    assert second.parent_story_id is None


def test_httpx_install_is_idempotent_and_keeps_existing_hooks() -> None:
    seen: list[str] = []
    client = httpx.Client(event_hooks={"request": [lambda r: seen.append("mine")]})

    install_httpx(client)
    install_httpx(client)

    assert len(client.event_hooks["request"]) == 2
    client.close()


def test_trace_context_is_sent_beside_the_story_header() -> None:
    from opentelemetry import context, propagate

    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    captured: list[httpx.Headers] = []

    def capture(request: httpx.Request) -> httpx.Response:
        captured.append(request.headers)
        return httpx.Response(200)

    client = install_httpx(httpx.Client(transport=httpx.MockTransport(capture)))
    token = context.attach(propagate.extract({"traceparent": parent}))
    try:
        with StoryRecorder("Caller"):
            client.get("http://127.0.0.1/")
    finally:
        context.detach(token)
        client.close()

    [headers] = captured
    assert headers["traceparent"].split("-")[1] == parent.split("-")[1]
    assert STORY_HEADER in headers


# -- a separate process --------------------------------------------------------


def test_story_continues_in_another_process(tmp_path: Path) -> None:
    events_file = tmp_path / "events.jsonl"
    script = textwrap.dedent(
        """
        import sys

        import httpx

        from runtime_narrative import JsonRenderer, story
        from runtime_narrative.integrations import install_httpx

        with open(sys.argv[2], "w") as out:
            with story("Child Process", renderers=[JsonRenderer(out)]):
                with install_httpx(httpx.Client()) as client:
                    client.get(sys.argv[1])
        """
    )
    b_recorder = StoryRecorder()

    with serve(service_b(b_recorder)) as b_url:
        subprocess.run(
            [sys.executable, "-c", script, f"{b_url}/stock/q", str(events_file)],
            check=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
            timeout=60,
        )

    child = [json.loads(line) for line in events_file.read_text().splitlines()]
    child_story_id = child[0]["story_id"]
    [b_story] = b_recorder.stories_started
    assert b_story.parent_story_id == child_story_id
    assert b_story.root_story_id == child_story_id


def test_request_without_the_header_starts_a_root_story() -> None:
    recorder = StoryRecorder()

    with serve(service_b(recorder)) as b_url, httpx.Client(base_url=b_url) as client:
        client.get("/stock/w")

    [started] = recorder.stories_started
    assert started.parent_story_id is None
    assert started.root_story_id == started.story_id


def test_cli_shows_the_tree_both_processes_wrote_to_one_store(
    tmp_path: Path,
) -> None:
    from runtime_narrative.renderers.sqlite import SqliteStoryRenderer

    database = tmp_path / "stories.db"
    script = textwrap.dedent(
        """
        import sys

        import httpx

        from runtime_narrative import SqliteStoryRenderer, story
        from runtime_narrative.integrations import install_httpx

        store = SqliteStoryRenderer(sys.argv[2])
        with story("Nightly Sync", renderers=[store]) as runtime:
            with install_httpx(httpx.Client()) as client:
                client.get(sys.argv[1])
        store.close()
        print(runtime.story_id)
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    b_store = SqliteStoryRenderer(database)
    app = FastAPI()
    app.add_middleware(RuntimeNarrativeMiddleware, renderers=[b_store])

    @app.get("/stock/{sku}")
    async def stock(sku: str) -> dict[str, int]:
        with stage("Count Stock"):
            return {sku: 1}

    with serve(app) as b_url:
        caller = subprocess.run(
            [sys.executable, "-c", script, f"{b_url}/stock/m", str(database)],
            check=True,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
    b_store.close()
    root_id = caller.stdout.strip()
    env["RUNTIME_NARRATIVE_DB"] = str(database)
    shown = subprocess.run(
        [
            sys.executable,
            "-m",
            "runtime_narrative",
            "story",
            root_id,
            "--db",
            str(database),
            "--json",
        ],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )

    tree = json.loads(shown.stdout)
    assert tree["name"] == "Nightly Sync"
    [child] = tree["sub_stories"]
    assert child["name"] == "GET /stock/{sku}"
    assert child["parent_story_id"] == root_id
    assert [stage["stage_name"] for stage in child["stages"]] == ["Count Stock"]
