"""The built-in rules analyzer: an exact diagnosis for common failures, offline.

:func:`diagnose` reads the captured, redacted diagnostics (exception types and
messages along the chain, their attributes, the primary frame's source line
and, in rich mode, its locals) and returns::

    ## Exact Why
    <what went wrong, with the names and values involved>

    ## Targeted Fix
    <what to change>

It returns ``None`` when no rule is sure: a wrong diagnosis is worse than
none. It is deterministic, needs no network, and runs in microseconds; the
only outside state it reads is the file system (for the nearest existing
directory of a missing path) and the interpreter's loaded modules.
"""

from __future__ import annotations

import ast
import difflib
import os
import re
import stat
import sys
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Optional

from runtime_narrative.diagnostics import ChainLink, FailureDiagnostics

from ._source import container_items, dict_keys, literal, parse_line, unparse

__all__ = ["RulesFailureAnalyzer", "diagnose"]


@dataclass(frozen=True)
class _Finding:
    why: str
    fix: str


@dataclass(frozen=True)
class _Subject:
    """One exception of the chain, with what is known around it."""

    link: ChainLink
    position: int
    """0 for the exception that left the story, 1 for its cause, and so on."""
    tree: Optional[ast.AST]
    """The parsed primary source line, only when this exception was raised there."""
    source_line: Optional[str]
    call_tree: Optional[ast.AST]
    """The parsed primary source line for the outermost exception, even when it
    was raised deeper (in a library called from that line)."""
    locals: dict[str, str]
    """Rich mode: the primary frame's locals (outer frames' fill the gaps)."""
    failure: FailureDiagnostics


_Rule = Callable[[_Subject], Optional[_Finding]]


def diagnose(failure: FailureDiagnostics) -> Optional[str]:
    """The rules' diagnosis of ``failure``, or ``None`` when no rule is sure."""
    subjects = _subjects(failure)
    for subject in subjects:
        for rule in _RULES.get(subject.link.short_type, ()):
            finding = rule(subject)
            if finding is not None:
                return _render(finding, subject, subjects[0])
    for subject in subjects:
        for rule in _ANY_TYPE_RULES:
            finding = rule(subject)
            if finding is not None:
                return _render(finding, subject, subjects[0])
    return None


class RulesFailureAnalyzer:
    """The built-in rules as a FailureAnalyzer.

    The rules already run on every failure and fill
    ``FailureOccurred.rules_analysis``; use this class where an analyzer
    object is wanted (inside a DeduplicatingAnalyzer, or as a last resort of
    your own analyzer). It never touches the network.

    .. versionadded:: 0.1.0
    """

    timeout_seconds = 1.0

    def analyze_failure(
        self,
        *,
        story_name: str,
        stage_name: str,
        failure: FailureDiagnostics,
        stage_timeline: str,
        progress_percent: int,
    ) -> Optional[str]:
        if failure.rules_analysis is not None:
            return failure.rules_analysis
        return diagnose(failure)

    async def analyze_failure_async(
        self,
        *,
        story_name: str,
        stage_name: str,
        failure: FailureDiagnostics,
        stage_timeline: str,
        progress_percent: int,
    ) -> Optional[str]:
        return self.analyze_failure(
            story_name=story_name,
            stage_name=stage_name,
            failure=failure,
            stage_timeline=stage_timeline,
            progress_percent=progress_percent,
        )


# --- gathering what the rules read -------------------------------------------


def _subjects(failure: FailureDiagnostics) -> list[_Subject]:
    chain = failure.chain or (
        ChainLink(
            error_type=failure.error_type,
            short_type=failure.error_type,
            message=failure.error_message,
            relation=None,
            filename=failure.filename,
            lineno=failure.lineno,
        ),
    )
    names = _locals(failure)
    subjects = []
    for position, link in enumerate(chain):
        here = (
            failure.source_line
            and link.filename == failure.filename
            and link.lineno == failure.lineno
        )
        line = failure.source_line if here else None
        tree = parse_line(line) if line else None
        call = tree
        if position == 0 and call is None and failure.source_line:
            call = parse_line(failure.source_line)
        subjects.append(_Subject(link, position, tree, line, call, names, failure))
    return subjects


def _locals(failure: FailureDiagnostics) -> dict[str, str]:
    found: dict[str, str] = {}
    for frame in (failure.locals_by_frame or {}).values():
        values = frame.get("locals") if isinstance(frame, dict) else None
        if isinstance(values, dict):
            for name, value in values.items():
                found.setdefault(str(name), str(value))
    return found


def _render(finding: _Finding, subject: _Subject, outermost: _Subject) -> str:
    why = finding.why
    if subject.position > 0:
        outer = outermost.link
        said = f" ({outer.message})" if outer.message else ""
        why = (
            f"The {outer.short_type}{said} was raised from {subject.link.error_type}"
            f" underneath it. {why}"
        )
    return f"## Exact Why\n{why}\n\n## Targeted Fix\n{finding.fix}"


def _nodes(subject: _Subject, kind: type[Any], *, call: bool = False) -> list[Any]:
    """Nodes of ``kind`` on the line that raised (or, with ``call``, that called
    into the code that raised)."""
    tree = subject.call_tree if call else subject.tree
    if tree is None:
        return []
    return [node for node in ast.walk(tree) if isinstance(node, kind)]


def _distinct(texts: list[str]) -> list[str]:
    return list(dict.fromkeys(texts))


def _code(text: str) -> str:
    return f"`{text}`"


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- databases: IntegrityError -----------------------------------------------

_INTEGRITY_TYPES = (
    "IntegrityError",
    "UniqueViolation",
    "NotNullViolation",
    "ForeignKeyViolation",
    "CheckViolation",
)
_SQLITE_CONSTRAINT = re.compile(
    r"^(UNIQUE|NOT NULL|FOREIGN KEY|CHECK|PRIMARY KEY) constraint failed(?::\s*(.+))?",
    re.IGNORECASE,
)
_PG_UNIQUE = re.compile(r'duplicate key value violates unique constraint "([^"]+)"')
_PG_KEY = re.compile(r"Key \((.+?)\)=\((.*?)\) (already exists|is not present)")
_PG_NOT_NULL = re.compile(
    r'null value in column "([^"]+)"(?: of relation "([^"]+)")? violates not-null'
)
_PG_FOREIGN = re.compile(
    r'on table "([^"]+)" violates foreign key constraint "([^"]+)"'
)
_PG_CHECK = re.compile(r'violates check constraint "([^"]+)"')
_MYSQL_DUPLICATE = re.compile(r"Duplicate entry '(.*)' for key '([^']+)'")
_MYSQL_NULL = re.compile(r"Column '([^']+)' cannot be null")
_MYSQL_FOREIGN = re.compile(r"a foreign key constraint fails")


