from __future__ import annotations

import collections
from typing import Any

import pytest

from runtime_narrative.diagnostics import Redactor, safe_repr
from runtime_narrative.diagnostics.saferepr import SafeRepr


class HugeRepr:
    def __repr__(self) -> str:
        return "x" * 50_000_000


class RaisingRepr:
    def __repr__(self) -> str:
        raise ValueError("no repr for you")


class NonStrRepr:
    def __repr__(self) -> Any:
        return 42


@pytest.mark.parametrize(
    "value",
    [1, -2.5, None, True, "abc", b"ab", [1, 2], (1,), (), {"a": 1}, {1, 2}, set()],
)
def test_small_builtins_match_repr(value: Any) -> None:
    result = safe_repr(value)

    assert result == repr(value)


def test_huge_set_is_bounded() -> None:
    huge = set(range(3_000_000))

    result = safe_repr(huge, max_len=100)

    assert len(result) < 150
    assert result.startswith("{0, 1, 2")
    assert "more)" in result


def test_huge_dict_and_list_are_bounded() -> None:
    huge_dict = {i: str(i) for i in range(200_000)}
    huge_list = list(range(200_000))

    dict_text = safe_repr(huge_dict, max_len=80)
    list_text = safe_repr(huge_list, max_len=80)

    assert len(dict_text) < 130
    assert len(list_text) < 130
    assert list_text.endswith("more)]")


def test_huge_string_and_bytes_are_sliced() -> None:
    text = "a" * 50_000_000
    data = b"b" * 50_000_000

    text_repr = safe_repr(text, max_len=50)
    bytes_repr = safe_repr(data, max_len=50)

    assert len(text_repr) < 100
    assert text_repr.startswith("'aaa")
    assert "chars)" in text_repr
    assert len(bytes_repr) < 100
    assert "bytes)" in bytes_repr


def test_object_with_huge_repr_is_truncated() -> None:
    result = safe_repr(HugeRepr(), max_len=60)

    assert len(result) < 80
    assert result.startswith("xxx")


def test_raising_repr_becomes_a_marker() -> None:
    result = safe_repr([1, RaisingRepr(), 3])

    assert result == "[1, <repr failed: ValueError>, 3]"


def test_non_string_repr_becomes_a_marker() -> None:
    result = safe_repr(NonStrRepr())

    assert result == "<repr failed: TypeError>"


def test_deep_nesting_is_cut_at_max_depth() -> None:
    nested: list[Any] = [1]
    for _ in range(10_000):
        nested = [nested]

    result = safe_repr(nested, max_depth=3)

    assert result == "[[[[...]]]]"


def test_recursive_container_does_not_loop() -> None:
    loop: list[Any] = [1]
    loop.append(loop)

    result = safe_repr(loop, max_depth=5)

    assert result == "[1, [...]]"


def test_huge_int_shows_its_size_only() -> None:
    big = 10**20_000

    result = safe_repr(big)

    assert result == "<int with about 20001 digits>"


def test_stdlib_mappings_and_deques_are_bounded() -> None:
    counter = collections.Counter(range(100_000))
    default = collections.defaultdict(list, {i: [i] for i in range(100_000)})
    queue = collections.deque(range(100_000))

    results = [safe_repr(counter, 60), safe_repr(default, 60), safe_repr(queue, 60)]

    assert results[0].startswith("Counter({0: 1")
    assert results[1].startswith("defaultdict({0: [0]")
    assert results[2].startswith("deque([0, 1")
    assert all(len(result) < 120 for result in results)


def test_secret_dict_keys_are_redacted_and_counted() -> None:
    reprs = SafeRepr(200, 3, Redactor())
    value = {"user": "bob", "password": "hunter2", "nested": {"api_key": "k-123"}}

    result = reprs.repr(value)

    assert "hunter2" not in result
    assert "k-123" not in result
    assert "'password': <redacted>" in result
    assert "'user': 'bob'" in result
    assert reprs.redacted_keys == 2


def test_header_pairs_are_redacted() -> None:
    reprs = SafeRepr(200, 3, Redactor())
    headers = [("Accept", "text/html"), ("X-Api-Key", "abc123")]

    result = reprs.repr(headers)

    assert "abc123" not in result
    assert "text/html" in result
    assert reprs.redacted_keys == 1


def test_secret_values_are_redacted_by_shape() -> None:
    value = ["postgres://bob:s3cr3t@db/x", "Bearer abcdefghijkl"]

    result = safe_repr(value, redactor=Redactor())

    assert "s3cr3t" not in result
    assert "abcdefghijkl" not in result


def test_secret_cut_by_the_limit_is_still_redacted() -> None:
    token = "ghp_" + "a" * 36
    text = "x" * 30 + " " + token

    result = safe_repr(text, max_len=40, redactor=Redactor())

    assert "aaaaa" not in result
