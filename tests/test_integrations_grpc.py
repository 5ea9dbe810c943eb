from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent import futures
from types import ModuleType
from typing import Any, Optional

import grpc
import grpc.aio
import pytest

from grpc_service import generate
from runtime_narrative import StoryRecorder, stage
from runtime_narrative.integrations import narrative_metadata
from runtime_narrative.integrations.grpc import (
    NarrativeClientInterceptor,
    RuntimeNarrativeAsyncInterceptor,
    RuntimeNarrativeInterceptor,
    narrative_async_client_interceptors,
)

SAY = "/narrative.test.Echo/Say"


@pytest.fixture(scope="module")
def stubs(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModuleType, ModuleType]:
    return generate(tmp_path_factory.mktemp("grpc_stubs"))


def answer(text: str, context: Any) -> str:
    if text == "boom":
        raise ValueError("the note exploded")
    if text == "invalid":
        context.set_code(grpc.StatusCode.INVALID_ARGUMENT)
    if text == "internal":
        context.set_code(grpc.StatusCode.INTERNAL)
        context.set_details("the store is unreachable")
    return text.upper()


# -- the sync server -------------------------------------------------------------


def sync_servicer(messages: ModuleType, services: ModuleType) -> Any:
    class Echo(services.EchoServicer):  # type: ignore[misc]
        def Say(self, request: Any, context: Any) -> Any:
            if request.text == "missing":
                context.abort(grpc.StatusCode.NOT_FOUND, "no such note")
            with stage(f"Answer {request.text}"):
                return messages.Note(text=answer(request.text, context))

        def Split(self, request: Any, context: Any) -> Iterator[Any]:
            for word in request.text.split():
                with stage(f"Word {word}"):
                    yield messages.Note(text=answer(word, context))

        def Join(self, request_iterator: Any, context: Any) -> Any:
            words = []
            for note in request_iterator:
                with stage(f"Take {note.text}"):
                    words.append(note.text)
            return messages.Note(text=" ".join(words))

        def Chat(self, request_iterator: Any, context: Any) -> Iterator[Any]:
            for note in request_iterator:
                with stage(f"Reply {note.text}"):
                    yield messages.Note(text=answer(note.text, context))

    return Echo()


