"""NarrativeTaskGroup: tasks in the story, failures, cancellation of siblings."""

from __future__ import annotations

import asyncio
import os
import pickle
import subprocess
from pathlib import Path

import pytest

from runtime_narrative import (
    NarrativeTaskGroup,
    NarrativeTaskGroupError,
    stage,
)
from runtime_narrative.testing import StoryRecorder

ROOT = Path(__file__).resolve().parent.parent


async def fetch(name: str, delay: float = 0) -> str:
    with stage(f"Fetch {name}"):
        await asyncio.sleep(delay)
        return name


async def fail(error: BaseException) -> None:
    with stage("Failing"):
        await asyncio.sleep(0)
        raise error


async def test_tasks_run_in_the_story_under_the_open_stage() -> None:
    async with StoryRecorder("Parallel") as recorder:
        with stage("Gather"):
            async with NarrativeTaskGroup() as tg:
                orders = tg.create_task(fetch("orders"), name="Orders")
                stock = tg.create_task(fetch("stock"), name="Stock")

    started = {event.stage_name: event for event in recorder.stages_started}
    assert orders.result() == "orders"
    assert stock.result() == "stock"
    assert started["Fetch orders"].parent_stage_name == "Gather"
    assert started["Fetch stock"].parent_stage_name == "Gather"
    assert started["Fetch orders"].depth == 1
    recorder.assert_stages_completed(["Fetch orders", "Fetch stock", "Gather"])
    recorder.assert_story_completed(success=True)


async def test_sibling_tasks_never_see_each_others_stages() -> None:
    seen: dict[str, list[str]] = {}

    async def nested(name: str) -> None:
        with stage(f"Outer {name}"):
            await asyncio.sleep(0)
            with stage(f"Inner {name}"):
                await asyncio.sleep(0)

    async with StoryRecorder("Parallel") as recorder:
        async with NarrativeTaskGroup() as tg:
            tg.create_task(nested("a"))
            tg.create_task(nested("b"))

    for event in recorder.stages_started:
        seen.setdefault(event.stage_name, []).append(str(event.parent_stage_name))
    assert seen == {
        "Outer a": ["None"],
        "Outer b": ["None"],
        "Inner a": ["Outer a"],
        "Inner b": ["Outer b"],
    }


async def test_a_failure_cancels_siblings_and_raises_the_group_error() -> None:
    error = ValueError("bad row")
    sibling_cancelled = asyncio.Event()
    never = asyncio.Event()

    async def slow() -> None:
        with stage("Slow"):
            try:
                await never.wait()
            except asyncio.CancelledError:
                sibling_cancelled.set()
                raise

    with pytest.raises(NarrativeTaskGroupError) as caught:
        async with StoryRecorder("Parallel") as recorder:
            async with NarrativeTaskGroup() as tg:
                tg.create_task(slow(), name="Slow Job")
                tg.create_task(fail(error), name="Risky Job")

    group_error = caught.value
    assert group_error.failed_tasks == {"Risky Job": error}
    assert group_error.failed_tasks["Risky Job"] is error
    assert group_error.cancelled_tasks == ("Slow Job",)
    assert group_error.__cause__ is error
    assert sibling_cancelled.is_set()
    assert str(group_error) == "1 task failed: Risky Job: ValueError: bad row"
    assert "Slow" not in [event.stage_name for event in recorder.stages_completed]
    recorder.assert_stage_failed("Failing", "NarrativeTaskGroupError")
    failure = recorder.failures[0]
    assert "ValueError" in failure.exception_chain
    recorder.assert_story_completed(success=False)


async def test_every_failed_task_is_kept_under_its_own_name() -> None:
    first, second = KeyError("a"), KeyError("b")

    async def both_fail(exc: BaseException) -> None:
        raise exc

    with pytest.raises(NarrativeTaskGroupError) as caught:
        async with NarrativeTaskGroup() as tg:
            # Both fail in the same loop iteration, before either is cancelled.
            tg.create_task(both_fail(first), name="Load")
            tg.create_task(both_fail(second), name="Load")

    assert caught.value.failed_tasks == {"Load": first, "Load (2)": second}
    assert str(caught.value).startswith("2 tasks failed: Load: KeyError")


