"""Carrying a story's ids to another process, and reading them back.

The ids travel in one header (HTTP), message header (Celery) or metadata key
(gRPC) named ``x-narrative-story``::

    x-narrative-story: 3f2a...e9;root=77b1...04

The first item is the caller's story id, which becomes the callee's
``parent_story_id``; ``root=`` is the caller's root story id. The header sits
beside W3C ``traceparent``/``tracestate`` and never replaces them: trace
context links spans, this header links stories.

Nothing here imports an optional dependency at module level: httpx and
requests are only touched through the client or session handed in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Optional, Union

from runtime_narrative._context import current_scope

__all__ = [
    "STORY_HEADER",
    "format_story_header",
    "install_httpx",
    "install_requests",
    "narrative_headers",
    "narrative_metadata",
    "parse_story_header",
    "story_parent_from_headers",
]

#: The header, message header or metadata key that carries a story's ids.
STORY_HEADER = "x-narrative-story"

# Story ids are hex; a header from outside may hold anything, so only short
# tokens of safe characters are accepted.
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

HeaderSource = Union[
    Mapping[str, Any],
    Iterable[tuple[Union[str, bytes], Union[str, bytes]]],
]


def format_story_header(story_id: str, root_story_id: Optional[str] = None) -> str:
    """``"<story_id>;root=<root_story_id>"``; the root is left out when equal."""
    if root_story_id and root_story_id != story_id:
        return f"{story_id};root={root_story_id}"
    return story_id


def parse_story_header(value: Union[str, bytes, None]) -> Optional[tuple[str, str]]:
    """``(parent_story_id, root_story_id)`` from a header value, or None.

    A malformed value is ignored (None), never an error: it came from outside.
    A proxy may merge repeated headers into one, separated by commas: the
    first value that parses is taken. Of repeated ``root=`` parameters the
    first valid one counts.
    """
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    for candidate in value.split(","):
        parsed = _parse_one(candidate)
        if parsed is not None:
            return parsed
    return None


def _parse_one(value: str) -> Optional[tuple[str, str]]:
    parent, _, rest = value.strip().partition(";")
    parent = parent.strip()
    if not _ID.fullmatch(parent):
        return None
    for item in rest.split(";"):
        key, _, candidate = item.strip().partition("=")
        if key.strip() == "root" and _ID.fullmatch(candidate.strip()):
            return parent, candidate.strip()
    return parent, parent


def _header_value(headers: HeaderSource) -> Union[str, bytes, None]:
    if isinstance(headers, Mapping):
        for key, value in headers.items():
            if isinstance(key, str) and key.lower() == STORY_HEADER:
                return value if isinstance(value, (str, bytes)) else None
        return None
    wanted = STORY_HEADER.encode("latin-1")
    for key, value in headers:
        name = key.lower() if isinstance(key, bytes) else key.lower().encode("latin-1")
        if name == wanted:
            return value
    return None


def story_parent_from_headers(headers: HeaderSource) -> dict[str, str]:
    """``story()`` keyword arguments continuing the caller's story, or ``{}``.

    ``headers`` is a mapping (case-insensitive lookup) or pairs of str or
    bytes, as in an ASGI scope or gRPC metadata::

        with story("GET /orders", **story_parent_from_headers(request.headers)):
            ...
    """
    parsed = parse_story_header(_header_value(headers))
    if parsed is None:
        return {}
    return {"parent_story_id": parsed[0], "root_story_id": parsed[1]}


def narrative_headers() -> dict[str, str]:
    """The header for the story open here, as a dict; ``{}`` outside a story.

    Merge it into the headers of any outgoing call::

        requests.post(url, json=body, headers=narrative_headers())
    """
    scope = current_scope.get()
    if scope is None:
        return {}
    runtime = scope.runtime
    return {STORY_HEADER: format_story_header(runtime.story_id, runtime.root_story_id)}


def narrative_metadata() -> list[tuple[str, str]]:
    """The same as ``narrative_headers()``, as gRPC call metadata pairs."""
    return list(narrative_headers().items())


def add_story_headers(headers: Any, trace_context: bool) -> None:
    """Set the story header (and W3C trace context) unless already present.

    ``headers`` is any mutable mapping with ``in`` and item assignment.
    """
    for key, value in narrative_headers().items():
        if key not in headers:
            headers[key] = value
    if trace_context and "traceparent" not in headers:
        _inject_trace_context(headers)


def _inject_trace_context(headers: Any) -> None:
    try:
        from opentelemetry import propagate
    except ImportError:
        return
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    for key, value in carrier.items():
        if key not in headers:
            headers[key] = value


def install_httpx(client: Any, *, trace_context: bool = True) -> Any:
    """Add the story header to every request ``client`` sends; returns it.

    ``client`` is an ``httpx.Client`` or ``httpx.AsyncClient``. The header
    names the story open where the request is sent. With
    ``trace_context=True`` and opentelemetry-api installed, W3C
    ``traceparent``/``tracestate`` are injected too when not already set.
    Installing twice is harmless.
    """
    import httpx

    hooks = client.event_hooks
    request_hooks = list(hooks.get("request", []))
    if any(getattr(hook, "_runtime_narrative", False) for hook in request_hooks):
        return client
    hook: Any
    if isinstance(client, httpx.AsyncClient):

        async def hook(request: httpx.Request) -> None:
            add_story_headers(request.headers, trace_context)

    else:

        def hook(request: httpx.Request) -> None:
            add_story_headers(request.headers, trace_context)

    hook._runtime_narrative = True
    request_hooks.append(hook)
    hooks["request"] = request_hooks
    client.event_hooks = hooks
    return client


def install_requests(session: Any, *, trace_context: bool = True) -> Any:
    """Add the story header to every request ``session`` sends; returns it.

    Each transport adapter mounted on the ``requests.Session`` is wrapped, not
    replaced, so its retries and pool settings stay. Adapters mounted later
    are not wrapped: install after mounting your own. Installing twice is
    harmless.
    """
    from requests.adapters import BaseAdapter

    class _NarrativeAdapter(BaseAdapter):
        _runtime_narrative = True

        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
            add_story_headers(request.headers, trace_context)
            return self.inner.send(request, *args, **kwargs)

        def close(self) -> None:
            self.inner.close()

    for prefix, adapter in list(session.adapters.items()):
        if not getattr(adapter, "_runtime_narrative", False):
            session.adapters[prefix] = _NarrativeAdapter(adapter)
    return session