def _integrity(subject: _Subject) -> Optional[_Finding]:
    message = subject.link.message
    match = _SQLITE_CONSTRAINT.match(message)
    if match:
        kind = match.group(1).upper()
        columns = (match.group(2) or "").strip()
        if kind in ("UNIQUE", "PRIMARY KEY"):
            return _unique(subject, columns, None)
        if kind == "NOT NULL":
            return _not_null(columns)
        if kind == "FOREIGN KEY":
            return _foreign_key(None, None)
        return _check(columns)
    match = _PG_UNIQUE.search(message)
    if match:
        key = _PG_KEY.search(message)
        columns = key.group(1) if key else f"constraint {match.group(1)}"
        return _unique(subject, columns, key.group(2) if key else None)
    match = _PG_NOT_NULL.search(message)
    if match:
        table = f"{match.group(2)}." if match.group(2) else ""
        return _not_null(table + match.group(1))
    match = _PG_FOREIGN.search(message)
    if match:
        key = _PG_KEY.search(message)
        detail = f"{key.group(1)}={key.group(2)}" if key else None
        return _foreign_key(f"{match.group(1)} ({match.group(2)})", detail)
    match = _PG_CHECK.search(message)
    if match:
        return _check(match.group(1))
    match = _MYSQL_DUPLICATE.search(message)
    if match:
        return _unique(subject, f"key {match.group(2)}", match.group(1))
    match = _MYSQL_NULL.search(message)
    if match:
        return _not_null(match.group(1))
    if _MYSQL_FOREIGN.search(message):
        return _foreign_key(None, None)
    return None


def _unique(subject: _Subject, columns: str, value: Optional[str]) -> _Finding:
    columns = columns or "a unique key"
    column = columns.split(",")[0].strip().split(".")[-1]
    if value is None:
        value = _value_in_locals(subject, column)
    shown = f" (the value {value})" if value else ""
    why = (
        f"The database refused the row: the UNIQUE constraint on {columns} failed"
        f"{shown}. A row with the same {column} already exists, either in the"
        " table or earlier in this same batch."
    )
    fix = (
        f"Find the duplicate {column} values in the input and drop or merge them"
        " before inserting (keep a set of the ids already seen while loading). If"
        " re-running the import should update the existing rows, write an upsert:"
        f" `INSERT ... ON CONFLICT({column}) DO UPDATE SET ...` (SQLite 3.24+,"
        " PostgreSQL), or `INSERT OR IGNORE` in SQLite to skip them."
    )
    return _Finding(why, fix)


def _value_in_locals(subject: _Subject, column: str) -> Optional[str]:
    pattern = re.compile(rf"['\"]{re.escape(column)}['\"]: ('[^']*'|\"[^\"]*\"|-?\d+)")
    for name in sorted(subject.locals):
        found = pattern.search(subject.locals[name])
        if found:
            return found.group(1)
    return None


def _not_null(column: str) -> _Finding:
    column = column or "a NOT NULL column"
    why = (
        f"The database refused the row: {column} is NOT NULL and the row gave it"
        " NULL (Python None): the value was missing from the input, or the INSERT"
        " did not name the column."
    )
    fix = (
        f"Supply a value for {column} (check the input row and the column list of"
        " the INSERT), give the column a DEFAULT, or reject rows without it while"
        " validating."
    )
    return _Finding(why, fix)


def _foreign_key(table: Optional[str], detail: Optional[str]) -> _Finding:
    where = f" on {table}" if table else ""
    key = f" ({detail} is not in the referenced table)" if detail else ""
    why = (
        f"The database refused the change: a FOREIGN KEY constraint{where} failed"
        f"{key}. The row points at a parent row that does not exist, or a parent"
        " row that other rows still point at was deleted."
    )
    fix = (
        "Insert the parent rows first (or in the same transaction, before the"
        " children), check the referenced ids in the input, and delete children"
        " before their parent (or declare ON DELETE CASCADE)."
    )
    return _Finding(why, fix)


def _check(name: str) -> _Finding:
    name = name or "a CHECK constraint"
    why = f"The database refused the row: the CHECK constraint {name} was false."
    fix = (
        f"Look up the condition of {name} in the schema and validate the row"
        " against it before writing; the row's values break it."
    )
    return _Finding(why, fix)


# --- KeyError and IndexError -------------------------------------------------


def _key_error(subject: _Subject) -> Optional[_Finding]:
    key_text = subject.link.attributes.get("key") or subject.link.message
    if not isinstance(key_text, str) or not key_text or key_text == "<redacted>":
        return None
    key = literal(key_text)
    if key is None and not key_text.startswith(("'", '"')):
        key_text = repr(key_text)
    container = _subscript_of(subject, key)
    keys = _known_keys(subject, container)

    if container is not None and _is_environ(container):
        return _missing_env(key_text, key)
    target = _code(container) if container else "the mapping"
    matches = _close(key, keys)
    why = f"The key {key_text} is not in {target}."
    if keys is not None:
        shown = ", ".join(repr(k) for k in keys[:12])
        more = f" and {len(keys) - 12} more" if len(keys) > 12 else ""
        why += f" The keys it has: {shown}{more}." if keys else " It is empty."
    if matches:
        suggestion = " or ".join(repr(m) for m in matches)
        why += f" Did you mean {suggestion}?"
        fix = (
            f"Use the key {suggestion} (the spelling differs), or rename the key"
            " where the mapping is built."
        )
    else:
        getter = f"{container}.get({key_text}, default)" if container else ".get()"
        fix = (
            f"Check where {target} is filled: nothing sets {key_text} for this"
            f" input. If the key is optional, read it with `{getter}`."
        )
    return _Finding(why, fix)


def _subscript_of(subject: _Subject, key: Any) -> Optional[str]:
    """The expression that was indexed with ``key`` on the failing line."""
    candidates = []
    raised_here = subject.tree is not None
    for node in _nodes(subject, ast.Subscript, call=True):
        index = node.slice
        if isinstance(index, ast.Constant):
            if index.value == key:
                return unparse(node.value)
            continue
        if isinstance(index, ast.Name):
            value = subject.locals.get(index.id)
            if value is not None and literal(value) == key:
                return unparse(node.value)
        candidates.append(unparse(node.value))
    for node in _nodes(subject, ast.Call, call=True):
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in ("pop", "remove"):
            first = node.args[0] if node.args else None
            if isinstance(first, ast.Constant) and first.value == key:
                return unparse(func.value)
    candidates = _distinct(candidates)
    return candidates[0] if len(candidates) == 1 and raised_here else None


def _known_keys(subject: _Subject, container: Optional[str]) -> Optional[list[Any]]:
    if container is not None and container in subject.locals:
        return dict_keys(subject.locals[container])
    # A message such as "'hots' not in {'host': ...}" shows the mapping.
    message = subject.link.message
    brace = message.find("{")
    if brace != -1 and message.rstrip().endswith("}"):
        return dict_keys(message[brace:].rstrip())
    return None


