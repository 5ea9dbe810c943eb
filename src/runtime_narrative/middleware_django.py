"""The import path for Django's ``MIDDLEWARE`` setting.

``"runtime_narrative.middleware_django.RuntimeNarrativeDjangoMiddleware"``
(ASGI or WSGI) or ``"...RuntimeNarrativeDjangoSyncMiddleware"`` (WSGI only).
The implementation lives in ``runtime_narrative.integrations.django``.
"""

from __future__ import annotations

from .integrations.django import (
    RuntimeNarrativeDjangoMiddleware,
    RuntimeNarrativeDjangoSyncMiddleware,
)

__all__ = ["RuntimeNarrativeDjangoMiddleware", "RuntimeNarrativeDjangoSyncMiddleware"]
