"""Context state: tasks, threads, generators, cancellation and memory."""

from __future__ import annotations

import asyncio
import contextvars
import sys
import threading
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from runtime_narrative import has_active_story, stage, story, with_story_context
from runtime_narrative.testing import StoryRecorder

# -- asyncio tasks -----------------------------------------------------------


async def _branch(name: str) -> None:
    async with stage(name):
        await asyncio.sleep(0.01)
        async with stage(f"{name}.child"):
            await asyncio.sleep(0)


async def test_gathered_tasks_are_siblings_not_nested() -> None:
    async with StoryRecorder("Fan out") as recorder:
        async with stage("Parent"):
            await asyncio.gather(_branch("a"), _branch("b"), _branch("c"))

    parents = {e.stage_name: e.parent_stage_name for e in recorder.stages_started}
    assert parents == {
        "Parent": None,
        "a": "Parent",
        "b": "Parent",
        "c": "Parent",
        "a.child": "a",
        "b.child": "b",
        "c.child": "c",
    }
    assert len(recorder.stages_completed) == 7


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.TaskGroup is 3.11+")
async def test_task_group_tasks_are_siblings() -> None:
    async with StoryRecorder("Fan out") as recorder:
        async with asyncio.TaskGroup() as group:  # type: ignore[attr-defined]
            group.create_task(_branch("x"))
            group.create_task(_branch("y"))

    parents = {e.stage_name: e.parent_stage_name for e in recorder.stages_started}
    assert parents == {"x": None, "y": None, "x.child": "x", "y.child": "y"}


async def test_a_task_created_outside_the_story_sees_no_story() -> None:
    seen: list[bool] = []

    async def probe() -> None:
        await asyncio.sleep(0.01)
        seen.append(has_active_story())

    task = asyncio.ensure_future(probe())
    async with story("Busy", renderers=[]):
        await task

    assert seen == [False]


# -- threads -----------------------------------------------------------------


def test_a_new_thread_starts_with_no_story() -> None:
    seen: list[bool] = []

    with story("Main", renderers=[]):
        thread = threading.Thread(target=lambda: seen.append(has_active_story()))
        thread.start()
        thread.join()

    assert seen == [False]


def test_a_thread_given_the_context_joins_the_story() -> None:
    def work() -> None:
        with stage("In thread"):
            pass

    with StoryRecorder("Main") as recorder, stage("Spawn"):
        context = contextvars.copy_context()
        thread = threading.Thread(target=context.run, args=(work,))
        thread.start()
        thread.join()

    done = {e.stage_name: e for e in recorder.stages_completed}
    assert done["In thread"].parent_stage_name == "Spawn"
    assert done["In thread"].story_id == done["Spawn"].story_id


async def test_to_thread_joins_the_story() -> None:
    def work() -> None:
        with stage("Blocking IO"):
            pass

    async with StoryRecorder("Main") as recorder:
        async with stage("Offload"):
            await asyncio.to_thread(work)

    done = {e.stage_name: e.parent_stage_name for e in recorder.stages_completed}
    assert done == {"Blocking IO": "Offload", "Offload": None}


def test_with_story_context_carries_the_story_into_a_thread_pool() -> None:
    def work(item: int) -> int:
        with stage(f"Item {item}"):
            return item * 2

    with StoryRecorder("Batch") as recorder, stage("Fan out"):
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(with_story_context(work), range(20)))

    assert results == [i * 2 for i in range(20)]
    items = [e for e in recorder.stages_completed if e.stage_name.startswith("Item")]
    assert len(items) == 20
    assert {e.parent_stage_name for e in items} == {"Fan out"}
    assert recorder.stories_completed[0].completed_stages == 1  # top level only
    assert recorder.runtime is not None
    assert recorder.runtime.completed_stages == 21
    indexes = sorted(e.stage_index for e in recorder.stages_started)
    assert indexes == list(range(21))


def test_a_pool_thread_without_the_context_refuses_the_stage() -> None:
    def work() -> None:
        with stage("Lost"):
            pass

    with story("Batch", renderers=[]), ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(work)
        with pytest.raises(RuntimeError, match="with_story_context"):
            future.result()


# -- generators closed early -------------------------------------------------


def _rows() -> Iterator[int]:
    with stage("Read rows"):
        yield 1
        yield 2
        yield 3


