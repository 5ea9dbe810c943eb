from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
import sqlite3
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import pytest

from runtime_narrative.diagnostics import (
    FailureDiagnostics,
    FailureDiagnosticsConfig,
    capture,
)

capture_module = sys.modules["runtime_narrative.diagnostics._capture"]

_loaded = 0


def load_module(path: Path, source: str) -> ModuleType:
    """Write ``source`` to ``path`` and import it under a fresh name."""
    global _loaded
    _loaded += 1
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source).lstrip("\n"))
    spec = importlib.util.spec_from_file_location(f"diag_app_{_loaded}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def raised(func: Callable[[], Any]) -> BaseException:
    try:
        func()
    except BaseException as exc:
        return exc
    raise AssertionError("expected an exception")


def as_json(diagnostics: FailureDiagnostics) -> str:
    return json.dumps(dataclasses.asdict(diagnostics), default=str)


@pytest.fixture
def app(tmp_path: Path) -> ModuleType:
    load_module(
        tmp_path / "site-packages" / "fakelib.py",
        """
        def call(callback):
            return callback()

        def explode():
            raise LookupError("deep in the library")
        """,
    )
    sys.path.insert(0, str(tmp_path / "site-packages"))
    try:
        return load_module(
            tmp_path / "project" / "app.py",
            """
            import json

            import fakelib


            def insert_row(row_id):
                rows = [row_id]
                raise ValueError(f"duplicate customer id {row_id}")


            def main():
                return insert_row(7)


            def through_library():
                return fakelib.call(lambda: insert_row(8))


            def into_library():
                fakelib.explode()


            def parse():
                return json.loads('{"a": 1,')
            """,
        )
    finally:
        sys.path.remove(str(tmp_path / "site-packages"))
        sys.modules.pop("fakelib", None)


@pytest.fixture
def config(tmp_path: Path) -> FailureDiagnosticsConfig:
    return FailureDiagnosticsConfig(app_roots=(str(tmp_path / "project"),))


def test_primary_frame_is_innermost_app_frame(
    app: ModuleType, config: FailureDiagnosticsConfig
) -> None:
    exc = raised(app.main)

    result = capture(exc, config)

    assert result.error_type == "ValueError"
    assert result.error_message == "duplicate customer id 7"
    assert result.primary_frame_reason == "innermost_app"
    assert result.function == "insert_row"
    assert result.lineno == 8
    assert result.source_line == 'raise ValueError(f"duplicate customer id {row_id}")'
    assert [f.kind for f in result.frames] == ["library", "app", "app"]
    assert [f.is_primary for f in result.frames] == [False, False, True]
    assert result.exact_cause == (
        "ValueError raised at app.py:8 in insert_row: duplicate customer id 7"
    )


def test_library_frame_is_primary_only_without_app_frames(
    app: ModuleType, tmp_path: Path
) -> None:
    exc = raised(app.into_library)
    elsewhere = FailureDiagnosticsConfig(app_roots=(str(tmp_path / "elsewhere"),))

    with_app = capture(exc, FailureDiagnosticsConfig(app_roots=(str(tmp_path),)))
    without_app = capture(exc, elsewhere)

    assert with_app.primary_frame_reason == "innermost_app"
    assert with_app.function == "into_library"
    assert without_app.primary_frame_reason == "innermost_library"
    assert without_app.function == "explode"


def test_library_run_is_folded_in_the_summary(
    app: ModuleType, config: FailureDiagnosticsConfig
) -> None:
    exc = raised(app.through_library)

    result = capture(exc, config)

    lines = result.compressed_stack_summary.splitlines()
    assert lines[1:] == [
        "→ app.py:16 through_library",
        "→ [1 library frame: fakelib]",
        "→ app.py:16 <lambda>",
        "→ app.py:8 insert_row",
    ]
    assert result.hidden_frame_count == 2


def test_stdlib_frames_are_classified_and_folded(
    app: ModuleType, config: FailureDiagnosticsConfig
) -> None:
    exc = raised(app.parse)

    result = capture(exc, config)

    assert result.primary_frame_reason == "innermost_app"
    assert result.function == "parse"
    assert {f.kind for f in result.frames} == {"library", "app", "stdlib"}
    assert "stdlib frame" in result.compressed_stack_summary
    assert "json" in result.compressed_stack_summary
    attributes = result.chain[0].attributes
    assert (attributes["lineno"], attributes["colno"]) == (1, 9)
    assert attributes["doc_excerpt"] == '{"a": 1,'


def test_snippet_marks_the_failing_line(
    app: ModuleType, config: FailureDiagnosticsConfig
) -> None:
    exc = raised(app.main)

    result = capture(exc, config)

    assert result.source_snippet == (
        "     6 | def insert_row(row_id):\n"
        "     7 |     rows = [row_id]\n"
        '>    8 |     raise ValueError(f"duplicate customer id {row_id}")\n'
        "     9 | \n"
        "    10 | "
    )


def test_explicit_cause_chain() -> None:
    def insert() -> None:
        try:
            raise sqlite3.IntegrityError("UNIQUE constraint failed: customers.id")
        except sqlite3.IntegrityError as error:
            raise ValueError("duplicate customer id") from error

    result = capture(raised(insert), FailureDiagnosticsConfig())

    assert result.exception_chain == (
        "ValueError: duplicate customer id"
        " <- IntegrityError: UNIQUE constraint failed: customers.id"
    )
    assert [link.error_type for link in result.chain] == [
        "ValueError",
        "sqlite3.IntegrityError",
    ]
    assert [link.relation for link in result.chain] == ["cause", None]
    assert result.chain[1].function == "insert"
    assert "direct cause" in result.traceback_text


def test_from_none_hides_the_context() -> None:
    def convert() -> None:
        try:
            {}["missing"]
        except KeyError:
            raise ValueError("no such setting") from None

    result = capture(raised(convert), FailureDiagnosticsConfig())

    assert result.exception_chain == "ValueError: no such setting"
    assert len(result.chain) == 1


def test_implicit_context_is_followed() -> None:
    def cleanup() -> None:
        try:
            raise OSError(2, "No such file or directory", "/tmp/missing.txt")
        except OSError:
            raise RuntimeError("cleanup failed")  # noqa: B904

    result = capture(raised(cleanup), FailureDiagnosticsConfig())

    assert [link.relation for link in result.chain] == ["context", None]
    assert result.chain[1].attributes["errno"] == 2
    assert result.chain[1].attributes["filename"] == "/tmp/missing.txt"
    assert "During handling" in result.traceback_text


def test_cyclic_chain_terminates() -> None:
    first = ValueError("first")
    second = KeyError("second")
    first.__context__ = second
    second.__context__ = first

    result = capture(first, FailureDiagnosticsConfig())

    assert len(result.chain) == 2
    assert result.capture_error is None
    assert result.exception_chain == "ValueError: first <- KeyError: 'second'"


def test_raising_str_becomes_a_marker() -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise TypeError("no str")

    def fail() -> None:
        raise Unprintable()

    result = capture(raised(fail), FailureDiagnosticsConfig())

    assert result.error_message == "<str() failed: TypeError>"
    assert "Unprintable" in result.traceback_text
    assert "in fail" in result.traceback_text
    assert result.capture_error is None


def test_exception_without_traceback() -> None:
    result = capture(ValueError("never raised"), FailureDiagnosticsConfig())

    assert result.filename is None
    assert result.frames == ()
    assert result.exact_cause == "ValueError raised: never raised"


def test_attributes_for_analyzers(tmp_path: Path) -> None:
    missing = tmp_path / "missing.csv"

    os_error = capture(raised(lambda: missing.open()), FailureDiagnosticsConfig())
    unicode_error = capture(
        raised(lambda: b"ok\xff".decode("utf-8")), FailureDiagnosticsConfig()
    )
    key_error = capture(raised(lambda: {}["customer_id"]), FailureDiagnosticsConfig())

    assert os_error.chain[0].attributes["errno"] == 2
    assert os_error.chain[0].attributes["filename"] == str(missing)
    assert unicode_error.chain[0].attributes["encoding"] == "utf-8"
    assert unicode_error.chain[0].attributes["bad_bytes"] == "ff"
    assert unicode_error.chain[0].attributes["start"] == 2
    assert key_error.chain[0].attributes["key"] == "'customer_id'"
    json.dumps([link.attributes for link in os_error.chain])


@pytest.mark.skipif(sys.version_info < (3, 11), reason="ExceptionGroup is 3.11+")
def test_exception_group_members() -> None:
    def fail() -> None:
        inner = ExceptionGroup("inner", [KeyError("k")])  # noqa: F821
        raise ExceptionGroup("batch", [ValueError("bad row"), inner])  # noqa: F821

    result = capture(raised(fail), FailureDiagnosticsConfig())

    members = result.group_members
    assert [m["type"] for m in members] == ["ValueError", "ExceptionGroup"]
    assert members[0]["message"] == "bad row"
    assert members[1]["nested"][0]["type"] == "KeyError"
    assert members[0]["nested"] == []


def test_own_package_frames_are_excluded() -> None:
    exc = raised(lambda: FailureDiagnosticsConfig(failure_diagnostics="bogus"))

    result = capture(exc, FailureDiagnosticsConfig())

    assert all("runtime_narrative" not in f.filename for f in result.frames)
    assert result.function == "<lambda>"


def test_lean_mode_captures_no_locals() -> None:
    calls = []

    class Watched:
        def __repr__(self) -> str:
            calls.append(1)
            return "watched"

    def fail(value: Any) -> None:
        raise ValueError("lean")

    result = capture(raised(lambda: fail(Watched())), FailureDiagnosticsConfig())

    assert result.diagnostics_mode == "lean"
    assert result.locals_by_frame is None
    assert calls == []


class HugeRepr:
    def __repr__(self) -> str:
        return "y" * 50_000_000


class RaisingRepr:
    def __repr__(self) -> str:
        raise ValueError("broken repr")


def test_rich_locals_are_bounded_and_safe() -> None:
    def fail() -> None:
        huge_set = set(range(3_000_000))
        huge_repr = HugeRepr()
        broken = RaisingRepr()
        count = 42
        raise RuntimeError(f"{len(huge_set)} {huge_repr is broken} {count}")

    config = FailureDiagnosticsConfig(failure_diagnostics="rich")

    result = capture(raised(fail), config)

    assert result.locals_by_frame is not None
    frame = result.locals_by_frame[f"frame_{len(result.frames) - 1}"]
    values = frame["locals"]
    assert frame["function"] == "fail"
    assert sorted(values) == ["broken", "count", "huge_repr", "huge_set"]
    assert values["broken"] == "<repr failed: ValueError>"
    assert values["count"] == "42"
    assert len(values["huge_set"]) < 300
    assert len(values["huge_repr"]) < 300


def test_rich_locals_limits_and_frame_order() -> None:
    def inner(a: int, b: int, c: int, d: int, e: int) -> None:
        raise ValueError("limits")

    def outer() -> None:
        marker = "outer frame"
        inner(1, 2, 3, 4, 5)
        del marker

    config = FailureDiagnosticsConfig(
        failure_diagnostics="rich", max_locals_per_frame=3, max_frames_with_locals=2
    )

    result = capture(raised(outer), config)

    assert result.locals_by_frame is not None
    frames = list(result.locals_by_frame.values())
    assert [f["function"] for f in frames] == ["inner", "outer"]
    assert frames[0]["locals"] == {"a": "1", "b": "2", "c": "3"}
    assert frames[0]["omitted_locals"] == 2
    assert frames[1]["locals"]["marker"] == "'outer frame'"


def test_module_globals_are_never_captured(tmp_path: Path) -> None:
    exc = raised(
        lambda: load_module(
            tmp_path / "script.py",
            """
            GLOBAL_VALUE = "visible-global-value"
            raise RuntimeError("module level failure")
            """,
        )
    )
    config = FailureDiagnosticsConfig(
        failure_diagnostics="rich", app_roots=(str(tmp_path),)
    )

    result = capture(exc, config)

    assert result.function == "<module>"
    assert result.locals_by_frame is not None
    module_frame = result.locals_by_frame[f"frame_{len(result.frames) - 1}"]
    assert module_frame["locals"] == {}
    assert "visible-global-value" not in json.dumps(result.locals_by_frame)


def test_production_caps_traceback_and_downgrades_rich() -> None:
    # Two alternating functions, so the traceback does not fold repeats.
    def ping(depth: int) -> None:
        if depth == 0:
            raise RecursionError("too deep for comfort")
        pong(depth - 1)

    def pong(depth: int) -> None:
        ping(depth - 1)

    config = FailureDiagnosticsConfig(
        runtime_environment="production", failure_diagnostics="rich"
    )

    result = capture(raised(lambda: ping(300)), config)

    assert result.diagnostics_mode == "lean"
    assert result.locals_by_frame is None
    assert result.traceback_truncated is True
    assert len(result.traceback_text) <= 8000
    assert result.traceback_text.startswith("[traceback truncated:")
    assert result.traceback_text.endswith("RecursionError: too deep for comfort\n")


def test_uncapped_traceback_is_complete() -> None:
    config = FailureDiagnosticsConfig(max_traceback_chars=None)

    result = capture(raised(lambda: 1 / 0), config)

    assert result.traceback_truncated is False
    assert result.traceback_text.startswith("Traceback (most recent call last):")


def test_very_deep_stack_keeps_both_ends() -> None:
    def recurse(depth: int) -> None:
        if depth == 0:
            raise ValueError("bottom")
        recurse(depth - 1)

    result = capture(raised(lambda: recurse(400)), FailureDiagnosticsConfig())

    assert len(result.frames) == capture_module.MAX_FRAMES
    assert "frames omitted]" in result.compressed_stack_summary
    assert result.frames[-1].function == "recurse"


SECRETS = (
    "hunter2-planted",
    "s3cr3t-url-pass",
    "sk-ant-api03-plantedplantedplanted",
    "ghp_plantedplantedplantedplanted1234",
    "tok-in-nested-dict",
    "cause-bearer-value",
    "4111111111111111",
)


def test_planted_secrets_survive_nowhere(tmp_path: Path) -> None:
    module = load_module(
        tmp_path / "leaky.py",
        """
        def connect(settings):
            password = "hunter2-planted"
            url = "postgres://app:s3cr3t-url-pass@db.internal/prod"
            card = "4111111111111111"
            try:
                raise ConnectionError("upstream said Bearer cause-bearer-value")
            except ConnectionError as error:
                raise RuntimeError(
                    "login failed with key sk-ant-api03-plantedplantedplanted"
                    " and ghp_plantedplantedplantedplanted1234"
                ) from error
        """,
    )
    settings = {"nested": {"auth_token": "tok-in-nested-dict"}, "region": "eu"}
    config = FailureDiagnosticsConfig(
        failure_diagnostics="rich", app_roots=(str(tmp_path),)
    )

    result = capture(raised(lambda: module.connect(settings)), config)

    text = as_json(result)
    leaked = [secret for secret in SECRETS if secret in text]
    assert leaked == []
    assert result.redaction_removed_keys >= 2
    assert "'region': 'eu'" in text
    assert result.locals_by_frame is not None


@pytest.mark.allow_internal_errors
def test_failing_step_sets_capture_error(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(capture_module, "_snippet", broken)

    with caplog.at_level(logging.WARNING, logger="runtime_narrative"):
        result = capture(raised(lambda: 1 / 0), FailureDiagnosticsConfig())

    assert result.capture_error == "snippet: OSError"
    assert result.error_type == "ZeroDivisionError"
    assert result.source_snippet is None
    assert result.traceback_text
    assert "snippet failed" in caplog.text


def test_result_serializes_to_json(app: ModuleType) -> None:
    config = FailureDiagnosticsConfig(failure_diagnostics="rich")

    result = capture(raised(app.main), config)

    assert json.loads(json.dumps(dataclasses.asdict(result)))["error_type"] == (
        "ValueError"
    )