async def test_body_error_without_task_failures_leaves_unchanged() -> None:
    error = RuntimeError("in the body")
    started = asyncio.Event()
    cancelled: list[bool] = []

    async def waits() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    with pytest.raises(RuntimeError) as caught:
        async with NarrativeTaskGroup() as tg:
            tg.create_task(waits())
            await started.wait()
            raise error

    assert caught.value is error
    assert cancelled == [True]


async def test_body_error_with_task_failures_is_part_of_the_group_error() -> None:
    task_error, body_error = ValueError("task"), RuntimeError("body")

    async def boom() -> None:
        raise task_error

    with pytest.raises(NarrativeTaskGroupError) as caught:
        async with NarrativeTaskGroup() as tg:
            tg.create_task(boom(), name="Boom")
            await asyncio.sleep(0.01)
            raise body_error

    assert caught.value.failed_tasks == {"<body>": body_error, "Boom": task_error}


async def test_cancelling_the_block_cancels_the_tasks_and_propagates() -> None:
    child_cancelled = asyncio.Event()
    in_group = asyncio.Event()

    async def child() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            child_cancelled.set()
            raise

    async def parent() -> None:
        async with NarrativeTaskGroup() as tg:
            tg.create_task(child())
            in_group.set()

    runner = asyncio.get_running_loop().create_task(parent())
    await in_group.wait()
    await asyncio.sleep(0)
    runner.cancel()

    with pytest.raises(asyncio.CancelledError):
        await runner
    assert child_cancelled.is_set()


async def test_base_exception_in_a_task_leaves_unchanged() -> None:
    class Stop(BaseException):
        pass

    stop = Stop()

    async def stops() -> None:
        raise stop

    with pytest.raises(Stop) as caught:
        async with NarrativeTaskGroup() as tg:
            tg.create_task(stops())
            tg.create_task(asyncio.sleep(10))

    assert caught.value is stop


async def test_create_task_outside_the_block_is_refused() -> None:
    group = NarrativeTaskGroup()
    coroutine = fetch("early")
    with pytest.raises(RuntimeError, match="not entered"):
        group.create_task(coroutine)

    async with group:
        pass
    with pytest.raises(RuntimeError, match="finished"):
        group.create_task(fetch("late"))


async def test_tasks_outside_a_story_run_too() -> None:
    async with NarrativeTaskGroup() as tg:
        task = tg.create_task(asyncio.sleep(0, result="plain"))

    assert task.result() == "plain"


def test_group_error_pickles_with_its_failures() -> None:
    error = NarrativeTaskGroupError({"Job": ValueError("x")}, ("Other",))

    copy = pickle.loads(pickle.dumps(error))

    assert str(copy) == str(error)
    assert copy.cancelled_tasks == ("Other",)
    assert type(copy.failed_tasks["Job"]) is ValueError


PY39 = Path(os.environ.get("RUNTIME_NARRATIVE_TEST_PY39", "/nonexistent"))

SCRIPT_39 = """
import asyncio, sys
from runtime_narrative import NarrativeTaskGroup, NarrativeTaskGroupError, stage
from runtime_narrative.testing import StoryRecorder

async def ok():
    with stage("OK"):
        await asyncio.sleep(0)

async def bad():
    raise ValueError("bad")

async def slow():
    await asyncio.sleep(30)

async def main():
    try:
        async with StoryRecorder("Py39") as recorder:
            async with NarrativeTaskGroup() as tg:
                tg.create_task(ok(), name="Ok")
                tg.create_task(slow(), name="Slow")
                tg.create_task(bad(), name="Bad")
    except NarrativeTaskGroupError as error:
        print(sys.version_info[:2], sorted(error.failed_tasks), error.cancelled_tasks)
        print([e.stage_name for e in recorder.stages_completed])

asyncio.run(main())
"""


@pytest.mark.skipif(
    not PY39.exists(), reason="set RUNTIME_NARRATIVE_TEST_PY39 to a Python 3.9"
)
def test_same_semantics_on_python_39() -> None:
    result = subprocess.run(
        [str(PY39), "-c", SCRIPT_39],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["(3, 9) ['Bad'] ('Slow',)", "['OK']"]