def test_a_generator_closed_early_leaves_no_stage_open() -> None:
    with StoryRecorder("ETL") as recorder:
        rows = _rows()
        assert next(rows) == 1
        rows.close()
        with stage("After"):
            pass

    parents = {e.stage_name: e.parent_stage_name for e in recorder.stages_started}
    assert parents["After"] is None
    recorder.assert_stages_completed(["Read rows", "After"])
    recorder.assert_no_failure()


def test_a_generator_abandoned_and_collected_in_another_context() -> None:
    holder: list[Iterator[int]] = []

    with StoryRecorder("ETL") as recorder:
        rows = _rows()
        next(rows)
        holder.append(rows)
        del rows

    # The generator is closed long after its story ended, from a context
    # where its stage is not on the stack: it must corrupt nothing.
    contextvars.Context().run(holder.pop().close)
    assert not has_active_story()
    recorder.assert_story_completed(success=True)


async def _async_rows() -> AsyncIterator[int]:
    async with stage("Stream rows"):
        yield 1
        yield 2


async def test_an_async_generator_closed_early_leaves_no_stage_open() -> None:
    async with StoryRecorder("ETL") as recorder:
        rows = _async_rows()
        assert await rows.__anext__() == 1
        await rows.aclose()
        async with stage("After"):
            pass

    parents = {e.stage_name: e.parent_stage_name for e in recorder.stages_started}
    assert parents["After"] is None
    recorder.assert_no_failure()


# -- cancellation and timeouts -----------------------------------------------


async def test_cancellation_is_reported_as_cancellation_not_a_crash() -> None:
    recorder = StoryRecorder()
    started = asyncio.Event()

    async def job() -> None:
        async with story("Job", renderers=[recorder]):
            async with stage("Wait"):
                started.set()
                await asyncio.sleep(10)

    task = asyncio.ensure_future(job())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    recorder.assert_no_failure()
    done = recorder.stories_completed[0]
    assert (done.success, done.status, done.error_type) == (
        False,
        "cancelled",
        "CancelledError",
    )


async def test_a_wait_for_timeout_is_cancellation_with_its_real_type() -> None:
    with pytest.raises(asyncio.TimeoutError):
        async with StoryRecorder("Job") as recorder:
            async with stage("Slow call"):
                await asyncio.wait_for(asyncio.sleep(10), timeout=0.01)

    recorder.assert_no_failure()
    done = recorder.stories_completed[0]
    assert done.status == "cancelled"
    assert done.error_type == "TimeoutError"


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout is 3.11+")
async def test_an_asyncio_timeout_around_the_story_is_cancellation() -> None:
    recorder = StoryRecorder()

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):  # type: ignore[attr-defined]
            async with story("Job", renderers=[recorder]), stage("Slow"):
                await asyncio.sleep(10)

    recorder.assert_no_failure()
    assert recorder.stories_completed[0].status == "cancelled"


def test_a_socket_style_timeout_is_a_failure() -> None:
    with pytest.raises(TimeoutError), StoryRecorder("Job") as recorder:
        with stage("Connect"):
            raise TimeoutError("timed out")

    recorder.assert_stage_failed("Connect", error_type="TimeoutError")


async def test_a_second_cancellation_while_closing_still_lets_story_completed_out() -> (
    None
):
    delivered: list[str] = []
    closing = asyncio.Event()

    class SlowRenderer:
        async def handle(self, event: object) -> None:
            if type(event).__name__ == "StoryCompleted":
                closing.set()
                await asyncio.sleep(0.05)
            delivered.append(type(event).__name__)

    async def job() -> None:
        async with story("Job", renderers=[SlowRenderer()]):
            await asyncio.sleep(10)

    task = asyncio.ensure_future(job())
    await asyncio.sleep(0.01)
    task.cancel()
    await closing.wait()
    task.cancel()  # the second cancellation, while StoryCompleted is delivered
    with pytest.raises(asyncio.CancelledError):
        await task

    assert delivered == ["StoryStarted", "StoryCompleted"]
    assert not has_active_story()


# -- memory ------------------------------------------------------------------


def test_memory_is_flat_in_the_number_of_stages() -> None:
    with story("Long", renderers=[]) as runtime:
        for _ in range(1_000):
            with stage("Warm up"):
                pass
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        for _ in range(50_000):
            with stage("Step"):
                pass
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()

    growth = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert growth < 64 * 1024, f"story memory grew by {growth} bytes"
    assert runtime.completed_stages == 51_000
    assert runtime.stage_timeline().startswith("... 50950 earlier stage(s)")
