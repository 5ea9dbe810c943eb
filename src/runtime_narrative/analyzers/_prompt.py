"""The prompt a language-model analyzer sends, and how its answer is read.

The prompt is built only from the captured FailureDiagnostics, which are
already redacted, and it never exceeds the analyzer's ``max_context_chars``:
the traceback gives way first (trimmed from the top, so the most recent
frames stay; ``<traceback omitted>`` when none fits), then the optional
sections, then the text is cut.

The model is asked for one JSON object with ``exact_why``, ``evidence``,
``targeted_fix`` and ``code_changes``; :func:`format_answer` turns it into
``## Exact Why`` / ``## Evidence`` / ``## Targeted Fix`` / ``## Code Changes``
sections, and falls back to the raw text when the answer is not JSON.
"""

from __future__ import annotations

import json
from typing import Any, Optional

from runtime_narrative.diagnostics import FailureDiagnostics, Redactor

__all__ = [
    "ANSWER_KEYS",
    "TRACEBACK_OMITTED",
    "build_prompt",
    "format_answer",
]

TRACEBACK_OMITTED = "<traceback omitted>"

#: The answer's keys and the section heading each becomes.
ANSWER_KEYS: tuple[tuple[str, str], ...] = (
    ("exact_why", "Exact Why"),
    ("evidence", "Evidence"),
    ("targeted_fix", "Targeted Fix"),
    ("code_changes", "Code Changes"),
)

_INSTRUCTIONS = (
    "You diagnose one failure of a Python program. Use only the facts below."
    " Values shown as <redacted> were removed on purpose; do not guess them.\n"
    "Answer with a single JSON object and nothing else, with these string keys:\n"
    '  "exact_why": the precise cause, in one to three sentences;\n'
    '  "evidence": the facts below that show it;\n'
    '  "targeted_fix": what to change, specifically;\n'
    '  "code_changes": the code to write, or an empty string.\n'
)
_MAX_LOCALS_CHARS = 2_000
# A budget too small for even the instructions keeps at least this much.
_MIN_BUDGET = 200
_default_redactor = Redactor()


def build_prompt(
    *,
    story_name: str,
    stage_name: str,
    failure: FailureDiagnostics,
    stage_timeline: str,
    progress_percent: int,
    max_context_chars: int,
) -> str:
    """The whole prompt, at most ``max_context_chars`` characters long."""
    budget = max(int(max_context_chars), _MIN_BUDGET)
    required = _required_sections(story_name, stage_name, failure, progress_percent)
    optional = _optional_sections(failure, stage_timeline)
    traceback_text = failure.traceback_text or ""

    # Optional sections go, last first, until the fixed part leaves room for
    # at least the traceback marker.
    while True:
        fixed = "".join([_INSTRUCTIONS, *required, *optional])
        room = budget - len(fixed) - len(_traceback_section(""))
        if room >= len(TRACEBACK_OMITTED) or not optional:
            break
        optional.pop()
    prompt = fixed + _traceback_section(_fit_traceback(traceback_text, room))
    # Defence in depth: the diagnostics are redacted already, but the story
    # and stage names and the timeline are the program's own text.
    prompt = _default_redactor.redact_text(prompt)
    return prompt if len(prompt) <= budget else prompt[: budget - 1] + "…"


def _required_sections(
    story_name: str,
    stage_name: str,
    failure: FailureDiagnostics,
    progress_percent: int,
) -> list[str]:
    where = (
        f"{failure.filename}:{failure.lineno} in {failure.function}"
        if failure.filename
        else "unknown"
    )
    lines = [
        f"\nStory: {story_name}\n",
        f"Stage: {stage_name} (story {progress_percent}% done)\n",
        f"Error: {failure.error_type}: {_clip(failure.error_message, 1_000)}\n",
        f"Raised at: {where}\n",
    ]
    if failure.source_line:
        lines.append(f"Line: {failure.source_line}\n")
    if failure.exception_chain and " <- " in failure.exception_chain:
        lines.append(f"Exception chain: {_clip(failure.exception_chain, 1_500)}\n")
    if failure.rules_analysis:
        lines.append(
            "\nThe built-in rules already concluded (confirm or correct it):\n"
            f"{_clip(failure.rules_analysis, 1_500)}\n"
        )
    return lines


def _optional_sections(failure: FailureDiagnostics, stage_timeline: str) -> list[str]:
    """Sections that may be dropped, the most useful first."""
    sections = []
    if failure.source_snippet:
        sections.append(
            f"\nSource around the failing line:\n{failure.source_snippet}\n"
        )
    if failure.locals_by_frame:
        sections.append(
            f"\nLocal variables (redacted):\n{_locals_text(failure.locals_by_frame)}\n"
        )
    if failure.compressed_stack_summary:
        sections.append(
            f"\nCall path:\n{_clip(failure.compressed_stack_summary, 800)}\n"
        )
    if stage_timeline:
        sections.append(f"\nStages so far:\n{_clip(stage_timeline, 800)}\n")
    return sections


def _locals_text(locals_by_frame: dict[str, Any]) -> str:
    lines = []
    for frame in locals_by_frame.values():
        if not isinstance(frame, dict):
            continue
        lines.append(f"in {frame.get('function')} ({frame.get('lineno')}):")
        values = frame.get("locals")
        if isinstance(values, dict):
            lines.extend(f"  {name} = {value}" for name, value in values.items())
    return _clip("\n".join(lines), _MAX_LOCALS_CHARS)


def _traceback_section(body: str) -> str:
    return f"\nTraceback (most recent call last is at the end):\n{body}\n"


def _fit_traceback(text: str, room: int) -> str:
    """The most recent whole lines of ``text`` that fit in ``room``."""
    if not text or room < len(TRACEBACK_OMITTED):
        return TRACEBACK_OMITTED
    if len(text) <= room:
        return text
    marker = "…(earlier frames trimmed)\n"
    keep = room - len(marker)
    tail = text[-keep:] if keep > 0 else ""
    # Only whole lines: the text before the first newline of the tail is the
    # end of a line cut in the middle.
    newline = tail.find("\n")
    tail = tail[newline + 1 :] if newline != -1 else ""
    if not tail.strip():
        return TRACEBACK_OMITTED
    return marker + tail


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def format_answer(text: Optional[str]) -> Optional[str]:
    """The model's answer as Markdown sections; the raw text if it is not JSON.

    Returns ``None`` for an empty answer.
    """
    if text is None:
        return None
    stripped = text.strip()
    if not stripped:
        return None
    answer = _json_object(stripped)
    if answer is None or not any(key in answer for key, _ in ANSWER_KEYS):
        return stripped
    sections = []
    for key, heading in ANSWER_KEYS:
        body = _as_text(answer.get(key)).strip()
        sections.append(f"## {heading}\n{body or 'Not given.'}")
    return "\n\n".join(sections)


def _json_object(text: str) -> Optional[dict[str, Any]]:
    candidates = [text]
    if text.startswith("```"):
        inner = text.strip("`").strip()
        if inner.lower().startswith("json"):
            inner = inner[4:]
        candidates.append(inner.strip())
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(
            item if isinstance(item, str) else json.dumps(item) for item in value
        )
    return json.dumps(value, indent=2, ensure_ascii=False)
