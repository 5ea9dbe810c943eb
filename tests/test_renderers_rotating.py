from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from runtime_narrative import RotatingJsonRenderer, stage, story

SRC = str(Path(__file__).resolve().parents[1] / "src")


def all_lines(path: Path, backups: int) -> list[dict[str, object]]:
    """Every line of path and its backups, oldest file first, each parsed."""
    files = [Path(f"{path}.{n}") for n in range(backups, 0, -1)] + [path]
    lines = []
    for file in files:
        if file.exists():
            text = file.read_text(encoding="utf-8")
            assert text == "" or text.endswith("\n"), f"{file} ends mid-line"
            lines.extend(json.loads(line) for line in text.splitlines())
    return lines


def test_rotation_moves_path_to_path_1_and_keeps_backup_count(tmp_path: Path) -> None:
    path = tmp_path / "stories.jsonl"
    renderer = RotatingJsonRenderer(path, max_bytes=600, backup_count=2)

    for number in range(40):
        with story(f"S{number}", renderers=[renderer]):
            pass

    assert path.exists()
    assert Path(f"{path}.1").exists()
    assert Path(f"{path}.2").exists()
    assert not Path(f"{path}.3").exists()
    assert all(os.path.getsize(f) <= 600 for f in (path, Path(f"{path}.1")))
    newest = [json.loads(line) for line in path.read_text().splitlines()]
    assert newest[-1]["story_name"] == "S39"
    older = [json.loads(line) for line in Path(f"{path}.1").read_text().splitlines()]
    assert older[-1]["timestamp"] <= newest[0]["timestamp"]
    renderer.close()


def test_many_threads_lose_and_tear_no_line_across_rotation(tmp_path: Path) -> None:
    path = tmp_path / "threads.jsonl"
    renderer = RotatingJsonRenderer(path, max_bytes=4096, backup_count=1000)

    def work(thread_number: int) -> None:
        for number in range(30):
            with story(f"T{thread_number}-{number}", renderers=[renderer]):
                with stage("a" * (number * 7)):
                    pass

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    lines = all_lines(path, 1000)
    assert len(lines) == 8 * 30 * 4
    names = {line["story_name"] for line in lines if line["event"] == "StoryCompleted"}
    assert len(names) == 240
    assert Path(f"{path}.5").exists()  # it did rotate, many times
    renderer.close()


PROCESS_SCRIPT = """
import sys
from runtime_narrative import RotatingJsonRenderer, stage, story
renderer = RotatingJsonRenderer(sys.argv[1], max_bytes=3000, backup_count=1000)
for number in range(50):
    with story("P%s-%d" % (sys.argv[2], number), renderers=[renderer]):
        with stage("work"):
            pass
"""


def test_several_processes_lose_and_tear_no_line_across_rotation(
    tmp_path: Path,
) -> None:
    path = tmp_path / "processes.jsonl"
    environment = {**os.environ, "PYTHONPATH": SRC}

    processes = [
        subprocess.Popen(
            [sys.executable, "-c", PROCESS_SCRIPT, str(path), str(n)], env=environment
        )
        for n in range(4)
    ]
    for process in processes:
        process.wait(timeout=60)

    assert [p.returncode for p in processes] == [0, 0, 0, 0]
    lines = all_lines(path, 1000)
    assert len(lines) == 4 * 50 * 4
    completed = [line for line in lines if line["event"] == "StoryCompleted"]
    assert len({line["story_name"] for line in completed}) == 200
    assert Path(f"{path}.3").exists()


def test_a_line_longer_than_max_bytes_is_written_whole(tmp_path: Path) -> None:
    path = tmp_path / "long.jsonl"
    renderer = RotatingJsonRenderer(path, max_bytes=100, backup_count=3)

    with story("x" * 500, renderers=[renderer]):
        pass

    lines = all_lines(path, 3)
    assert [line["event"] for line in lines] == ["StoryStarted", "StoryCompleted"]
    renderer.close()


def test_backup_count_below_one_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="backup_count"):
        RotatingJsonRenderer(tmp_path / "x.jsonl", backup_count=0)