def _close(key: Any, keys: Optional[list[Any]]) -> list[str]:
    if not isinstance(key, str) or not keys:
        return []
    names = [k for k in keys if isinstance(k, str)]
    exact = [k for k in names if k.lower() == key.lower() and k != key]
    if exact:
        return exact[:1]
    return difflib.get_close_matches(key, names, n=2, cutoff=0.6)


def _is_environ(container: str) -> bool:
    return container == "environ" or container.endswith(".environ")


def _missing_env(key_text: str, key: Any) -> _Finding:
    name = key if isinstance(key, str) else key_text
    matches = _close(key, sorted(os.environ)) if isinstance(key, str) else []
    why = f"The environment variable {name} is not set in this process."
    if matches:
        why += " Set ones with a close name: " + ", ".join(matches) + "."
    fix = (
        f"Set {name} before starting the program (`export {name}=...`, the"
        " service's environment, or the .env file it loads), or read it with"
        f" `os.environ.get({key_text}, default)` if it is optional."
    )
    return _Finding(why, fix)


_INDEX_KINDS = re.compile(r"^(\w+) index out of range$")
_POP_EMPTY = re.compile(r"^pop from (?:an )?empty (\w+)$")


def _index_error(subject: _Subject) -> Optional[_Finding]:
    message = subject.link.message
    popped = _POP_EMPTY.match(message)
    if popped:
        calls = [
            unparse(node.func.value)
            for node in _nodes(subject, ast.Call)
            if isinstance(node.func, ast.Attribute) and node.func.attr == "pop"
        ]
        target = _code(calls[0]) if len(_distinct(calls)) == 1 else "a"
        return _Finding(
            f"`.pop()` was called on {target} {popped.group(1)} that was empty.",
            "Check that it has items first (`if items:`), or catch IndexError"
            " where an empty one is expected.",
        )
    kind = _INDEX_KINDS.match(message)
    if not kind:
        return None
    label = kind.group(1)
    subscripts = [
        node
        for node in _nodes(subject, ast.Subscript)
        if not isinstance(node.slice, ast.Slice)
    ]
    subscripts = [n for n in subscripts if _index_type_fits(subject, n, label)]
    if len(subscripts) != 1:
        return _Finding(
            f"An index past the end of a {label} was read.",
            f"Check the {label}'s length before indexing, or iterate over it"
            " directly; an off-by-one loop bound (`<=`, `range(len(x) + 1)`) is"
            " the usual cause.",
        )
    node = subscripts[0]
    container = unparse(node.value)
    index_text = unparse(node.slice)
    index = _value_of(subject, node.slice)
    length = _length_of(subject, container)
    said = f"{_code(container + '[' + index_text + ']')}"
    if index is not None and index_text != str(index):
        said += f" (with {index_text} = {index})"
    if length == 0:
        why = f"{said} read from an empty {label}."
        fix = (
            f"`{container}` has no items here: guard the empty case (`if"
            f" {container}:`) and find out why it is empty for this input."
        )
        return _Finding(why, fix)
    size = f" of {length} items (valid indexes 0 to {length - 1})" if length else ""
    why = (
        f"{said} asked for an index past the end of the {label}"
        f" {_code(container)}{size}."
    )
    fix = (
        f"Check `len({container})` before reading index {index_text}, or iterate"
        f" over `{container}` directly; an off-by-one loop bound (`<=`,"
        " `range(len(x) + 1)`) or a shorter row than expected is the usual cause."
    )
    return _Finding(why, fix)


def _index_type_fits(subject: _Subject, node: ast.Subscript, label: str) -> bool:
    value = subject.locals.get(unparse(node.value))
    if value is None:
        return True
    opener = {"list": "[", "tuple": "(", "str": "'", "string": "'"}.get(label)
    return opener is None or value.startswith((opener, '"'))


def _value_of(subject: _Subject, node: ast.AST) -> Optional[int]:
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _value_of(subject, node.operand)
        return -inner if inner is not None else None
    if isinstance(node, ast.Name) and node.id in subject.locals:
        value = literal(subject.locals[node.id])
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    return None


def _length_of(subject: _Subject, container: str) -> Optional[int]:
    value = subject.locals.get(container)
    if value is None:
        return None
    if value[:1] in "'\"":
        text = literal(value)
        return len(text) if isinstance(text, str) else None
    parsed = container_items(value)
    if parsed is None:
        return None
    items, more = parsed
    return len(items) + more


# --- AttributeError on None ----------------------------------------------------

_NONE_ATTRIBUTE = re.compile(r"^'NoneType' object has no attribute '(\w+)'")


def _attribute_on_none(subject: _Subject) -> Optional[_Finding]:
    match = _NONE_ATTRIBUTE.match(subject.link.message)
    if not match:
        return None
    attribute = match.group(1)
    owners = _distinct(
        [
            unparse(node.value)
            for node in _nodes(subject, ast.Attribute)
            if node.attr == attribute
        ]
    )
    known_none = [o for o in owners if subject.locals.get(o) == "None"]
    if known_none:
        owners = known_none
    if len(owners) != 1:
        listed = " or ".join(_code(o) for o in owners)
        which = f" (one of {listed})" if owners else ""
        return _Finding(
            f"A value that was None{which} had `.{attribute}` read from it.",
            "Find which value was None: a function that returned nothing, a"
            " `dict.get()` or `re.match()` that found nothing. Check it before"
            " use (`if value is None: ...`).",
        )
    owner = owners[0]
    is_call = owner.endswith(")")
    if is_call:
        why = f"{_code(owner)} returned None, and `.{attribute}` was read from it."
    else:
        why = f"{_code(owner)} was None when `.{attribute}` was read from it."
    fix = _none_fix(owner, is_call)
    return _Finding(why, fix)


def _none_fix(owner: str, is_call: bool) -> str:
    if re.search(r"\b(?:re\.)?(?:match|search|fullmatch)\(", owner):
        return (
            f"The pattern did not match. Keep the match object and check it first:"
            f" `match = {owner}` then `if match is None: ...`."
        )
    if ".get(" in owner:
        return (
            "The key is missing, so `.get()` gave None. Pass a default (`.get(key,"
            " default)`) or check for None before use."
        )
    if is_call:
        return (
            f"Make the function behind `{owner}` return a value on every path (a"
            " missing `return` gives None), or check its result for None before"
            " use."
        )
    return (
        f"Find where `{owner}` is set: it is None on this path (a lookup that found"
        f" nothing, or a function without `return`). Check `if {owner} is None:`"
        " before use, or make sure it is always set."
    )


# --- TypeError -----------------------------------------------------------------

