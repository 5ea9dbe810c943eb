"""Redaction of secrets, by key name and by the shape of a value.

A :class:`Redactor` is built once per :class:`FailureDiagnosticsConfig` and
answers two questions: is this key name a secret (``is_secret_key``), and what
does this text look like with every recognisable secret replaced
(``redact_text``). Nothing here raises on odd input: a redactor that cannot
decide keeps the text as it is rather than breaking the failure path.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Mapping
from typing import Any, Callable, Optional, Union

from .config import DEFAULT_REDACT_KEYS, FailureDiagnosticsConfig

__all__ = ["REDACTED", "Redactor"]

logger = logging.getLogger("runtime_narrative")

#: What replaces a secret, wherever it was found.
REDACTED = "<redacted>"

_MAX_DEPTH = 32

# A text that contains none of these cannot hold a secret of a known shape,
# so the full pattern only runs when one of them is present; ``in`` checks
# are far cheaper than a regex scan over plain text.
_SHAPE_MARKERS = (
    "://",
    "eyJ",
    "AKIA",
    "ASIA",
    "hp_",
    "ho_",
    "hr_",
    "hs_",
    "hu_",
    "_pat_",
    "xox",
    "k_live_",
    "k_test_",
    "sk-",
    "AIza",
    "PRIVATE KEY",
    "earer",
    "EARER",
)

_SHAPES = re.compile(
    r"(?P<pem>-----BEGIN (?P<pem_kind>[A-Z0-9 ]{0,40})PRIVATE KEY-----"
    r".*?(?:-----END [A-Z0-9 ]{0,40}PRIVATE KEY-----|\Z))"
    r"|(?P<url_head>\b[A-Za-z][A-Za-z0-9+.\-]{0,30}://[^\s:/@<>\"']{0,256}:)"
    r"(?P<url_password>[^\s@/<>\"']{1,512})(?=@)"
    r"|(?P<jwt>\beyJ[A-Za-z0-9_\-]{4,}\.eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*)"
    r"|(?P<token>"
    r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"
    r"|\bgh[oprsu]_[A-Za-z0-9]{20,}"
    r"|\bgithub_pat_[A-Za-z0-9_]{20,}"
    r"|\bxox[abeprs]-[A-Za-z0-9\-]{10,}"
    r"|\b[rs]k_(?:live|test)_[A-Za-z0-9]{10,}"
    r"|\bsk-ant-[A-Za-z0-9_\-]{10,}"
    r"|\bsk-[A-Za-z0-9_\-]{20,}"
    r"|\bAIza[0-9A-Za-z_\-]{35}"
    r")"
    r"|(?P<bearer_head>\b(?i:bearer)\s+)(?P<bearer>[A-Za-z0-9\-._~+/]+=*)",
    re.DOTALL,
)
# 13 to 19 digits, optionally grouped by spaces or dashes, not part of a
# longer number. Starting with a plain character class (the lookbehind comes
# after the first digit) lets the regex engine skip ahead quickly.
_CARD = re.compile(r"[0-9](?<![0-9.][0-9])(?:[ -]?[0-9]){12,18}(?![0-9.])")

# ``key = value`` / ``"key": "value"`` / ``Authorization: Basic value``. The
# key is checked with ``is_secret_key`` so patterns and callbacks apply too.
_KEY_VALUE = re.compile(
    r"(?P<head>[\"']?(?P<key>[\w.\-]{1,64})[\"']?"
    r"\s{0,8}(?:==|:=|=>|=|:)\s{0,8}"
    r"(?:(?i:bearer|basic|digest|token|negotiate)\s+)?)"
    r"(?:(?P<prefix>b?)(?:\"(?P<dq>[^\"\\\n]*(?:\\.[^\"\\\n]*)*)\""
    r"|'(?P<sq>[^'\\\n]*(?:\\.[^'\\\n]*)*)')"
    r"|b?[\"']?(?P<bare>[^\s\"',;&<>()\[\]{}]{1,4096}))"
)
_KEY_VALUE_ANYWHERE = re.compile(r"(?<![\w.\-])" + _KEY_VALUE.pattern)
_AUTH_SCHEMES = frozenset({"bearer", "basic", "digest", "token", "negotiate"})
_KEY_VALUE_SEPARATORS = (":", "=")
_IDENTIFIER_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"
)


def _luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _replace_shape(match: re.Match[str]) -> str:
    group = match.lastgroup
    if group == "pem":
        kind = match.group("pem_kind") or ""
        label = f"{kind}PRIVATE KEY-----"
        return f"-----BEGIN {label}{REDACTED}-----END {label}"
    if group == "url_password":
        return match.group("url_head") + REDACTED
    if group == "bearer":
        return match.group("bearer_head") + REDACTED
    return REDACTED


def _replace_card(match: re.Match[str]) -> str:
    digits = "".join(c for c in match.group(0) if c.isdigit())
    return REDACTED if _luhn_valid(digits) else match.group(0)


def _has_shape_marker(text: str) -> bool:
    return any(marker in text for marker in _SHAPE_MARKERS)


class Redactor:
    """Decides what is a secret, by key name and by value shape.

    Build it with :meth:`from_config`; instances are cached per config.
    """

    __slots__ = ("_callback", "_keys", "_needles", "_patterns")

    def __init__(
        self,
        keys: tuple[str, ...] = DEFAULT_REDACT_KEYS,
        patterns: tuple[str, ...] = (),
        callback: Optional[Callable[[str], bool]] = None,
    ) -> None:
        self._keys = tuple(dict.fromkeys(k.lower() for k in keys if k))
        # Header spellings (``X-Api-Key``) of the underscore key names.
        self._needles = tuple(
            dict.fromkeys([*self._keys, *(k.replace("_", "-") for k in self._keys)])
        )
        self._patterns = tuple(_compile_patterns(patterns))
        self._callback = callback

    @classmethod
    def from_config(cls, config: FailureDiagnosticsConfig) -> Redactor:
        """The redactor for ``config``, built once and cached."""
        try:
            return _redactor_for(config)
        except TypeError:
            # An unhashable redact_callback makes the config unhashable.
            return _build(config)

    def is_secret_key(self, key: Union[str, bytes]) -> bool:
        """Whether a value stored under ``key`` must be redacted."""
        name: Any = key
        if isinstance(name, bytes):
            name = name.decode("latin-1")
        if not isinstance(name, str) or not name:
            return False
        key = name
        lowered = key.lower()
        normalized = lowered.replace("-", "_").replace(" ", "_")
        for name in self._keys:
            if name in lowered or name in normalized:
                return True
        for pattern in self._patterns:
            if pattern.search(key):
                return True
        if self._callback is None:
            return False
        try:
            return bool(self._callback(key))
        except Exception:
            # A callback that cannot decide does not redact; the fixed rules
            # above have already been applied.
            return False

    def redact_text(self, text: str) -> str:
        """``text`` with every secret of a recognisable shape replaced."""
        if not isinstance(text, str) or not text:
            return text if isinstance(text, str) else ""
        try:
            if _has_shape_marker(text):
                text = _SHAPES.sub(_replace_shape, text)
            text = _CARD.sub(_replace_card, text)
            if ":" in text or "=" in text:
                text = self._redact_key_values(text)
        except Exception:
            logger.warning("redaction of a text failed", exc_info=True)
            return REDACTED
        return text

    def redact_mapping(self, obj: Any) -> tuple[Any, int]:
        """A redacted copy of nested dicts, lists and ``(name, value)`` pairs.

        Returns the copy and how many values were redacted by key.
        """
        counter = [0]
        try:
            result = self._redact_object(obj, counter, 0, set())
        except Exception:
            logger.warning("redaction of a mapping failed", exc_info=True)
            return REDACTED, counter[0] + 1
        return result, counter[0]

    def _redact_key_values(self, text: str) -> str:
        if self._patterns or self._callback is not None:
            # Any key may be a secret: every ``key: value`` pair is checked.
            return _KEY_VALUE_ANYWHERE.sub(self._replace_key_value, text)
        starts = self._key_starts(text)
        if not starts:
            return text
        pieces = []
        done = 0
        for start in starts:
            if start < done:
                continue
            match = _KEY_VALUE.match(text, start)
            if match is None:
                continue
            replacement = self._replace_key_value(match)
            pieces.append(text[done:start])
            pieces.append(replacement)
            done = match.end()
        pieces.append(text[done:])
        return "".join(pieces)

    def _key_starts(self, text: str) -> list[int]:
        """Where the identifiers containing a secret key name begin."""
        lowered = text.lower()
        starts = set()
        for needle in self._needles:
            found = lowered.find(needle)
            while found != -1:
                start = found
                limit = max(0, found - 64)
                while start > limit and text[start - 1] in _IDENTIFIER_CHARS:
                    start -= 1
                starts.add(start)
                found = lowered.find(needle, found + len(needle))
        return sorted(starts)

    def _replace_key_value(self, match: re.Match[str]) -> str:
        bare = match.group("bare")
        if bare is not None and bare.lower() in _AUTH_SCHEMES:
            return match.group(0)
        if not self.is_secret_key(match.group("key")):
            return match.group(0)
        if bare is not None:
            return match.string[match.start() : match.start("bare")] + REDACTED
        quote = '"' if match.group("dq") is not None else "'"
        content = match.group("dq") if quote == '"' else match.group("sq")
        if content == REDACTED:
            return match.group(0)
        return f"{match.group('head')}{match.group('prefix')}{quote}{REDACTED}{quote}"

    def _redact_object(
        self, obj: Any, counter: list[int], depth: int, active: set[int]
    ) -> Any:
        if isinstance(obj, str):
            return self.redact_text(obj)
        if not isinstance(obj, (Mapping, list, tuple, set, frozenset)):
            return obj
        if depth >= _MAX_DEPTH or id(obj) in active:
            return REDACTED
        active.add(id(obj))
        try:
            return self._redact_container(obj, counter, depth + 1, active)
        finally:
            active.discard(id(obj))

    def _redact_container(
        self, obj: Any, counter: list[int], depth: int, active: set[int]
    ) -> Any:
        if isinstance(obj, Mapping):
            result: dict[Any, Any] = {}
            for key, value in obj.items():
                if self.is_secret_key(key):
                    counter[0] += 1
                    result[key] = REDACTED
                else:
                    result[key] = self._redact_object(value, counter, depth, active)
            return result
        if isinstance(obj, (set, frozenset)):
            return type(obj)(
                self._redact_object(item, counter, depth, active) for item in obj
            )
        items = [self._redact_pair_or_item(i, counter, depth, active) for i in obj]
        return items if isinstance(obj, list) else tuple(items)

    def _redact_pair_or_item(
        self, item: Any, counter: list[int], depth: int, active: set[int]
    ) -> Any:
        # ``[("Authorization", "Basic ..."), ...]``: header-like pairs.
        if (
            isinstance(item, (tuple, list))
            and len(item) == 2
            and isinstance(item[0], (str, bytes))
            and self.is_secret_key(item[0])
        ):
            counter[0] += 1
            pair = (item[0], REDACTED)
            return pair if isinstance(item, tuple) else list(pair)
        return self._redact_object(item, counter, depth, active)


def _compile_patterns(patterns: tuple[str, ...]) -> list[re.Pattern[str]]:
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(pattern, re.IGNORECASE))
        except re.error:
            logger.warning("ignoring invalid redact pattern %r", pattern)
    return compiled


def _build(config: FailureDiagnosticsConfig) -> Redactor:
    return Redactor(
        keys=DEFAULT_REDACT_KEYS + tuple(config.redact_extra),
        patterns=tuple(config.redact_patterns),
        callback=config.redact_callback,
    )


@functools.lru_cache(maxsize=64)
def _redactor_for(config: FailureDiagnosticsConfig) -> Redactor:
    return _build(config)
