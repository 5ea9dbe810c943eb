"""A ``repr`` whose cost is bounded while it is built, not after.

Containers are walked only as far as the length budget allows (a set of
millions of items costs as much as one of ten), strings and bytes are sliced
before they are quoted, and a user ``__repr__`` that raises becomes a marker.
Only an arbitrary object's own ``__repr__`` cannot be bounded; its result is
truncated.
"""

from __future__ import annotations

import collections
import itertools
from typing import Any, Callable, Optional

from .redact import REDACTED, Redactor

__all__ = ["SafeRepr", "safe_repr"]

_ELLIPSIS = "..."
# Redaction runs over a little more than is shown, so that a secret cut by
# the length limit is still recognised by its full shape.
_REDACTION_MARGIN = 256
# Converting an int to decimal is quadratic; beyond this many bits only the
# size is shown.
_MAX_INT_BITS = 4_000

_SCALAR_TYPES = (bool, float, complex, type(None), type(Ellipsis))

_MAPPING_REPRS: dict[Callable[..., str], str] = {
    dict.__repr__: "",
    collections.OrderedDict.__repr__: "OrderedDict",
    collections.defaultdict.__repr__: "defaultdict",
    collections.Counter.__repr__: "Counter",
}
_SEQUENCE_REPRS: dict[Callable[..., str], tuple[str, str, str]] = {
    list.__repr__: ("", "[", "]"),
    tuple.__repr__: ("", "(", ")"),
    set.__repr__: ("", "{", "}"),
    frozenset.__repr__: ("frozenset", "{", "}"),
    collections.deque.__repr__: ("deque", "[", "]"),
}


def safe_repr(
    value: Any,
    max_len: int = 200,
    max_depth: int = 2,
    redactor: Optional[Redactor] = None,
) -> str:
    """A bounded, never-raising repr of ``value``.

    ``max_len`` bounds the text (closing brackets and a ``...(+N more)``
    marker may add a few characters); containers nested deeper than
    ``max_depth`` show as ``[...]``. With a ``redactor``, values under secret
    dict keys are replaced by ``<redacted>`` and every text is redacted by
    value.
    """
    return SafeRepr(max_len, max_depth, redactor).repr(value)


class SafeRepr:
    """Builds bounded reprs; ``redacted_keys`` counts values hidden by key."""

    def __init__(
        self,
        max_len: int = 200,
        max_depth: int = 2,
        redactor: Optional[Redactor] = None,
    ) -> None:
        self.max_len = max(int(max_len), 8)
        self.max_depth = max(int(max_depth), 0)
        self.redactor = redactor
        self.redacted_keys = 0

    def repr(self, value: Any) -> str:
        """The bounded repr of one value."""
        builder = _Builder(self, self.max_len)
        try:
            builder.add_value(value, 0)
        except Exception as exc:  # defensive: a bug here must not escape
            return f"<repr failed: {type(exc).__name__}>"
        text = "".join(builder.parts)
        if self.redactor is not None:
            text = self.redactor.redact_text(text)
        return text