_TAKES = re.compile(
    r"^(?P<func>[\w.<>]+)\(\) takes (?P<expected>\d+|from \d+ to \d+|no)"
    r" (?:positional |keyword |positional-only )?arguments?"
    r"(?: but (?P<given>\d+) (?:positional arguments? )?(?:was|were) given)?"
)
_MISSING = re.compile(
    r"^(?P<func>[\w.<>]+)\(\) missing (?P<count>\d+) required"
    r" (?P<kind>positional|keyword-only) arguments?: (?P<names>.+)$"
)
_UNEXPECTED = re.compile(
    r"^(?P<func>[\w.<>]+)\(\) got an unexpected keyword argument '(?P<name>\w+)'"
)
_MULTIPLE = re.compile(
    r"^(?P<func>[\w.<>]+)\(\) got multiple values for argument '(?P<name>\w+)'"
)
_OPERAND = re.compile(
    r"^unsupported operand type\(s\) for (?P<op>.+?): '(?P<left>[^']+)'"
    r" and '(?P<right>[^']+)'"
)
_CONCAT = re.compile(
    r'^can only concatenate (?P<left>\w+) \(not "(?P<right>[^"]+)"\) to \w+'
)
_COMPARE = re.compile(
    r"^'(?P<op>[<>=!]+)' not supported between instances of '(?P<left>[^']+)'"
    r" and '(?P<right>[^']+)'"
)
_UNARY = re.compile(r"^bad operand type for unary (?P<op>\S+): '(?P<type>[^']+)'")
_OPERATORS: dict[str, tuple[type[Any], ...]] = {
    "+": (ast.Add,),
    "-": (ast.Sub,),
    "*": (ast.Mult,),
    "/": (ast.Div,),
    "//": (ast.FloorDiv,),
    "%": (ast.Mod,),
    "** or pow()": (ast.Pow,),
    "@": (ast.MatMult,),
    "&": (ast.BitAnd,),
    "|": (ast.BitOr,),
    "^": (ast.BitXor,),
    "<<": (ast.LShift,),
    ">>": (ast.RShift,),
    "+=": (ast.Add,),
    "-=": (ast.Sub,),
    "*=": (ast.Mult,),
    "/=": (ast.Div,),
}


def _type_error(subject: _Subject) -> Optional[_Finding]:
    message = subject.link.message
    for pattern, rule in (
        (_MISSING, _missing_arguments),
        (_TAKES, _argument_count),
        (_UNEXPECTED, _unexpected_keyword),
        (_MULTIPLE, _multiple_values),
        (_OPERAND, _operand_types),
        (_CONCAT, _operand_types),
        (_COMPARE, _comparison_types),
    ):
        match = pattern.match(message)
        if match:
            return rule(subject, match)
    unary = _UNARY.match(message)
    if unary:
        kind = unary.group("type")
        return _Finding(
            f"Unary `{unary.group('op')}` was applied to a {kind} value.",
            f"Convert the {kind} to a number first (`-float(x)`), or find why it"
            " is not a number here.",
        )
    return None


def _method_hint(func: str) -> str:
    if "." not in func:
        return ""
    return (
        " It is a method: `self` counts as its first positional argument, so"
        " check that the method declares `self` and is called on an instance,"
        " not on the class."
    )


def _argument_count(subject: _Subject, match: re.Match[str]) -> Optional[_Finding]:
    func, expected, given = match.group("func", "expected", "given")
    if given is None:
        return None
    expected = "no" if expected == "no" else expected
    why = (
        f"`{func}()` accepts {expected} positional argument(s) but was called"
        f" with {given}."
    )
    fix = (
        f"Call `{func}()` with {expected} positional argument(s), pass the extra"
        f" values by keyword if it has such parameters, or add the parameters to"
        f" its definition.{_method_hint(func)}"
    )
    return _Finding(why, fix)


def _missing_arguments(subject: _Subject, match: re.Match[str]) -> _Finding:
    func, count, kind, names = match.group("func", "count", "kind", "names")
    why = f"`{func}()` was called without {count} required {kind} argument(s): {names}."
    fix = (
        f"Pass {names} in the call to `{func}()`, or give the parameter a default"
        f" value in its definition.{_method_hint(func)}"
    )
    return _Finding(why, fix)


def _unexpected_keyword(subject: _Subject, match: re.Match[str]) -> _Finding:
    func, name = match.group("func", "name")
    why = f"`{func}()` has no parameter named `{name}`, but the call passed `{name}=`."
    fix = (
        f"Check the spelling of `{name}=` against the signature of `{func}()` (or"
        " the version of the library it comes from), or add the parameter."
    )
    return _Finding(why, fix)


def _multiple_values(subject: _Subject, match: re.Match[str]) -> _Finding:
    func, name = match.group("func", "name")
    why = (
        f"`{func}()` got `{name}` twice: once by position and once as `{name}=`."
        f"{_method_hint(func)}"
    )
    fix = f"Pass `{name}` only once: drop the positional value or the keyword."
    return _Finding(why, fix)


def _operand_types(subject: _Subject, match: re.Match[str]) -> _Finding:
    groups = match.groupdict()
    op = groups.get("op") or "+"
    left, right = groups["left"], groups["right"]
    expression = _operation(subject, op)
    where = f" in {_code(expression)}" if expression else ""
    why = f"`{op}` cannot combine a {left} (left) with a {right} (right){where}."
    return _Finding(why, _operand_fix(left, right, op))


def _operand_fix(left: str, right: str, op: str) -> str:
    if "NoneType" in (left, right):
        side = "left" if left == "NoneType" else "right"
        return (
            f"The {side} operand was None: find where it should have been set (a"
            " function without `return`, a missing value) and check for None"
            " before the operation."
        )
    if {left, right} == {"str", "int"} or {left, right} == {"str", "float"}:
        number = right if left == "str" else left
        return (
            f"Convert one side: `{number}(text)` to compute with the number, or"
            " `str(value)` / an f-string to build text. Values read from files,"
            " forms and the environment are always strings."
        )
    return (
        f"Convert one of the operands so that both are of a type `{op}` accepts,"
        f" or find why a {left if left != right else right} reached this line."
    )


def _comparison_types(subject: _Subject, match: re.Match[str]) -> _Finding:
    op, left, right = match.group("op", "left", "right")
    why = f"`{op}` cannot compare a {left} with a {right}."
    if "NoneType" in (left, right):
        fix = (
            "One side was None: filter out or default the missing values before"
            " comparing (for sorting, `key=lambda v: (v is None, v)`)."
        )
    else:
        fix = (
            f"Convert both sides to one type before comparing (e.g. `int(text)`);"
            f" a list being sorted probably mixes {left} and {right} values."
        )
    return _Finding(why, fix)


def _operation(subject: _Subject, op: str) -> Optional[str]:
    kinds = _OPERATORS.get(op)
    if kinds is None:
        return None
    found = [
        unparse(node)
        for node in _nodes(subject, ast.BinOp)
        if isinstance(node.op, kinds)
    ]
    found += [
        unparse(node)
        for node in _nodes(subject, ast.AugAssign)
        if isinstance(node.op, kinds)
    ]
    found = _distinct(found)
    return _shorten(found[0]) if len(found) == 1 else None


