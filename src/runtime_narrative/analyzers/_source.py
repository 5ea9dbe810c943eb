"""Reading the captured, redacted text the rules work from.

Source lines and local values reach the rules as text (the redacted source
line of the primary frame, the bounded ``repr`` of each local). These helpers
parse that text, and cache what they parse: the same line fails again and
again in a long-running program.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterator
from typing import Any, Optional

__all__ = [
    "container_items",
    "dict_keys",
    "literal",
    "parse_line",
    "unparse",
]

_MORE = re.compile(r"^\.\.\.\(\+(\d+) more\)$")
_OPENERS = {"(": ")", "[": "]", "{": "}"}


@functools.lru_cache(maxsize=512)
def parse_line(line: str) -> Optional[ast.AST]:
    """The syntax tree of one source line, or None when it is not complete.

    A statement cut by a line break (``x = f(``) does not parse as it is; the
    missing closing brackets are added before giving up, and a line that
    opens a block (``if a / b:``) gets a body.
    """
    text = line.strip()
    if not text:
        return None
    attempts = [text]
    if text.endswith(":"):
        attempts.append(text + " pass")
    closers = _missing_closers(text)
    if closers:
        attempts.append(text.rstrip(",") + closers)
    for attempt in attempts:
        try:
            return ast.parse(attempt)
        except (SyntaxError, ValueError):
            continue
    return None


def _missing_closers(text: str) -> str:
    stack: list[str] = []
    quote = ""
    for char in text:
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char in _OPENERS:
            stack.append(_OPENERS[char])
        elif stack and char == stack[-1]:
            stack.pop()
    return "".join(reversed(stack))


def unparse(node: ast.AST) -> str:
    """Source text for ``node``; ``?`` when it cannot be rebuilt."""
    try:
        return ast.unparse(node)
    except Exception:  # a tree ast built itself; guarded all the same
        return "?"


def literal(text: str) -> Any:
    """The Python value a repr stands for, or ``None`` when it is not a literal."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


@functools.lru_cache(maxsize=512)
def container_items(text: str) -> Optional[tuple[tuple[str, ...], int]]:
    """The top-level items of a list, tuple, set or dict repr, and how many more.

    Works on the bounded reprs diagnostics capture (``[1, 2, ...(+47 more)]``):
    returns ``(items, more)`` with each item's text, or None when ``text`` is
    not a container repr.
    """
    text = text.strip()
    if len(text) < 2 or text[0] not in "[({" or _OPENERS[text[0]] != text[-1]:
        return None
    items = _split_items(text[1:-1])
    more = 0
    if items:
        match = _MORE.match(items[-1])
        if match:
            more = int(match.group(1))
            items.pop()
    return tuple(items), more


def _split_items(body: str) -> list[str]:
    """``body`` cut at its top-level commas, each item stripped."""
    items: list[str] = []
    start = 0
    for position, char in _top_level(body):
        if char == ",":
            items.append(body[start:position].strip())
            start = position + 1
    last = body[start:].strip()
    if last:
        items.append(last)
    return items


def dict_keys(text: str) -> Optional[list[Any]]:
    """The keys shown in a dict repr (literal keys only), or None."""
    if not text.strip().startswith("{"):
        return None
    parsed = container_items(text)
    if parsed is None:
        return None
    keys: list[Any] = []
    for item in parsed[0]:
        key_text = _split_key(item)
        if key_text is None:
            return None  # a set, not a dict
        key = literal(key_text)
        if key is not None:
            keys.append(key)
    return keys


def _split_key(item: str) -> Optional[str]:
    for position, char in _top_level(item):
        if char == ":":
            return item[:position].strip()
    return None


def _top_level(text: str) -> Iterator[tuple[int, str]]:
    """Each character of ``text`` outside quotes and brackets, with its position.

    Quotes and brackets themselves are not yielded. Commas and colons inside
    a nested container or a string literal belong to it, not to this level.
    """
    depth = 0
    quote = ""
    escaped = False
    for position, char in enumerate(text):
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif depth == 0:
            yield position, char
