"""The built-in rules, run on a corpus of small failing programs.

Each program under tests/rules_corpus/ raises when run inside a story. Its
``EXPECT`` names the phrases the rules' diagnosis must contain, or is ``None``
when the rules must stay silent; ``MODE`` picks lean (the default) or rich
diagnostics.
"""

from __future__ import annotations

import ast
import asyncio
import os
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

import pytest

from runtime_narrative import FailureAnalyzer, RulesFailureAnalyzer
from runtime_narrative.analyzers.rules import diagnose
from runtime_narrative.events import FailureOccurred
from runtime_narrative.testing import StoryRecorder

CORPUS = Path(__file__).parent / "rules_corpus"
PROGRAMS = sorted(CORPUS.glob("*.py"))


def _header(path: Path) -> tuple[Optional[tuple[str, ...]], str]:
    expect: Optional[tuple[str, ...]] = None
    mode = "lean"
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name == "EXPECT":
                expect = ast.literal_eval(node.value)
            elif name == "MODE":
                mode = ast.literal_eval(node.value)
    return expect, mode


def _run(path: Path, mode: str) -> tuple[StoryRecorder, BaseException]:
    recorder = StoryRecorder(
        f"corpus {path.stem}",
        failure_diagnostics=mode,
        app_roots=[str(CORPUS)],
    )
    with pytest.raises(Exception) as raised:
        with recorder:
            runpy.run_path(str(path), run_name="__main__")
    return recorder, raised.value


def test_the_corpus_covers_every_rule_and_the_silent_cases() -> None:
    headers = [_header(path) for path in PROGRAMS]
    diagnosed = [path.stem for path, (expect, _) in zip(PROGRAMS, headers) if expect]
    silent = [path.stem for path, (expect, _) in zip(PROGRAMS, headers) if not expect]
    families = {name.split("_")[0] for name in diagnosed}

    assert len(diagnosed) >= 40
    assert len(silent) >= 10
    assert families >= {
        "integrity", "key", "index", "none", "type", "value", "file",
        "permission", "import", "json", "unicode", "refused", "timeout",
        "recursion", "zero", "assert",
    }  # fmt: skip


@pytest.mark.parametrize("path", PROGRAMS, ids=[path.stem for path in PROGRAMS])
def test_corpus_program(path: Path) -> None:
    expect, mode = _header(path)

    recorder, error = _run(path, mode)

    recorder.assert_story_completed(success=False)
    [failure] = recorder.failures
    assert failure.error_type == type(error).__name__
    assert failure.llm_analysis is None
    if expect is None:
        assert failure.rules_analysis is None, failure.rules_analysis
        return
    analysis = failure.rules_analysis
    assert analysis is not None, f"no diagnosis for {failure.exception_chain}"
    assert analysis.startswith("## Exact Why\n")
    assert "\n\n## Targeted Fix\n" in analysis
    for phrase in expect:
        assert phrase in analysis, f"{phrase!r} missing from:\n{analysis}"


def test_the_example_shows_the_duplicate_customer_diagnosis(tmp_path: Path) -> None:
    root = Path(__file__).parent.parent
    env = {**os.environ, "PYTHONPATH": str(root / "src"), "NO_COLOR": "1"}

    result = subprocess.run(
        [sys.executable, str(root / "examples" / "import_customers.py"),
         "--db", str(tmp_path / "customers.db")],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip

    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "## Exact Why" in output
    assert "## Targeted Fix" in output
    assert "UNIQUE constraint on customers.customer_id" in output
    assert "duplicate customer id 1004" in output


def test_the_rules_are_deterministic() -> None:
    path = CORPUS / "key_close_match_rich.py"
    first, _ = _run(path, "rich")
    second, _ = _run(path, "rich")

    assert first.failures[0].rules_analysis == second.failures[0].rules_analysis


def test_an_llm_analyzer_sees_the_rules_diagnosis() -> None:
    seen: list[Optional[str]] = []

    class Looking:
        def analyze_failure(self, *, failure: Any, **_: Any) -> str:
            seen.append(failure.rules_analysis)
            return "## Exact Why\nseen"

    recorder = StoryRecorder("rules first", failure_analyzer=Looking())

    with pytest.raises(ZeroDivisionError):
        with recorder:
            count = 0
            print(10 / count)

    [failure] = recorder.failures
    assert seen == [failure.rules_analysis]
    assert failure.rules_analysis is not None
    assert failure.llm_analysis == "## Exact Why\nseen"


def test_rules_failure_analyzer_satisfies_the_protocol() -> None:
    recorder = StoryRecorder("rules analyzer", failure_analyzer=RulesFailureAnalyzer())

    with pytest.raises(KeyError):
        with recorder:
            {"a": 1}["b"]

    assert isinstance(RulesFailureAnalyzer(), FailureAnalyzer)
    [failure] = recorder.failures
    assert failure.llm_analysis == failure.rules_analysis
    assert failure.rules_analysis is not None


async def test_rules_failure_analyzer_async() -> None:
    recorder = StoryRecorder("rules analyzer", failure_analyzer=RulesFailureAnalyzer())

    with pytest.raises(ZeroDivisionError):
        async with recorder:
            await asyncio.sleep(0)
            total = 0
            print(1 // total)

    [failure] = recorder.failures
    assert failure.llm_analysis == failure.rules_analysis
    assert "`total` was 0" in (failure.rules_analysis or "")


def test_diagnose_on_an_event_built_without_a_chain() -> None:
    recorder = StoryRecorder("bare")
    with pytest.raises(ModuleNotFoundError):
        with recorder:
            saved = sys.path[:]
            sys.path[:] = []
            try:
                import runtime_narrative_no_such_module  # noqa: F401
            finally:
                sys.path[:] = saved
    event: FailureOccurred = recorder.failures[0]
    assert event.rules_analysis is not None
    assert "runtime_narrative_no_such_module" in event.rules_analysis
    assert diagnose.__module__ == "runtime_narrative.analyzers.rules"