# --- ValueError from int() and float() -----------------------------------------

_INVALID_INT = re.compile(r"^invalid literal for int\(\) with base (\d+): (.+)$", re.S)
_INVALID_FLOAT = re.compile(r"^could not convert string to float: (.+)$", re.S)
_MISSING_MARKERS = frozenset({"n/a", "na", "null", "none", "nil", "-", "?", "nan"})


def _value_error(subject: _Subject) -> Optional[_Finding]:
    message = subject.link.message
    match = _INVALID_INT.match(message)
    if match:
        return _parse_failure(subject, "int", match.group(2), int(match.group(1)))
    match = _INVALID_FLOAT.match(message)
    if match:
        return _parse_failure(subject, "float", match.group(1), 10)
    return None


def _parse_failure(
    subject: _Subject, kind: str, shown: str, base: int
) -> Optional[_Finding]:
    value = literal(shown)
    if not isinstance(value, str):
        return None
    calls = [
        unparse(node.args[0])
        for node in _nodes(subject, ast.Call)
        if isinstance(node.func, ast.Name) and node.func.id == kind and node.args
    ]
    calls = _distinct(calls)
    source = f" (from {_code(calls[0])})" if len(calls) == 1 else ""
    reason, fix = _why_unparsable(value, kind, base)
    why = f"`{kind}()` could not parse {shown}{source}: {reason}"
    return _Finding(why, fix)


def _why_unparsable(value: str, kind: str, base: int) -> tuple[str, str]:
    text = value.strip()
    if not text:
        return (
            "the text is empty, so the field was blank in the input.",
            f"Treat blank fields explicitly: `{kind}(x) if x.strip() else None` (or a"
            " default), or reject the row while validating.",
        )
    if text.lower() in _MISSING_MARKERS:
        return (
            f"{value!r} is a marker for a missing value, not a number.",
            f"Map missing-value markers to None (or a default) before calling"
            f" `{kind}()`.",
        )
    if re.fullmatch(r"[+-]?\d{1,3}(,\d{3})+(\.\d+)?", text):
        return (
            "it uses commas as thousands separators.",
            f"Remove the separators first: `{kind}(x.replace(',', ''))`.",
        )
    if re.fullmatch(r"[+-]?\d+,\d+", text):
        return (
            "it uses a comma as the decimal separator.",
            "Replace the comma with a dot (`x.replace(',', '.')`), or parse with"
            " the locale the data was written in.",
        )
    if kind == "int" and base == 10 and re.fullmatch(r"[+-]?(\d+\.\d*|\.\d+)", text):
        return (
            "it is a decimal number and `int()` accepts only whole numbers.",
            "Use `float(x)` (then `round()` or `int()` if a whole number is"
            " wanted), or `decimal.Decimal(x)` for money.",
        )
    if re.fullmatch(r"[$€£¥]\s*[\d.,]+|[\d.,]+\s*[$€£¥%]", text):
        return (
            "it carries a currency or percent sign.",
            f"Strip the sign before converting: `{kind}(x.strip('$€£¥% '))`.",
        )
    if kind == "int" and base == 10 and re.fullmatch(r"0[xob][0-9a-f]+", text.lower()):
        return (
            "it has a base prefix and base 10 was asked for.",
            "Pass `base=0` to let `int()` read the prefix: `int(x, 0)`.",
        )
    return (
        "it is not a number.",
        f"Validate the field before converting, or catch ValueError around"
        f" `{kind}()` and report the row; check that the column read is the one"
        " meant (a shifted column or a header row gives text).",
    )


# --- files ----------------------------------------------------------------------

_SUBPROCESS = re.compile(r"\b(?:subprocess|Popen|check_call|check_output|run)\(")


def _file_not_found(subject: _Subject) -> Optional[_Finding]:
    path = subject.link.attributes.get("filename")
    if not isinstance(path, str) or not path or "<redacted>" in path:
        return None
    line = subject.failure.source_line if subject.position == 0 else None
    if os.sep not in path and _SUBPROCESS.search(line or ""):
        return _Finding(
            f"The program {path!r} was not found on PATH, so it could not be run.",
            f"Install {path!r}, or call it by its full path; check the PATH of the"
            " environment this process runs in (services often have a short one).",
        )
    absolute = os.path.abspath(path)
    parent = _nearest_existing(absolute)
    why = f"There is no file or directory at {path!r}"
    if absolute != path:
        why += f" (relative to the working directory {os.getcwd()!r})"
    why += "."
    if parent is not None and parent == os.path.dirname(absolute):
        similar = _similar_entries(parent, os.path.basename(absolute))
        why += f" Its directory {parent!r} exists"
        why += (
            f"; entries with a close name: {', '.join(similar)}."
            if similar
            else ", but holds no entry of that name."
        )
    elif parent is not None:
        missing = os.path.relpath(os.path.dirname(absolute), parent)
        why += (
            f" The nearest existing directory is {parent!r}; {missing!r} below it"
            " is missing."
        )
    fix = (
        "Check the path (spelling, and the working directory a relative path"
        " resolves against), create the file or its directory first"
        " (`Path(p).parent.mkdir(parents=True, exist_ok=True)` for output), or build"
        " the path from `Path(__file__).parent` instead of the working directory."
    )
    return _Finding(why, fix)


def _nearest_existing(path: str) -> Optional[str]:
    current = os.path.dirname(path)
    for _ in range(64):
        if os.path.isdir(current):
            return current
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent
    return None


def _similar_entries(directory: str, name: str) -> list[str]:
    try:
        with os.scandir(directory) as entries:
            names = [entry.name for _, entry in zip(range(2000), entries)]
    except OSError:
        return []
    return difflib.get_close_matches(name, names, n=3, cutoff=0.6)


def _permission_error(subject: _Subject) -> Optional[_Finding]:
    path = subject.link.attributes.get("filename")
    if not isinstance(path, str) or not path or "<redacted>" in path:
        return None
    absolute = os.path.abspath(path)
    who = _whoami()
    if os.path.exists(absolute):
        kind = "directory" if os.path.isdir(absolute) else "file"
        why = (
            f"The operating system refused access to the {kind} {path!r}"
            f" ({_ownership(absolute)}); this process runs as {who}."
        )
        fix = (
            f"Give this process's user the access it needs to {path!r} (`chmod`,"
            " `chown` or its group), or work on a copy or a path it owns. If the"
            " permissions already allow it, look for a read-only mount, a file"
            " locked by another program, or a security policy (SELinux, AppArmor)."
        )
        if kind == "directory":
            fix += " A directory cannot be opened as a file: name a file inside it."
        return _Finding(why, fix)
    parent = _nearest_existing(absolute) or os.path.dirname(absolute)
    why = (
        f"{path!r} does not exist and could not be created: the nearest existing"
        f" directory is {parent!r} ({_ownership(parent)}); this process runs as"
        f" {who}."
    )
    fix = (
        f"Grant this user write access to {parent!r}, or write somewhere it owns"
        " (a data or temporary directory taken from configuration)."
    )
    return _Finding(why, fix)


