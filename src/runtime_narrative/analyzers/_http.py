"""A JSON POST over the standard library, with connect and read timeouts.

The HTTP analyzers need no dependency. Every failure raises
:class:`AnalyzerRequestError` with a message that says what went wrong and
where (the URL is shown without its query string or credentials).
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
import urllib.parse
from typing import Any, Optional

__all__ = ["AnalyzerRequestError", "post_json"]

#: An answer larger than this is refused rather than read into memory.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
_CHUNK = 64 * 1024
_ERROR_EXCERPT = 300


class AnalyzerRequestError(RuntimeError):
    """An analyzer's HTTP request failed: unreachable, slow, refused or garbled.

    ``status`` is the HTTP status code when the server answered.
    """

    def __init__(self, message: str, status: Optional[int] = None) -> None:
        super().__init__(message)
        self.status = status


def post_json(
    url: str,
    payload: Any,
    *,
    headers: Optional[dict[str, str]] = None,
    timeout: float,
    connect_timeout: Optional[float] = None,
) -> Any:
    """POST ``payload`` as JSON to ``url`` and return the decoded JSON answer.

    ``connect_timeout`` bounds the TCP (and TLS) connection; ``timeout``
    bounds the whole exchange, so a server that answers a byte at a time
    cannot hold the caller for longer.
    """
    parts = urllib.parse.urlsplit(url)
    try:
        shown = _shown(parts)
    except ValueError as error:  # a port that is not a number
        raise AnalyzerRequestError(f"{url!r} is not a valid URL: {error}") from error
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AnalyzerRequestError(f"{shown}: not an http(s) URL")
    deadline = time.monotonic() + timeout
    connect = min(connect_timeout if connect_timeout is not None else timeout, timeout)
    body = json.dumps(payload).encode("utf-8")
    request_headers = {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "Content-Length": str(len(body)),
        **(headers or {}),
    }
    connection = _connection(parts, connect)
    try:
        try:
            connection.connect()
        except (socket.timeout, TimeoutError) as error:
            raise AnalyzerRequestError(
                f"POST {shown}: no connection within {connect:g}s"
            ) from error
        except OSError as error:
            raise AnalyzerRequestError(
                f"POST {shown}: cannot connect ({_reason(error)});"
                " is the server running?"
            ) from error
        status, data = _exchange(connection, parts, body, request_headers, deadline)
    except (socket.timeout, TimeoutError) as error:
        raise AnalyzerRequestError(
            f"POST {shown}: no complete answer within {timeout:g}s"
        ) from error
    except (OSError, http.client.HTTPException) as error:
        raise AnalyzerRequestError(
            f"POST {shown}: the connection broke before the answer was complete"
            f" ({_reason(error)})"
        ) from error
    finally:
        connection.close()
    if status >= 400:
        excerpt = data[:_ERROR_EXCERPT].decode("utf-8", "replace").strip()
        raise AnalyzerRequestError(f"POST {shown}: HTTP {status}: {excerpt}", status)
    try:
        return json.loads(data)
    except ValueError as error:
        excerpt = data[:_ERROR_EXCERPT].decode("utf-8", "replace")
        raise AnalyzerRequestError(
            f"POST {shown}: the answer is not JSON: {excerpt!r}", status
        ) from error


def _connection(
    parts: urllib.parse.SplitResult, timeout: float
) -> http.client.HTTPConnection:
    port = parts.port
    if parts.scheme == "https":
        return http.client.HTTPSConnection(
            parts.hostname or "",
            port,
            timeout=timeout,
            context=ssl.create_default_context(),
        )
    return http.client.HTTPConnection(parts.hostname or "", port, timeout=timeout)


def _exchange(
    connection: http.client.HTTPConnection,
    parts: urllib.parse.SplitResult,
    body: bytes,
    headers: dict[str, str],
    deadline: float,
) -> tuple[int, bytes]:
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    _tighten(connection, deadline)
    connection.request("POST", path, body=body, headers=headers)
    _tighten(connection, deadline)
    response = connection.getresponse()
    chunks = []
    size = 0
    while True:
        _tighten(connection, deadline)
        chunk = response.read1(_CHUNK)
        if not chunk:
            break
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise http.client.HTTPException(
                f"answer larger than {MAX_RESPONSE_BYTES} bytes"
            )
        chunks.append(chunk)
    if response.length:  # Content-Length promised more than arrived
        raise http.client.IncompleteRead(b"".join(chunks), response.length)
    return response.status, b"".join(chunks)


def _tighten(connection: http.client.HTTPConnection, deadline: float) -> None:
    """Let the next socket operation wait only until the deadline."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("deadline passed")
    if connection.sock is not None:
        connection.sock.settimeout(remaining)


def _shown(parts: urllib.parse.SplitResult) -> str:
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__
