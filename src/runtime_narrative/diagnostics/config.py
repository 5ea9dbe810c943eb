"""FailureDiagnosticsConfig: how much a failure captures, and what is redacted."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass

# typing costs milliseconds at import; it is needed only by type checkers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Optional

__all__ = [
    "DEFAULT_REDACT_KEYS",
    "DIAGNOSTICS_MODES",
    "RUNTIME_ENVIRONMENTS",
    "FailureDiagnosticsConfig",
    "effective_diagnostics_mode",
]

DIAGNOSTICS_MODES = ("lean", "rich")
RUNTIME_ENVIRONMENTS = ("development", "production")

#: Key names containing any of these (case-insensitively) are redacted.
DEFAULT_REDACT_KEYS: tuple[str, ...] = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "access_key",
    "private_key",
    "authorization",
    "auth",
    "cookie",
    "session",
    "credential",
    "passphrase",
    "jwt",
    "bearer",
    "dsn",
)

_TRUE = frozenset({"1", "true", "yes", "on"})


@dataclass(frozen=True)
class FailureDiagnosticsConfig:
    """What a failure captures. Every field has the published default.

    ``max_traceback_chars`` caps traceback text in development (``None`` means
    no cap); in production ``production_traceback_cap`` applies instead, and
    rich mode is downgraded to lean unless ``allow_rich_in_production``.
    """

    runtime_environment: str = "development"
    failure_diagnostics: str = "lean"
    allow_rich_in_production: bool = False
    app_roots: tuple[str, ...] = ()
    redact_extra: tuple[str, ...] = ()
    redact_patterns: tuple[str, ...] = ()
    redact_callback: Optional[Callable[[str], bool]] = None
    max_traceback_chars: Optional[int] = 12_000
    production_traceback_cap: int = 8_000
    max_locals_per_frame: int = 12
    max_local_value_len: int = 200
    max_local_depth: int = 2
    max_frames_with_locals: int = 2
    snippet_context_lines: int = 2

    def __post_init__(self) -> None:
        if self.failure_diagnostics not in DIAGNOSTICS_MODES:
            raise ValueError(
                f"failure_diagnostics must be one of {', '.join(DIAGNOSTICS_MODES)};"
                f" got {self.failure_diagnostics!r}"
            )
        if self.runtime_environment not in RUNTIME_ENVIRONMENTS:
            raise ValueError(
                "runtime_environment must be one of "
                f"{', '.join(RUNTIME_ENVIRONMENTS)}; got {self.runtime_environment!r}"
            )
        # Accept any iterable of strings, but store tuples so the config stays
        # hashable and immutable.
        for name in ("app_roots", "redact_extra", "redact_patterns"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = (value,)
            object.__setattr__(self, name, tuple(str(v) for v in value))

    @property
    def is_production(self) -> bool:
        return self.runtime_environment == "production"

    @property
    def effective_mode(self) -> str:
        """The mode actually used: rich is downgraded in production."""
        return effective_diagnostics_mode(self)

    @property
    def traceback_cap(self) -> Optional[int]:
        """The traceback character cap in force for this environment."""
        if self.is_production:
            if self.max_traceback_chars is None:
                return self.production_traceback_cap
            return min(self.production_traceback_cap, self.max_traceback_chars)
        return self.max_traceback_chars

    @classmethod
    def from_env(
        cls, environ: Optional[Mapping[str, str]] = None
    ) -> FailureDiagnosticsConfig:
        """Build a config from the ``RUNTIME_NARRATIVE_*`` environment variables.

        An invalid value raises ValueError naming the variable and the values
        it accepts.
        """
        env = os.environ if environ is None else environ
        kwargs: dict[str, Any] = {}
        runtime_environment = env.get("RUNTIME_NARRATIVE_ENV", "").strip().lower()
        if runtime_environment:
            if runtime_environment not in RUNTIME_ENVIRONMENTS:
                raise ValueError(
                    "RUNTIME_NARRATIVE_ENV must be one of "
                    f"{', '.join(RUNTIME_ENVIRONMENTS)}; got {runtime_environment!r}"
                )
            kwargs["runtime_environment"] = runtime_environment
        mode = env.get("RUNTIME_NARRATIVE_FAILURE_DIAGNOSTICS", "").strip().lower()
        if mode:
            if mode not in DIAGNOSTICS_MODES:
                raise ValueError(
                    "RUNTIME_NARRATIVE_FAILURE_DIAGNOSTICS must be one of "
                    f"{', '.join(DIAGNOSTICS_MODES)}; got {mode!r}"
                )
            kwargs["failure_diagnostics"] = mode
        allow = env.get("RUNTIME_NARRATIVE_ALLOW_RICH_IN_PRODUCTION", "")
        if allow.strip().lower() in _TRUE:
            kwargs["allow_rich_in_production"] = True
        return cls(**kwargs)

    def merge(self, **overrides: Any) -> FailureDiagnosticsConfig:
        """Return a copy with the given fields replaced; ``None`` values are skipped.

        ``redact_extra`` and ``redact_patterns`` are added to the base's, so a
        per-story override extends the rules instead of dropping them.
        """
        changes: dict[str, Any] = {}
        for name, value in overrides.items():
            if value is None:
                continue
            if name not in _FIELD_NAMES:
                raise TypeError(f"FailureDiagnosticsConfig has no field {name!r}")
            if name in ("redact_extra", "redact_patterns"):
                value = (value,) if isinstance(value, str) else tuple(value)
                value = tuple(dict.fromkeys((*getattr(self, name), *value)))
            changes[name] = value
        return dataclasses.replace(self, **changes) if changes else self


_FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(FailureDiagnosticsConfig))


def effective_diagnostics_mode(config: FailureDiagnosticsConfig) -> str:
    """Return ``"lean"`` or ``"rich"`` after the production safeguard."""
    if (
        config.failure_diagnostics == "rich"
        and config.is_production
        and not config.allow_rich_in_production
    ):
        return "lean"
    return config.failure_diagnostics