def _whoami() -> str:
    getuid = getattr(os, "geteuid", None)
    return f"uid {getuid()}" if getuid is not None else "the current user"


def _ownership(path: str) -> str:
    try:
        info = os.stat(path)
    except OSError:
        return "its permissions could not be read"
    return f"mode {stat.filemode(info.st_mode)}, owner uid {info.st_uid}"


# --- imports ----------------------------------------------------------------------

#: Import names whose distribution on PyPI has another name.
DISTRIBUTIONS: dict[str, str] = {
    "yaml": "PyYAML",
    "cv2": "opencv-python",
    "PIL": "Pillow",
    "sklearn": "scikit-learn",
    "skimage": "scikit-image",
    "bs4": "beautifulsoup4",
    "dateutil": "python-dateutil",
    "dotenv": "python-dotenv",
    "psycopg2": "psycopg2-binary",
    "attr": "attrs",
    "jwt": "PyJWT",
    "serial": "pyserial",
    "Crypto": "pycryptodome",
    "google.protobuf": "protobuf",
    "magic": "python-magic",
    "docx": "python-docx",
    "pptx": "python-pptx",
    "jose": "python-jose",
    "slugify": "python-slugify",
    "multipart": "python-multipart",
    "telegram": "python-telegram-bot",
    "MySQLdb": "mysqlclient",
    "OpenSSL": "pyOpenSSL",
    "usb": "pyusb",
    "win32api": "pywin32",
    "win32com": "pywin32",
    "zmq": "pyzmq",
    "fitz": "PyMuPDF",
    "Levenshtein": "python-Levenshtein",
    "git": "GitPython",
    "github": "PyGithub",
    "ldap": "python-ldap",
    "nacl": "PyNaCl",
    "jinja2": "Jinja2",
    "markdown": "Markdown",
    "websocket": "websocket-client",
    "socks": "PySocks",
    "lxml": "lxml",
    "Bio": "biopython",
    "gi": "PyGObject",
    "kafka": "kafka-python",
    "dns": "dnspython",
    "faiss": "faiss-cpu",
    "grpc": "grpcio",
    "google.cloud": "google-cloud-core",
    "pkg_resources": "setuptools",
    "sentence_transformers": "sentence-transformers",
    "mpl_toolkits": "matplotlib",
    "tensorflow_hub": "tensorflow-hub",
    "speech_recognition": "SpeechRecognition",
    "Image": "Pillow",
}


def _module_not_found(subject: _Subject) -> Optional[_Finding]:
    name = subject.link.attributes.get("name")
    if not isinstance(name, str) or not name:
        quoted = re.match(r"^No module named '([\w.]+)'", subject.link.message)
        if not quoted:
            return None
        name = quoted.group(1)
    parent, _, child = name.rpartition(".")
    if parent and parent in sys.modules and _distribution_for(name) is None:
        return _Finding(
            f"The package {parent!r} is importable, but it has no submodule {child!r}.",
            f"Check the spelling of {name!r} and the package's version (the"
            " submodule may be newer or removed); inside your own package, check"
            " that the file exists and the import is relative to the right place.",
        )
    distribution = _distribution_for(name)
    top = name.split(".")[0]
    python = sys.executable or "python"
    if distribution is not None:
        why = (
            f"The module {name!r} is not installed for this interpreter ({python})."
            f" It is provided by the distribution {distribution!r}, whose name"
            " differs from the import name."
        )
        fix = f"Install it with `{python} -m pip install {distribution}`."
    else:
        why = f"The module {name!r} is not installed for this interpreter ({python})."
        fix = (
            f"Install the distribution that provides {top!r} into this interpreter"
            f" (`{python} -m pip install <distribution>`; it is often named"
            f" {top!r}), or activate the virtual environment it is installed in."
        )
    return _Finding(why, fix)


def _distribution_for(name: str) -> Optional[str]:
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        found = DISTRIBUTIONS.get(".".join(parts[:end]))
        if found is not None:
            return found
    return None


# --- JSON ---------------------------------------------------------------------------


def _json_decode(subject: _Subject) -> Optional[_Finding]:
    attributes = subject.link.attributes
    line, column, pos = (attributes.get(k) for k in ("lineno", "colno", "pos"))
    if not isinstance(line, int) or not isinstance(column, int):
        return None
    msg = str(attributes.get("msg") or "")
    excerpt = attributes.get("doc_excerpt")
    excerpt = excerpt if isinstance(excerpt, str) else ""
    offset = min(pos, 40) if isinstance(pos, int) else 0
    before, after = excerpt[:offset], excerpt[offset:]
    why = f"The text is not valid JSON at line {line}, column {column}: {msg}."
    if excerpt:
        shown_before = before.encode("unicode_escape").decode("ascii")
        shown_after = after.encode("unicode_escape").decode("ascii")
        caret = " " * (len(shown_before) + 4) + "^"
        why += f" The text around it:\n\n    {shown_before}{shown_after}\n{caret}"
    return _Finding(why, _json_fix(msg, before, after, pos))


def _json_fix(msg: str, before: str, after: str, pos: Any) -> str:
    head = after.lstrip()
    if pos == 0 and not after:
        return (
            "The input is empty. Check it before decoding: an empty file, or an"
            " HTTP response without a body (look at its status code)."
        )
    if pos == 0 and head.startswith("<"):
        return (
            "The input is HTML or XML, not JSON: usually an error page or a login"
            " redirect. Check the HTTP status and Content-Type before decoding,"
            " and the URL."
        )
    if msg.startswith("Expecting property name") and before.rstrip().endswith(","):
        return "Remove the trailing comma before the closing brace; JSON allows none."
    if head.startswith("'") or msg.startswith("Expecting property name"):
        return (
            "The text uses single quotes, so it looks like a Python repr rather"
            " than JSON. Have the producer write it with `json.dumps()` (not"
            " `str()`); for existing data, `ast.literal_eval()` reads it."
        )
    if msg.startswith("Extra data"):
        return (
            "More than one JSON value follows another: JSON Lines, or two"
            " documents written into one file. Decode it line by line"
            " (`[json.loads(l) for l in text.splitlines() if l.strip()]`)."
        )
    if msg.startswith("Unterminated string") or (
        msg.startswith("Expecting") and not after.strip()
    ):
        return (
            "The text ends early: a truncated download or a file still being"
            " written. Check its length against what was sent."
        )
    if msg.startswith("Invalid control character"):
        return (
            "A string holds a raw newline or tab; escape it when writing, or decode"
            " with `json.loads(text, strict=False)`."
        )
    return (
        "Fix the producer of this text at the point shown, or validate it before"
        " decoding; `python -m json.tool file.json` points at the same place."
    )


