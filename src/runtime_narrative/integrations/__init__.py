"""Framework integrations, and the helpers that carry a story across processes.

Each framework has its own module (``starlette``, ``django``, ``celery``,
``grpc``), imported only when used. This package itself imports nothing
optional: it offers the propagation helpers, which work with any client.
"""

from __future__ import annotations

from ._propagation import (
    STORY_HEADER,
    format_story_header,
    install_httpx,
    install_requests,
    narrative_headers,
    narrative_metadata,
    parse_story_header,
    story_parent_from_headers,
)

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