class _Builder:
    __slots__ = ("active", "budget", "config", "parts")

    def __init__(self, config: SafeRepr, budget: int) -> None:
        self.config = config
        self.budget = budget
        self.parts: list[str] = []
        self.active: set[int] = set()

    def write(self, text: str) -> None:
        self.parts.append(text)
        self.budget -= len(text)

    def add_value(self, value: Any, depth: int) -> None:
        kind = type(value)
        if kind is str or kind is bytes or kind is bytearray:
            self.add_text(value)
        elif kind is int:
            self.add_int(value)
        elif kind in _SCALAR_TYPES:
            self.write(repr(value))
        else:
            self.add_other(value, kind, depth)

    def add_other(self, value: Any, kind: type, depth: int) -> None:
        method = _repr_method(kind)
        if method in _MAPPING_REPRS:
            self.add_container(value, depth, _MAPPING_REPRS[method], "{", "}", True)
        elif method in _SEQUENCE_REPRS:
            name, opening, closing = _SEQUENCE_REPRS[method]
            if not value and opening == "{":
                self.write(f"{name or kind.__name__}()")
                return
            self.add_container(value, depth, name, opening, closing, False)
        else:
            self.add_object(value)

    def add_text(self, value: Any) -> None:
        limit = max(self.budget, 8)
        shown = value[: limit + _REDACTION_MARGIN]
        rest = len(value) - len(shown)
        if isinstance(shown, str):
            shown = self.redact(shown)
        elif isinstance(shown, bytearray):
            shown = bytes(shown)
        if len(shown) > limit:
            rest += len(shown) - limit
            shown = shown[:limit]
        text = repr(shown)
        if type(value) is bytearray:
            text = f"bytearray({text})"
        self.write(text)
        if rest > 0:
            unit = "chars" if isinstance(value, str) else "bytes"
            self.write(f"{_ELLIPSIS}(+{rest} {unit})")

    def add_int(self, value: int) -> None:
        bits = value.bit_length()
        if bits > _MAX_INT_BITS:
            self.write(f"<int with about {int(bits * 0.30103) + 1} digits>")
            return
        self.add_truncated(repr(value))

    def add_object(self, value: Any) -> None:
        try:
            text: Any = repr(value)
        except Exception as exc:
            self.write(f"<repr failed: {type(exc).__name__}>")
            return
        if not isinstance(text, str):  # a str subclass with odd behaviour
            self.write(f"<repr returned {type(text).__name__}>")
            return
        self.add_truncated(self.redact(text[: self.budget + _REDACTION_MARGIN]))

    def add_truncated(self, text: str) -> None:
        limit = max(self.budget, 8)
        if len(text) > limit:
            text = text[:limit] + _ELLIPSIS
        self.write(text)

    def add_container(
        self,
        value: Any,
        depth: int,
        name: str,
        opening: str,
        closing: str,
        is_mapping: bool,
    ) -> None:
        if name:
            opening, closing = f"{name}({opening}", f"{closing})"
        if id(value) in self.active or depth >= self.config.max_depth:
            inner = _ELLIPSIS if _length(value) else ""
            self.write(f"{opening}{inner}{closing}")
            return
        self.active.add(id(value))
        try:
            self.write(opening)
            self.add_items(value, depth + 1, is_mapping)
            self.write(closing)
        finally:
            self.active.discard(id(value))

    def add_items(self, value: Any, depth: int, is_mapping: bool) -> None:
        # Every item costs at least a separator, so no more items than the
        # budget allows are ever visited: islice keeps huge containers cheap.
        limit = max(self.budget // 2, 1)
        source = value.items() if is_mapping else value
        shown = 0
        for item in itertools.islice(source, limit):
            if self.budget <= 0:
                break
            if shown:
                self.write(", ")
            if is_mapping:
                self.add_entry(item[0], item[1], depth)
            else:
                self.add_item(item, depth)
            shown += 1
        total = _length(value)
        if shown == 1 and total == 1 and type(value) is tuple:
            self.write(",")
        if total > shown:
            separator = ", " if shown else ""
            self.write(f"{separator}{_ELLIPSIS}(+{total - shown} more)")

    def add_entry(self, key: Any, value: Any, depth: int) -> None:
        self.add_value(key, depth)
        self.write(": ")
        if self.is_secret(key):
            self.config.redacted_keys += 1
            self.write(REDACTED)
        else:
            self.add_value(value, depth)

    def add_item(self, item: Any, depth: int) -> None:
        # ``("Authorization", "...")`` inside a list: a header-like pair.
        if (
            type(item) is tuple
            and len(item) == 2
            and isinstance(item[0], str)
            and self.is_secret(item[0])
        ):
            self.config.redacted_keys += 1
            self.write(f"({self.redact(repr(item[0][:64]))}, {REDACTED})")
            return
        self.add_value(item, depth)

    def is_secret(self, key: Any) -> bool:
        redactor = self.config.redactor
        return redactor is not None and redactor.is_secret_key(key)

    def redact(self, text: Any) -> Any:
        redactor = self.config.redactor
        if redactor is None or not isinstance(text, str):
            return text
        return redactor.redact_text(text)


def _repr_method(kind: type) -> Any:
    try:
        return kind.__repr__
    except Exception:
        return None


def _length(value: Any) -> int:
    try:
        return len(value)
    except Exception:
        return 0