# --- text encodings ------------------------------------------------------------------

_DECODE = re.compile(
    r"^'([\w-]+)' codec can't decode byte (0x[0-9a-f]{2}) in position (\d+)"
)


def _unicode_decode(subject: _Subject) -> Optional[_Finding]:
    attributes = subject.link.attributes
    match = _DECODE.match(subject.link.message)
    codec = attributes.get("encoding") or (match.group(1) if match else None)
    start = attributes.get("start")
    if start is None and match:
        start = int(match.group(3))
    raw = str(attributes.get("bad_bytes") or "")
    data = bytes.fromhex(raw) if re.fullmatch(r"[0-9a-f ]*", raw) else b""
    if not data and match:
        data = bytes([int(match.group(2), 16)])
    if not codec or not data or not isinstance(start, int):
        return None
    likely, reason = _likely_encoding(str(codec), data, start)
    why = (
        f"The bytes are not {codec}: byte 0x{data[0]:02x} at position {start}"
        f" cannot be decoded. {reason}"
    )
    fix = (
        f"Decode with the encoding the data was written in, most likely"
        f' `encoding="{likely}"` (in `open()`, `read_text()` or `bytes.decode()`);'
        ' or, if a few bad bytes may be dropped, `errors="replace"`.'
    )
    return _Finding(why, fix)


def _likely_encoding(codec: str, data: bytes, start: int) -> tuple[str, str]:
    if start == 0 and data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return "utf-16", "It starts with a UTF-16 byte order mark, so it is UTF-16."
    first = data[0]
    if start == 0 and first in (0xFF, 0xFE):
        return "utf-16", "A 0xff/0xfe first byte is a UTF-16 byte order mark."
    if codec.replace("-", "").lower() == "ascii" and first >= 0xC2:
        return "utf-8", "A byte above 0x7f in ASCII text usually means UTF-8."
    if 0x80 <= first <= 0x9F:
        return (
            "cp1252",
            "Bytes 0x80-0x9f are printable in Windows-1252 (curly quotes, dashes,"
            " the euro sign), so the text is probably cp1252.",
        )
    return (
        "latin-1",
        "A lone byte in 0xa0-0xff is an accented letter in Latin-1 (ISO-8859-1),"
        " so the text is probably Latin-1.",
    )


# --- network ------------------------------------------------------------------------

_REFUSED = re.compile(r"connection refused|errno 111\b|winerror 10061", re.IGNORECASE)
_TIMED_OUT = re.compile(r"timed out|timeout", re.IGNORECASE)
_HOST_PORT_PATTERNS = (
    re.compile(r"host='([^']+)', port=(\d+)"),
    re.compile(r"\('([^']+)', (\d+)\)"),
    re.compile(r'server at "([^"]+)"(?: \([^)]*\))?, port (\d+)'),
    re.compile(r"connecting to ([\w.\-]+|\[[0-9a-f:]+\]):(\d+)", re.IGNORECASE),
    re.compile(r"\b[a-z][a-z0-9+.\-]*://(?:[^@/\s]*@)?([\w.\-]+|\[[0-9a-f:]+\]):(\d+)"),
    re.compile(r"\b((?:\d{1,3}\.){3}\d{1,3}|localhost):(\d{1,5})\b"),
)
_URL_HOST = re.compile(
    r"\b(https?|wss?|redis|postgres(?:ql)?|mysql|amqp)://(?:[^@/\s'\"]*@)?([\w.\-]+)"
)
_DEFAULT_PORTS = {
    "http": 80,
    "https": 443,
    "ws": 80,
    "wss": 443,
    "redis": 6379,
    "postgres": 5432,
    "postgresql": 5432,
    "mysql": 3306,
    "amqp": 5672,
}
_TIMEOUT_TYPES = frozenset(
    {
        "TimeoutError",
        "timeout",
        "ReadTimeout",
        "ConnectTimeout",
        "ReadTimeoutError",
        "ConnectTimeoutError",
        "WriteTimeout",
        "PoolTimeout",
        "Timeout",
        "TimeoutException",
    }
)


def _connection(subject: _Subject) -> Optional[_Finding]:
    link = subject.link
    refused = link.short_type == "ConnectionRefusedError" or (
        link.attributes.get("errno") == 111
        or (
            bool(_REFUSED.search(link.message))
            and link.short_type.endswith(("Error", "Exception"))
        )
    )
    if refused:
        return _refused(subject)
    if link.short_type in _TIMEOUT_TYPES:
        return _timeout(subject)
    return None


def _address(subject: _Subject) -> Optional[str]:
    texts = [link.message for link in subject.failure.chain] or [
        subject.failure.error_message
    ]
    if subject.failure.source_line:
        texts.append(subject.failure.source_line)
    for text in texts:
        for pattern in _HOST_PORT_PATTERNS:
            found = pattern.search(text)
            if found:
                return f"{found.group(1)}:{found.group(2)}"
    for text in texts:
        url = _URL_HOST.search(text)
        if url:
            return f"{url.group(2)}:{_DEFAULT_PORTS.get(url.group(1), '?')}"
    return _address_in_locals(subject.locals)


def _address_in_locals(names: dict[str, str]) -> Optional[str]:
    host = port = None
    for name in sorted(names):
        lowered = name.lower()
        value = literal(names[name])
        if host is None and lowered in ("host", "hostname", "server", "address"):
            if isinstance(value, str):
                host = value
            elif isinstance(value, tuple) and len(value) == 2:
                return f"{value[0]}:{value[1]}"
        if port is None and lowered == "port" and isinstance(value, int):
            port = value
    if host is not None and port is not None:
        return f"{host}:{port}"
    for name in sorted(names):
        value = names[name]
        for pattern in _HOST_PORT_PATTERNS[3:]:
            found = pattern.search(value)
            if found:
                return f"{found.group(1)}:{found.group(2)}"
    return None


def _refused(subject: _Subject) -> _Finding:
    address = _address(subject)
    target = address or "the address it dialled"
    why = (
        f"Nothing is listening on {target}: the connection was refused"
        " (ECONNREFUSED). The server is down, not started yet, or listening on"
        " another port or interface."
    )
    if address is None:
        why += (
            " The host and port were not in the captured data (rich mode shows locals)."
        )
    fix = (
        f"Start the service, or point the client at the right host and port"
        f" (check the configuration and environment it reads); `nc -z` on"
        f" {target} confirms it from the same machine. A service in a container may"
        " listen on another interface; if it starts together with this program,"
        " retry with a backoff."
    )
    return _Finding(why, fix)


