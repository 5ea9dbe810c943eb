"""The language-model analyzers against servers that speak each real protocol.

One threaded HTTP server on 127.0.0.1 answers Ollama's ``/api/generate``,
OpenAI's ``/v1/chat/completions`` and Anthropic's ``/v1/messages`` (the last
reached through the real ``anthropic`` SDK). Each test sets how it answers:
well, with text that is not JSON, too slowly, with an error status, or by
dropping the connection half-way.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional

import pytest

from runtime_narrative import (
    AnthropicFailureAnalyzer,
    FailureAnalyzer,
    LLMFailureAnalyzer,
    OllamaFailureAnalyzer,
)
from runtime_narrative.analyzers._prompt import (
    TRACEBACK_OMITTED,
    build_prompt,
    format_answer,
)
from runtime_narrative.diagnostics import FailureDiagnostics
from runtime_narrative.testing import StoryRecorder

ANSWER = {
    "exact_why": "The customers table already holds customer_id 1004.",
    "evidence": "UNIQUE constraint failed: customers.customer_id",
    "targeted_fix": "Skip ids already seen before inserting.",
    "code_changes": "seen = set()",
}
FORMATTED = (
    "## Exact Why\nThe customers table already holds customer_id 1004.\n\n"
    "## Evidence\nUNIQUE constraint failed: customers.customer_id\n\n"
    "## Targeted Fix\nSkip ids already seen before inserting.\n\n"
    "## Code Changes\nseen = set()"
)
PLAIN = "The id is a duplicate; dedupe the input."


class ModelServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.mode = "good"
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.release = threading.Event()
        self.lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def bodies(self) -> str:
        with self.lock:
            return "\n".join(body.decode("utf-8") for _, _, body in self.requests)


class _Handler(BaseHTTPRequestHandler):
    server: ModelServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        with self.server.lock:
            self.server.requests.append(
                (self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            )
        request = json.loads(body)
        mode = self.server.mode
        if mode == "slow":
            self.server.release.wait(10)
        if mode.startswith("status:"):
            status = int(mode.split(":")[1])
            self._send(status, _error_body(self.path, status))
            return
        text = json.dumps(ANSWER) if mode in ("good", "slow", "drop") else PLAIN
        payload = _answer(self.path, request, text)
        if mode == "drop":
            self._drop(payload)
            return
        self._send(200, payload)

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _drop(self, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 3])
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True


def _answer(path: str, request: dict[str, Any], text: str) -> dict[str, Any]:
    model = request.get("model", "")
    if path == "/api/generate":
        return {
            "model": model,
            "created_at": "2024-05-01T12:00:00.000000Z",
            "response": text,
            "done": True,
            "done_reason": "stop",
            "context": [1, 2, 3],
            "total_duration": 1_000_000,
            "load_duration": 10_000,
            "prompt_eval_count": 120,
            "eval_count": 40,
        }
    if path == "/v1/chat/completions":
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1_714_564_800,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": 120,
                "completion_tokens": 40,
                "total_tokens": 160,
            },
        }
    return {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 120, "output_tokens": 40},
    }


def _error_body(path: str, status: int) -> dict[str, Any]:
    if path == "/v1/messages":
        kind = "api_error" if status >= 500 else "invalid_request_error"
        return {
            "type": "error",
            "error": {"type": kind, "message": "broken on purpose"},
        }
    return {"error": {"message": "broken on purpose", "code": status}}


@pytest.fixture
def server() -> Iterator[ModelServer]:
    model_server = ModelServer()
    thread = threading.Thread(
        target=model_server.serve_forever, args=(0.05,), daemon=True
    )
    thread.start()
    try:
        yield model_server
    finally:
        model_server.release.set()
        model_server.shutdown()
        model_server.server_close()
        thread.join(5)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


Factory = Callable[[str, float], Any]
KINDS: dict[str, Factory] = {
    "ollama": lambda base, timeout: OllamaFailureAnalyzer(
        model="llama3", endpoint=f"{base}/api/generate", timeout_seconds=timeout
    ),
    "openai": lambda base, timeout: LLMFailureAnalyzer(
        model="gpt-4o-mini",
        endpoint=f"{base}/v1/chat/completions",
        api_key="test-key",
        timeout_seconds=timeout,
    ),
    "anthropic": lambda base, timeout: AnthropicFailureAnalyzer(
        api_key="test-key", base_url=base, timeout_seconds=timeout
    ),
}


class Boom(Exception):
    pass


def _fail_in_story(analyzer: Any, **story_kwargs: Any) -> tuple[StoryRecorder, Boom]:
    error = Boom("the import broke")
    recorder = StoryRecorder("Import", failure_analyzer=analyzer, **story_kwargs)
    with pytest.raises(Boom) as raised:
        with recorder:
            raise error
    assert raised.value is error
    recorder.assert_story_completed(success=False)
    return recorder, error


async def _fail_in_async_story(analyzer: Any) -> StoryRecorder:
    error = Boom("the import broke")
    recorder = StoryRecorder("Import", failure_analyzer=analyzer)
    with pytest.raises(Boom) as raised:
        async with recorder:
            raise error
    assert raised.value is error
    recorder.assert_story_completed(success=False)
    return recorder


# --- good answers --------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_a_json_answer_becomes_four_sections(kind: str, server: ModelServer) -> None:
    analyzer = KINDS[kind](server.base_url, 5.0)

    recorder, _ = _fail_in_story(analyzer)

    assert isinstance(analyzer, FailureAnalyzer)
    assert recorder.failures[0].llm_analysis == FORMATTED
    [(path, headers, body)] = server.requests
    request = json.loads(body)
    if kind == "ollama":
        assert path == "/api/generate"
        assert request["stream"] is False
        assert request["format"] == "json"
        assert request["model"] == "llama3"
        assert "Boom: the import broke" in request["prompt"]
    elif kind == "openai":
        assert path == "/v1/chat/completions"
        assert request["response_format"] == {"type": "json_object"}
        assert headers["authorization"] == "Bearer test-key"
        assert "Boom: the import broke" in request["messages"][0]["content"]
    else:
        assert path == "/v1/messages"
        assert request["model"] == "claude-haiku-4-5-20251001"
        assert request["max_tokens"] == 1024
        # The SDK sends the key as x-api-key or, in newer versions, as a bearer.
        sent_key = headers.get("x-api-key") or headers.get("authorization", "")
        assert sent_key.replace("Bearer ", "") == "test-key"
        assert "Boom: the import broke" in request["messages"][0]["content"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_non_json_answer_is_kept_as_text(kind: str, server: ModelServer) -> None:
    server.mode = "text"

    recorder, _ = _fail_in_story(KINDS[kind](server.base_url, 5.0))

    assert recorder.failures[0].llm_analysis == PLAIN


@pytest.mark.parametrize("kind", KINDS)
async def test_async_stories_get_the_answer(kind: str, server: ModelServer) -> None:
    recorder = await _fail_in_async_story(KINDS[kind](server.base_url, 5.0))

    assert recorder.failures[0].llm_analysis == FORMATTED
    assert len(server.requests) == 1


def test_the_anthropic_model_comes_from_the_environment(
    server: ModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNTIME_NARRATIVE_MODEL", "claude-test-model")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "env-key")
    analyzer = AnthropicFailureAnalyzer(base_url=server.base_url)

    _fail_in_story(analyzer)

    [(_, headers, body)] = server.requests
    assert json.loads(body)["model"] == "claude-test-model"
    sent_key = headers.get("x-api-key") or headers.get("authorization", "")
    assert sent_key.replace("Bearer ", "") == "env-key"
    assert analyzer.timeout_seconds == 30.0
    assert "env-key" not in repr(analyzer)


# --- failures of the analyzer -----------------------------------------------------


def _assert_reported(records: list[logging.LogRecord], analyzer: Any) -> None:
    named = [r for r in records if type(analyzer).__name__ in r.getMessage()]
    assert len(named) == 1, [r.getMessage() for r in records]


@pytest.mark.allow_internal_errors
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("status", [400, 404, 500, 503])
def test_an_error_status_yields_no_analysis(
    kind: str,
    status: int,
    server: ModelServer,
    internal_errors: list[logging.LogRecord],
) -> None:
    server.mode = f"status:{status}"
    analyzer = KINDS[kind](server.base_url, 5.0)

    recorder, _ = _fail_in_story(analyzer)

    assert recorder.failures[0].llm_analysis is None
    assert len(server.requests) == 1  # no retries behind the story's back
    _assert_reported(internal_errors, analyzer)


@pytest.mark.allow_internal_errors
@pytest.mark.parametrize("kind", KINDS)
def test_a_slow_answer_is_abandoned_at_the_timeout(
    kind: str, server: ModelServer, internal_errors: list[logging.LogRecord]
) -> None:
    server.mode = "slow"
    analyzer = KINDS[kind](server.base_url, 0.3)

    started = time.monotonic()
    recorder, _ = _fail_in_story(analyzer)
    elapsed = time.monotonic() - started

    assert recorder.failures[0].llm_analysis is None
    assert elapsed < 3.0  # the server would have held it for 10 seconds
    _assert_reported(internal_errors, analyzer)


@pytest.mark.allow_internal_errors
@pytest.mark.parametrize("kind", KINDS)
async def test_a_slow_answer_in_an_async_story(
    kind: str, server: ModelServer, internal_errors: list[logging.LogRecord]
) -> None:
    server.mode = "slow"
    analyzer = KINDS[kind](server.base_url, 0.3)

    started = time.monotonic()
    recorder = await _fail_in_async_story(analyzer)
    elapsed = time.monotonic() - started

    assert recorder.failures[0].llm_analysis is None
    assert elapsed < 3.0
    assert len(internal_errors) >= 1


@pytest.mark.allow_internal_errors
@pytest.mark.parametrize("kind", KINDS)
def test_a_closed_port_yields_no_analysis(
    kind: str, internal_errors: list[logging.LogRecord]
) -> None:
    analyzer = KINDS[kind](f"http://127.0.0.1:{_closed_port()}", 5.0)

    started = time.monotonic()
    recorder, _ = _fail_in_story(analyzer)

    assert recorder.failures[0].llm_analysis is None
    assert time.monotonic() - started < 4.0
    _assert_reported(internal_errors, analyzer)


@pytest.mark.allow_internal_errors
@pytest.mark.parametrize("kind", KINDS)
def test_a_connection_dropped_mid_answer(
    kind: str, server: ModelServer, internal_errors: list[logging.LogRecord]
) -> None:
    server.mode = "drop"
    analyzer = KINDS[kind](server.base_url, 5.0)

    recorder, _ = _fail_in_story(analyzer)

    assert recorder.failures[0].llm_analysis is None
    assert recorder.failures[0].error_message == "the import broke"
    _assert_reported(internal_errors, analyzer)


@pytest.mark.allow_internal_errors
def test_http_errors_say_what_went_wrong(
    server: ModelServer, internal_errors: list[logging.LogRecord]
) -> None:
    server.mode = "status:500"

    _fail_in_story(KINDS["ollama"](server.base_url, 5.0))

    [record] = internal_errors
    assert "HTTP 500" in record.getMessage()
    assert "/api/generate" in record.getMessage()


# --- secrets never reach the model --------------------------------------------------

SECRETS = (
    "hunter2-local-secret",
    "sk-live-4f9a8b7c6d5e",
    "pa55w0rd-in-url",
    "tok-9f8e7d6c5b4a",
)


@pytest.mark.parametrize("kind", KINDS)
def test_secrets_never_reach_the_server(kind: str, server: ModelServer) -> None:
    analyzer = KINDS[kind](server.base_url, 5.0)
    recorder = StoryRecorder(
        "Sync Accounts", failure_analyzer=analyzer, failure_diagnostics="rich"
    )

    def connect() -> None:
        password = "hunter2-local-secret"
        api_key = "sk-live-4f9a8b7c6d5e"
        dsn = "postgresql://admin:pa55w0rd-in-url@127.0.0.1:5432/accounts"
        raise ConnectionError(
            f"cannot reach {dsn} with token=tok-9f8e7d6c5b4a ({len(password)},"
            f" {len(api_key)})"
        )

    with pytest.raises(ConnectionError):
        with recorder:
            connect()

    failure = recorder.failures[0]
    assert failure.locals_by_frame  # rich mode captured the frame's locals
    assert failure.llm_analysis == FORMATTED
    sent = server.bodies()
    assert "Sync Accounts" in sent
    assert "<redacted>" in sent
    for secret in SECRETS:
        assert secret not in sent


# --- the prompt ---------------------------------------------------------------


def _diagnostics(traceback_text: str, **changes: Any) -> FailureDiagnostics:
    values: dict[str, Any] = {
        "error_type": "ValueError",
        "error_message": "duplicate customer id 1004",
        "filename": "import_customers.py",
        "lineno": 72,
        "function": "insert_rows",
        "source_line": "raise ValueError(...) from exc",
        "exception_chain": "ValueError: duplicate <- IntegrityError: UNIQUE",
        "exact_cause": "ValueError raised",
        "traceback_text": traceback_text,
        "diagnostics_mode": "lean",
        "primary_frame_reason": "innermost_app",
        "frames": (),
        "source_snippet": None,
        "compressed_stack_summary": "",
        "hidden_frame_count": 0,
        "traceback_truncated": False,
        "locals_by_frame": None,
        "redaction_removed_keys": 0,
    }
    values.update(changes)
    return FailureDiagnostics(**values)


def _prompt(failure: FailureDiagnostics, budget: int) -> str:
    return build_prompt(
        story_name="Import Customers",
        stage_name="Insert Records",
        failure=failure,
        stage_timeline="Load CSV ✔ → Insert Records ✖",
        progress_percent=66,
        max_context_chars=budget,
    )


def test_the_prompt_keeps_the_most_recent_frames_within_the_budget() -> None:
    frames = "".join(
        f'  File "app.py", line {n}, in step_{n}\n    step_{n + 1}()\n'
        for n in range(400)
    )
    traceback_text = f"Traceback (most recent call last):\n{frames}ValueError: last\n"

    prompt = _prompt(_diagnostics(traceback_text), 4000)

    assert len(prompt) <= 4000
    assert "ValueError: last" in prompt
    assert "step_399" in prompt
    assert "step_0()" not in prompt
    assert "Traceback (most recent call last):\n  File" not in prompt


def test_the_prompt_omits_the_traceback_when_nothing_fits() -> None:
    prompt = _prompt(_diagnostics("x" * 50_000), 900)

    assert len(prompt) <= 900
    assert TRACEBACK_OMITTED in prompt
    assert "duplicate customer id 1004" in prompt


def test_the_prompt_carries_the_rules_diagnosis() -> None:
    failure = _diagnostics("short", rules_analysis="## Exact Why\nUNIQUE failed")

    prompt = _prompt(failure, 8000)

    assert "UNIQUE failed" in prompt
    assert "short" in prompt


@pytest.mark.parametrize("budget", [0, 50, 200, 1000, 3000, 20_000])
def test_the_prompt_never_exceeds_the_budget(budget: int) -> None:
    locals_by_frame = {
        "frame_0": {
            "function": "insert_rows",
            "lineno": 72,
            "locals": {f"name_{i}": "v" * 150 for i in range(12)},
        }
    }
    failure = _diagnostics(
        "T" * 30_000, source_snippet="S" * 2000, locals_by_frame=locals_by_frame
    )

    prompt = _prompt(failure, budget)

    assert len(prompt) <= max(budget, 200)


def test_format_answer_reads_fenced_json_and_lists() -> None:
    answer = '```json\n{"exact_why": "why", "evidence": ["a", "b"]}\n```'

    formatted = format_answer(answer)

    assert formatted == (
        "## Exact Why\nwhy\n\n## Evidence\na\nb\n\n"
        "## Targeted Fix\nNot given.\n\n## Code Changes\nNot given."
    )
    assert format_answer("  ") is None
    assert format_answer('{"other": 1}') == '{"other": 1}'


def test_the_default_ollama_endpoint_is_local() -> None:
    analyzer = OllamaFailureAnalyzer()

    assert analyzer.endpoint == "http://127.0.0.1:11434/api/generate"
    assert analyzer.timeout_seconds == 60.0
    assert analyzer.max_context_chars == 8000


def test_an_optional_analyzer_answer_may_be_none(server: ModelServer) -> None:
    class Quiet:
        def analyze_failure(self, **_: Any) -> Optional[str]:
            return None

    recorder, _ = _fail_in_story(Quiet())

    assert recorder.failures[0].llm_analysis is None