@pytest.fixture
def sync_target(
    stubs: tuple[ModuleType, ModuleType],
) -> Iterator[tuple[str, StoryRecorder]]:
    """A sync server on 127.0.0.1: its address, and the recorder of its stories."""
    messages, services = stubs
    recorder = StoryRecorder()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8),
        interceptors=[RuntimeNarrativeInterceptor(renderers=[recorder])],
    )
    services.add_EchoServicer_to_server(sync_servicer(messages, services), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", recorder
    finally:
        server.stop(None)


@pytest.fixture
def sync_server(
    stubs: tuple[ModuleType, ModuleType], sync_target: tuple[str, StoryRecorder]
) -> Iterator[tuple[Any, StoryRecorder, ModuleType]]:
    messages, services = stubs
    target, recorder = sync_target
    channel = grpc.insecure_channel(target)
    try:
        yield services.EchoStub(channel), recorder, messages
    finally:
        channel.close()


def notes(messages: ModuleType, *texts: str) -> Iterator[Any]:
    return iter([messages.Note(text=text) for text in texts])


def test_unary_call_is_a_story_named_by_method(sync_server: Any) -> None:
    stub, recorder, messages = sync_server

    reply = stub.Say(messages.Note(text="hello"))

    assert reply.text == "HELLO"
    [started] = recorder.stories_started
    assert started.story_name == SAY
    recorder.assert_stages_completed(["Answer hello"])
    [completed] = recorder.stories_completed
    assert (completed.success, completed.outcome) == (True, "OK")


def test_each_kind_of_method_spans_the_whole_call(sync_server: Any) -> None:
    stub, recorder, messages = sync_server

    split = [note.text for note in stub.Split(messages.Note(text="a b c"))]
    joined = stub.Join(notes(messages, "x", "y"))
    chat = [note.text for note in stub.Chat(notes(messages, "p", "q"))]

    assert (split, joined.text, chat) == (["A", "B", "C"], "x y", ["P", "Q"])
    names = [event.story_name for event in recorder.stories_completed]
    assert names == [
        "/narrative.test.Echo/Split",
        "/narrative.test.Echo/Join",
        "/narrative.test.Echo/Chat",
    ]
    assert all(event.success for event in recorder.stories_completed)
    assert [e.completed_stages for e in recorder.stories_completed] == [3, 2, 2]


def test_handler_exception_fails_the_story_and_client_sees_unknown(
    sync_server: Any,
) -> None:
    stub, recorder, messages = sync_server

    with pytest.raises(grpc.RpcError) as caught:
        stub.Say(messages.Note(text="boom"))

    assert caught.value.code() == grpc.StatusCode.UNKNOWN
    recorder.assert_stage_failed("Answer boom", "ValueError")
    [completed] = recorder.stories_completed
    assert (completed.success, completed.outcome) == (False, "UNKNOWN")


def test_exception_mid_stream_fails_the_story_after_the_sent_messages(
    sync_server: Any,
) -> None:
    stub, recorder, messages = sync_server
    received = []

    with pytest.raises(grpc.RpcError) as caught:
        for note in stub.Split(messages.Note(text="one boom two")):
            received.append(note.text)

    assert received == ["ONE"]
    assert caught.value.code() == grpc.StatusCode.UNKNOWN
    recorder.assert_stage_failed("Word boom", "ValueError")
    assert recorder.stories_completed[0].success is False


def test_abort_keeps_its_status_and_is_not_a_crash(sync_server: Any) -> None:
    stub, recorder, messages = sync_server

    with pytest.raises(grpc.RpcError) as caught:
        stub.Say(messages.Note(text="missing"))

    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert caught.value.details() == "no such note"
    assert recorder.failures == []
    [completed] = recorder.stories_completed
    assert (completed.success, completed.outcome) == (True, "NOT_FOUND")


def test_status_set_by_the_handler_is_kept(sync_server: Any) -> None:
    stub, recorder, messages = sync_server

    with pytest.raises(grpc.RpcError) as invalid:
        stub.Say(messages.Note(text="invalid"))
    with pytest.raises(grpc.RpcError) as internal:
        stub.Say(messages.Note(text="internal"))

    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert internal.value.code() == grpc.StatusCode.INTERNAL
    assert internal.value.details() == "the store is unreachable"
    assert recorder.failures == []
    first, second = recorder.stories_completed
    assert (first.success, first.outcome) == (True, "INVALID_ARGUMENT")
    assert (second.success, second.outcome, second.status) == (
        False,
        "INTERNAL",
        "failed",
    )


def test_concurrent_calls_are_separate_stories(sync_server: Any) -> None:
    stub, recorder, messages = sync_server
    count = 30

    calls = [stub.Say.future(messages.Note(text=f"n{n}")) for n in range(count)]
    replies = [call.result(timeout=30).text for call in calls]

    assert replies == [f"N{n}" for n in range(count)]
    assert len({event.story_id for event in recorder.stories_started}) == count
    for event in recorder.stages_completed:
        [started] = [
            s
            for s in recorder.stages_started
            if s.stage_name == event.stage_name and s.story_id == event.story_id
        ]
        assert started.stage_index == 0


def test_metadata_makes_the_call_a_sub_story_of_the_caller(sync_server: Any) -> None:
    stub, recorder, messages = sync_server

    with StoryRecorder("Client Job") as caller:
        stub.Say(messages.Note(text="hi"), metadata=narrative_metadata())

    assert caller.runtime is not None
    [started] = recorder.stories_started
    assert started.parent_story_id == caller.runtime.story_id
    assert started.root_story_id == caller.runtime.story_id


def test_client_interceptor_sends_the_caller_story_on_every_kind_of_call(
    stubs: tuple[ModuleType, ModuleType], sync_target: tuple[str, StoryRecorder]
) -> None:
    messages, services = stubs
    target, recorder = sync_target
    channel = grpc.intercept_channel(
        grpc.insecure_channel(target), NarrativeClientInterceptor()
    )
    stub = services.EchoStub(channel)
    try:
        with StoryRecorder("Client Job") as caller:
            stub.Say(messages.Note(text="hi"))
            list(stub.Split(messages.Note(text="a b")))
            stub.Join(notes(messages, "x"))
            list(stub.Chat(notes(messages, "p")))
        stub.Say(messages.Note(text="outside"))
    finally:
        channel.close()

    assert caller.runtime is not None
    parents = [event.parent_story_id for event in recorder.stories_started]
    roots = {event.root_story_id for event in recorder.stories_started[:4]}
    assert parents == [caller.runtime.story_id] * 4 + [None]
    assert roots == {caller.runtime.story_id}


def test_client_interceptor_keeps_metadata_the_caller_set(
    stubs: tuple[ModuleType, ModuleType], sync_target: tuple[str, StoryRecorder]
) -> None:
    messages, services = stubs
    target, recorder = sync_target
    channel = grpc.intercept_channel(
        grpc.insecure_channel(target), NarrativeClientInterceptor()
    )
    stub = services.EchoStub(channel)
    try:
        with StoryRecorder("Outer Job") as outer:
            sent = narrative_metadata()
            with StoryRecorder("Inner Job"):
                stub.Say(messages.Note(text="hi"), metadata=sent)
    finally:
        channel.close()

    assert outer.runtime is not None
    [started] = recorder.stories_started
    assert started.parent_story_id == outer.runtime.story_id


# -- the asyncio server ----------------------------------------------------------


def async_servicer(messages: ModuleType, services: ModuleType) -> Any:
    class Echo(services.EchoServicer):  # type: ignore[misc]
        async def Say(self, request: Any, context: Any) -> Any:
            if request.text == "missing":
                await context.abort(grpc.StatusCode.NOT_FOUND, "no such note")
            with stage(f"Answer {request.text}"):
                await asyncio.sleep(0)
                return messages.Note(text=answer(request.text, context))

        async def Split(self, request: Any, context: Any) -> AsyncIterator[Any]:
            for word in request.text.split():
                with stage(f"Word {word}"):
                    yield messages.Note(text=answer(word, context))

        async def Join(self, request_iterator: Any, context: Any) -> Any:
            words = []
            async for note in request_iterator:
                with stage(f"Take {note.text}"):
                    words.append(note.text)
            return messages.Note(text=" ".join(words))

        async def Chat(self, request_iterator: Any, context: Any) -> None:
            async for note in request_iterator:
                with stage(f"Reply {note.text}"):
                    await context.write(messages.Note(text=answer(note.text, context)))

    return Echo()


async def start_async_server(
    stubs: tuple[ModuleType, ModuleType],
    recorder: StoryRecorder,
    client_interceptors: Optional[Sequence[Any]] = None,
) -> tuple[grpc.aio.Server, grpc.aio.Channel, Any]:
    messages, services = stubs
    server = grpc.aio.server(
        interceptors=[RuntimeNarrativeAsyncInterceptor(renderers=[recorder])]
    )
    services.add_EchoServicer_to_server(async_servicer(messages, services), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(
        f"127.0.0.1:{port}", interceptors=client_interceptors
    )
    return server, channel, services.EchoStub(channel)


async def test_async_server_covers_every_kind_of_method(
    stubs: tuple[ModuleType, ModuleType],
) -> None:
    messages, _ = stubs
    recorder = StoryRecorder()
    server, channel, stub = await start_async_server(stubs, recorder)
    try:
        said = await stub.Say(messages.Note(text="hello"))
        split = [note.text async for note in stub.Split(messages.Note(text="a b"))]
        joined = await stub.Join(notes(messages, "x", "y"))
        chat = [note.text async for note in stub.Chat(notes(messages, "p"))]
    finally:
        await channel.close()
        await server.stop(None)

    assert (said.text, split, joined.text, chat) == ("HELLO", ["A", "B"], "x y", ["P"])
    names = [event.story_name.rsplit("/", 1)[1] for event in recorder.stories_completed]
    assert names == ["Say", "Split", "Join", "Chat"]
    assert all(event.success for event in recorder.stories_completed)
    assert [e.completed_stages for e in recorder.stories_completed] == [1, 2, 2, 1]


async def test_async_exception_fails_the_story_and_abort_does_not(
    stubs: tuple[ModuleType, ModuleType],
) -> None:
    messages, _ = stubs
    recorder = StoryRecorder()
    server, channel, stub = await start_async_server(stubs, recorder)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as boom:
            await stub.Say(messages.Note(text="boom"))
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.Say(messages.Note(text="missing"))
        with pytest.raises(grpc.aio.AioRpcError) as internal:
            await stub.Say(messages.Note(text="internal"))
    finally:
        await channel.close()
        await server.stop(None)

    assert boom.value.code() == grpc.StatusCode.UNKNOWN
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert internal.value.code() == grpc.StatusCode.INTERNAL
    [failure] = recorder.failures
    assert (failure.stage_name, failure.error_type) == ("Answer boom", "ValueError")
    outcomes = [(e.success, e.outcome) for e in recorder.stories_completed]
    assert outcomes == [(False, "UNKNOWN"), (True, "NOT_FOUND"), (False, "INTERNAL")]


async def test_async_concurrent_calls_are_separate_stories(
    stubs: tuple[ModuleType, ModuleType],
) -> None:
    messages, _ = stubs
    recorder = StoryRecorder()
    count = 30
    server, channel, stub = await start_async_server(stubs, recorder)
    try:
        with StoryRecorder("Fan Out") as caller:
            replies = await asyncio.gather(
                *(
                    stub.Say(messages.Note(text=f"n{n}"), metadata=narrative_metadata())
                    for n in range(count)
                )
            )
    finally:
        await channel.close()
        await server.stop(None)

    assert [reply.text for reply in replies] == [f"N{n}" for n in range(count)]
    assert caller.runtime is not None
    started = recorder.stories_started
    assert len({event.story_id for event in started}) == count
    assert {event.parent_story_id for event in started} == {caller.runtime.story_id}
    by_story = {event.story_id: event.stage_name for event in recorder.stages_completed}
    assert sorted(by_story.values()) == sorted(f"Answer n{n}" for n in range(count))


async def test_async_client_interceptors_send_the_caller_story(
    stubs: tuple[ModuleType, ModuleType],
) -> None:
    messages, _ = stubs
    recorder = StoryRecorder()
    server, channel, stub = await start_async_server(
        stubs, recorder, narrative_async_client_interceptors()
    )
    try:
        async with StoryRecorder("Async Client Job") as caller:
            await stub.Say(messages.Note(text="hi"))
            [note async for note in stub.Split(messages.Note(text="a b"))]
            await stub.Join(notes(messages, "x"))
            [note async for note in stub.Chat(notes(messages, "p"))]
        await stub.Say(messages.Note(text="outside"))
    finally:
        await channel.close()
        await server.stop(None)

    assert caller.runtime is not None
    names = [e.story_name.rsplit("/", 1)[1] for e in recorder.stories_started]
    parents = [event.parent_story_id for event in recorder.stories_started]
    assert names == ["Say", "Split", "Join", "Chat", "Say"]
    assert parents == [caller.runtime.story_id] * 4 + [None]


def test_cancelled_stream_leaves_nothing_behind_in_the_thread(
    stubs: tuple[ModuleType, ModuleType],
) -> None:
    messages, services = stubs
    recorder = StoryRecorder()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=1),
        interceptors=[RuntimeNarrativeInterceptor(renderers=[recorder])],
    )
    services.add_EchoServicer_to_server(sync_servicer(messages, services), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = services.EchoStub(channel)
    try:
        responses = stub.Split(messages.Note(text=" ".join(["word"] * 10_000)))
        first = next(responses)
        responses.cancel()
        reply = stub.Say(messages.Note(text="after"))
    finally:
        channel.close()
        server.stop(None)

    assert (first.text, reply.text) == ("WORD", "AFTER")
    said = [e for e in recorder.stories_started if e.story_name == SAY]
    assert [event.parent_story_id for event in said] == [None]