def _timeout(subject: _Subject) -> Optional[_Finding]:
    link = subject.link
    address = _address(subject)
    if address is None and not _TIMED_OUT.search(link.message):
        return None  # a bare timeout: it may not be about the network at all
    target = address or "the server"
    limit = re.search(r"timeout=([\d.]+)", link.message)
    within = f" within {limit.group(1)}s" if limit else ""
    connecting = (
        "connect" in link.short_type.lower() or "connect" in link.message.lower()
    )
    if connecting:
        why = (
            f"Connecting to {target} timed out{within}: no answer at all, so the"
            " host is unreachable, a firewall drops the packets, or the address is"
            " wrong."
        )
        fix = (
            f"Check that {target} is the right address and reachable from this"
            " machine (routing, firewall, VPN); raise the connect timeout only if"
            " the network is known to be slow."
        )
    else:
        why = (
            f"{target.capitalize() if target == 'the server' else target} did not"
            f" answer in time{within}: the connection was made or attempted, but no"
            " reply arrived before the timeout."
        )
        fix = (
            "Find out why the server is slow for this request (its logs, its load,"
            " the size of what was asked); raise the read timeout if the work is"
            " legitimately long, and retry idempotent requests with a backoff."
        )
    return _Finding(why, fix)


# --- recursion, division, assertions -------------------------------------------------


def _recursion(subject: _Subject) -> Optional[_Finding]:
    frames = subject.failure.frames
    if not frames:
        return _Finding(
            "The call stack exceeded Python's recursion limit: a function calls"
            " itself (directly or through others) without reaching a base case.",
            "Check the recursion's stop condition for this input; rewrite deep"
            " recursion as a loop with an explicit stack.",
        )
    counts = Counter((frame.filename, frame.function) for frame in frames)
    (filename, function), count = counts.most_common(1)[0]
    cycle = _cycle(frames)
    lineno = next(f.lineno for f in reversed(frames) if f.function == function)
    where = f"{os.path.basename(filename)}:{lineno}"
    why = (
        f"`{function}` ({where}) kept calling itself"
        f"{' through ' + ' → '.join(cycle) if len(cycle) > 1 else ''} until the"
        f" recursion limit: it is {count} of the {len(frames)} captured frames."
    )
    if function in ("__getattr__", "__getattribute__", "__setattr__"):
        fix = (
            f"`{function}` reads or sets an attribute on `self` that sends it back"
            " into itself. Use `object.__getattribute__(self, name)` /"
            " `object.__setattr__(...)` or `self.__dict__` inside it."
        )
    else:
        fix = (
            f"Check the stop condition of `{function}`: this input never reaches"
            " it (a missing base case, or an argument that does not get smaller)."
            " If the depth is legitimate, rewrite it as a loop with an explicit"
            " stack; raising sys.setrecursionlimit() only moves the crash."
        )
    return _Finding(why, fix)


def _cycle(frames: Any) -> list[str]:
    names = [frame.function for frame in frames][-60:]
    for period in range(1, 6):
        window = names[-period * 4 :]
        if len(window) == period * 4 and all(
            window[i] == window[i % period] for i in range(len(window))
        ):
            return [*window[:period], window[0]]
    return []


def _zero_division(subject: _Subject) -> Optional[_Finding]:
    kinds = (ast.Div, ast.FloorDiv, ast.Mod)
    divisions = [
        (node.left, node.right)
        for node in _nodes(subject, ast.BinOp)
        if isinstance(node.op, kinds)
    ]
    divisions += [
        (node.target, node.value)
        for node in _nodes(subject, ast.AugAssign)
        if isinstance(node.op, kinds)
    ]
    divisions += [
        (node.args[0], node.args[1])
        for node in _nodes(subject, ast.Call)
        if isinstance(node.func, ast.Name)
        and node.func.id == "divmod"
        and len(node.args) == 2
    ]
    divisors = _distinct([unparse(right) for _, right in divisions])
    zero = [d for d in divisors if literal(subject.locals.get(d, "None")) == 0]
    if zero:
        divisors = zero
    if len(divisors) != 1:
        listed = " or ".join(_code(d) for d in divisors)
        which = f" (the divisor is {listed})" if divisors else ""
        return _Finding(
            f"A division or modulo by zero{which}.",
            "Guard the zero case before dividing and decide what it should mean"
            " (an empty input, usually): `x / n if n else 0`, or skip the row.",
        )
    divisor = divisors[0]
    emptied = re.fullmatch(r"len\((.+)\)", divisor)
    why = f"The divisor {_code(divisor)} was 0."
    if emptied:
        why += f" {_code(emptied.group(1))} is empty."
    fix = (
        f"Guard the zero case and decide what it means here: `... / {divisor} if"
        f" {divisor} else 0` (or skip the computation); then check why"
        f" {_code(divisor)} is zero for this input"
        f"{' (an empty collection)' if emptied else ''}."
    )
    return _Finding(why, fix)


def _assertion(subject: _Subject) -> Optional[_Finding]:
    line = subject.source_line
    if not line or not line.lstrip().startswith("assert"):
        return None
    asserts = _nodes(subject, ast.Assert)
    if asserts:
        expression = unparse(asserts[0].test)
        names = [n.id for n in ast.walk(asserts[0].test) if isinstance(n, ast.Name)]
    else:
        expression = line.lstrip()[len("assert") :].strip().rstrip("(\\").strip()
        names = []
    if not expression:
        return None
    message = subject.link.message
    values = [
        f"{name} = {subject.locals[name]}"
        for name in _distinct(names)
        if name in subject.locals
    ]
    why = f"The assertion {_code(_shorten(expression, 120))} was false"
    why += f" ({message})." if message else "."
    if values:
        why += " Values at that point: " + ", ".join(values[:6]) + "."
    fix = (
        "Find where the values in the assertion were set for this input: either"
        " the data broke an invariant upstream, or the assumption no longer"
        " holds. For checking input, raise ValueError instead: `python -O` strips"
        " assert statements."
    )
    return _Finding(why, fix)


# --- the table ---------------------------------------------------------------------

_RULES: dict[str, tuple[_Rule, ...]] = {
    **dict.fromkeys(_INTEGRITY_TYPES, (_integrity,)),
    "KeyError": (_key_error,),
    "IndexError": (_index_error,),
    "AttributeError": (_attribute_on_none,),
    "TypeError": (_type_error,),
    "ValueError": (_value_error,),
    "FileNotFoundError": (_file_not_found,),
    "PermissionError": (_permission_error,),
    "ModuleNotFoundError": (_module_not_found,),
    "JSONDecodeError": (_json_decode,),
    "UnicodeDecodeError": (_unicode_decode,),
    "RecursionError": (_recursion,),
    "ZeroDivisionError": (_zero_division,),
    "AssertionError": (_assertion,),
}
#: Rules that recognise a failure by its content whatever its type (network
#: errors come wrapped in each client library's own types).
_ANY_TYPE_RULES: tuple[_Rule, ...] = (_connection,)
