"""HtmlReportRenderer: one self-contained HTML page per finished story.

The page holds its CSS and its SVG charts inline and loads nothing, so it can
be mailed, attached to a ticket or opened from a CI artifact. Every text that
comes from the program (story and stage names, messages, code, analyses) is
escaped with ``html.escape``.

The same builder serves ``runtime-narrative report``, from stored rows.
"""

from __future__ import annotations

import html
import logging
import os
import re
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Optional, Union

from runtime_narrative.events import (
    STORY_BODY,
    FailureOccurred,
    LLMAnalysisReady,
    StageCompleted,
    StageStarted,
    StoryCompleted,
    StoryStarted,
)

if TYPE_CHECKING:
    from ._store import StoredStory

__all__ = [
    "HtmlReportRenderer",
    "ReportStage",
    "ReportStory",
    "build_report",
    "report_from_stored",
]

logger = logging.getLogger("runtime_narrative")

#: Stages kept per story; a report of a longer story says how many it left out.
MAX_STAGES_PER_REPORT = 2_000
_MAX_OPEN_STORIES = 1_000


@dataclass
class ReportStage:
    name: str
    depth: int
    start: Optional[float]
    """Seconds after the story started, when known."""
    duration: Optional[float]
    status: str
    """``completed``, ``failed`` or ``open`` (never finished)."""


@dataclass
class ReportStory:
    story_id: str
    name: str
    success: Optional[bool]
    status: str
    duration: Optional[float]
    started_at: Optional[datetime] = None
    outcome: str = ""
    error_type: Optional[str] = None
    stages: list[ReportStage] = field(default_factory=list)
    failures: list[FailureOccurred] = field(default_factory=list)
    children: list[ReportStory] = field(default_factory=list)
    omitted_stages: int = 0


# -- the renderer ----------------------------------------------------------------


class _Collecting:
    """What the renderer holds for one open story."""

    def __init__(self, event: StoryStarted) -> None:
        self.report = ReportStory(
            story_id=event.story_id,
            name=event.story_name,
            success=None,
            status="running",
            duration=None,
            started_at=event.timestamp,
        )
        self.parent_id = event.parent_story_id
        self.open: dict[int, tuple[ReportStage, datetime]] = {}

    def offset(self, when: datetime) -> Optional[float]:
        start = self.report.started_at
        return (when - start).total_seconds() if start is not None else None


class HtmlReportRenderer:
    """Write a self-contained HTML report of each story when it completes.

    ``path`` may hold ``{story_id}`` and ``{story_name}`` placeholders (the
    name is reduced to letters, digits, ``-`` and ``_``), giving one file per
    story; without them each story's report replaces the previous one. The
    file is written whole and then moved into place, so a reader never sees
    half a report. A sub-story opened inside a story this renderer follows is
    part of its parent's report, not a file of its own.

    ``open_browser=True`` opens each report with :func:`webbrowser.open`.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        path: Union[str, os.PathLike[str]] = "report.html",
        open_browser: bool = False,
    ) -> None:
        self.path = os.fspath(path)
        self.open_browser = open_browser
        self._stories: dict[str, _Collecting] = {}
        self._lock = threading.Lock()

    def handle(self, event: object) -> None:
        report: Optional[ReportStory] = None
        with self._lock:
            if isinstance(event, StoryStarted):
                self._start(event)
                return
            state = self._stories.get(getattr(event, "story_id", ""))
            if state is None:
                return
            if isinstance(event, StageStarted):
                self._stage_started(state, event)
            elif isinstance(event, StageCompleted):
                self._stage_completed(state, event)
            elif isinstance(event, FailureOccurred):
                self._failure(state, event)
            elif isinstance(event, LLMAnalysisReady):
                self._analysis(state, event)
            elif isinstance(event, StoryCompleted):
                report = self._complete(state, event)
        # Building and writing the page happens outside the lock.
        if report is not None:
            self._write(report)

    def _start(self, event: StoryStarted) -> None:
        while len(self._stories) >= _MAX_OPEN_STORIES:
            del self._stories[next(iter(self._stories))]
        self._stories[event.story_id] = _Collecting(event)

    def _stage_started(self, state: _Collecting, event: StageStarted) -> None:
        report = state.report
        if len(report.stages) >= MAX_STAGES_PER_REPORT:
            report.omitted_stages += 1
            return
        stage = ReportStage(
            event.stage_name, event.depth, state.offset(event.timestamp), None, "open"
        )
        report.stages.append(stage)
        state.open[event.stage_index] = (stage, event.timestamp)

    def _stage_completed(self, state: _Collecting, event: StageCompleted) -> None:
        entry = state.open.pop(event.stage_index, None)
        if entry is None:
            return
        entry[0].duration = event.duration_seconds
        entry[0].status = "completed"

    def _failure(self, state: _Collecting, event: FailureOccurred) -> None:
        state.report.failures.append(event)
        if event.recorded:
            return
        for index in sorted(state.open, reverse=True):
            stage, started = state.open[index]
            if stage.name == event.stage_name:
                stage.status = "failed"
                stage.duration = max(0.0, (event.timestamp - started).total_seconds())
                del state.open[index]
                return

    def _analysis(self, state: _Collecting, event: LLMAnalysisReady) -> None:
        if event.llm_analysis is None:
            return
        failures = state.report.failures
        for number in range(len(failures) - 1, -1, -1):
            if failures[number].stage_name == event.stage_name:
                failures[number] = _with_analysis(failures[number], event.llm_analysis)
                return

    def _complete(
        self, state: _Collecting, event: StoryCompleted
    ) -> Optional[ReportStory]:
        del self._stories[event.story_id]
        report = state.report
        report.success = event.success
        report.status = event.status
        report.duration = event.duration_seconds
        report.outcome = event.outcome
        report.error_type = event.error_type
        parent = self._stories.get(state.parent_id or "")
        if parent is None:
            return report
        parent.report.children.append(report)
        return None

    def _write(self, report: ReportStory) -> None:
        path = self.path_for(report)
        text = build_report(report)
        directory = os.path.dirname(os.path.abspath(path))
        try:
            handle, temporary = tempfile.mkstemp(
                prefix=".report-", suffix=".html", dir=directory
            )
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                stream.write(text)
            os.replace(temporary, path)
        except OSError as exc:
            logger.error(
                "HtmlReportRenderer could not write the report of story %r to %s: %s",
                report.name,
                path,
                exc,
            )
            return
        if self.open_browser:
            import webbrowser

            webbrowser.open(f"file://{os.path.abspath(path)}")

    def path_for(self, report: ReportStory) -> str:
        """The file the report of ``report`` goes to."""
        return self.path.replace("{story_id}", report.story_id).replace(
            "{story_name}", _file_safe(report.name)
        )


def _file_safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_")[:80] or "story"


def _with_analysis(event: FailureOccurred, analysis: str) -> FailureOccurred:
    import dataclasses

    return dataclasses.replace(event, llm_analysis=analysis)


# -- from stored rows ------------------------------------------------------------


def report_from_stored(stored: StoredStory) -> ReportStory:
    """The report of a story read back by the ``runtime-narrative`` command."""
    from ._store import rebuild_failure

    row = stored.story
    start = row.get("started_at")
    name = str(row.get("name") or "(story start not recorded)")
    failures = [rebuild_failure(f, name) for f in stored.failures]
    stages = []
    for stage in stored.stages:
        begun = stage.get("started_at")
        offset = (begun - start).total_seconds() if begun and start else None
        status = "completed" if stage.get("completed") else "open"
        duration = stage.get("duration_seconds")
        if stage.get("failed"):
            status = "failed"
            when = next(
                (f.timestamp for f in failures if f.stage_name == stage["stage_name"]),
                None,
            )
            if when is not None and begun is not None:
                duration = max(0.0, (when - begun).total_seconds())
        stages.append(
            ReportStage(
                str(stage.get("stage_name")),
                int(stage.get("depth") or 0),
                offset,
                duration,
                status,
            )
        )
    success = row.get("success")
    return ReportStory(
        story_id=str(row["story_id"]),
        name=name,
        success=None if success is None else bool(success),
        status=str(row.get("status") or ("success" if success else "failed")),
        duration=row.get("duration_seconds"),
        started_at=start,
        outcome=str(row.get("outcome") or ""),
        error_type=row.get("error_type"),
        stages=stages,
        failures=failures,
        children=[report_from_stored(child) for child in stored.children],
    )


# -- the page --------------------------------------------------------------------

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;
color:#1d2330;background:#f6f7f9}
main{max-width:1100px;margin:0 auto;padding:24px}
header{background:#fff;border-radius:8px;padding:16px 20px;margin-bottom:18px;
border-left:6px solid #2f9e44}
header.failed{border-left-color:#e03131}header.other{border-left-color:#f08c00}
h1{margin:0 0 6px;font-size:22px}h2{font-size:17px;margin:26px 0 10px}
.meta{color:#5c6370}.meta b{color:#1d2330}
section{background:#fff;border-radius:8px;padding:12px 20px 18px;margin-bottom:18px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;
font-weight:600;color:#fff;background:#2f9e44}
.badge.failed{background:#e03131}.badge.other{background:#f08c00}
svg text{font:12px system-ui,sans-serif;fill:#1d2330}
.tl-row{display:flex;align-items:center;height:22px}
.tl-label{width:300px;flex:none;white-space:nowrap;overflow:hidden;
text-overflow:ellipsis}
.tl-track{position:relative;flex:1;height:14px;background:#eef0f3;border-radius:3px}
.tl-bar{position:absolute;top:0;height:14px;border-radius:3px;background:#4c6ef5;
min-width:2px}
.tl-bar.failed{background:#e03131}.tl-bar.open{background:#adb5bd}
.tl-bar.story{background:#15aabf}
.tl-row.failed .tl-label{color:#e03131;font-weight:600}
.failure{border:1px solid #ffc9c9;background:#fff5f5;border-radius:6px;
padding:10px 14px;margin:10px 0}
.failure h3{margin:0 0 6px;color:#c92a2a;font-size:15px}
dl{display:grid;grid-template-columns:110px 1fr;gap:4px 12px;margin:8px 0}
dt{color:#5c6370}dd{margin:0}
pre{background:#1d2330;color:#e9ecef;padding:10px 12px;border-radius:6px;
overflow:auto;font:12px/1.4 ui-monospace,Menlo,Consolas,monospace;white-space:pre}
pre.analysis{background:#f1f3f5;color:#1d2330;white-space:pre-wrap}
.note{color:#5c6370;font-style:italic}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _seconds(value: Optional[float]) -> str:
    if value is None:
        return "–"
    if value < 1:
        return f"{value * 1000:.1f} ms"
    if value < 60:
        return f"{value:.3f} s"
    minutes, rest = divmod(value, 60)
    return f"{int(minutes)} min {rest:.1f} s"


def _label(name: str) -> str:
    return "(story body)" if name == STORY_BODY else name


def _kind(report: ReportStory) -> str:
    if report.success:
        return "ok"
    return "failed" if report.status in ("failed", "running") else "other"


def build_report(report: ReportStory) -> str:
    """The whole HTML page for ``report``."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(report.name)} — runtime-narrative report</title>",
        f"<style>{_CSS}</style></head><body><main>",
        _header(report),
        '<section id="chart"><h2>Stage durations</h2>',
        _duration_chart(report),
        "</section>",
        '<section id="timeline"><h2>Timeline</h2>',
        _timeline(report),
        "</section>",
        _failures(report),
        "</main></body></html>",
    ]
    return "\n".join(parts) + "\n"


def _header(report: ReportStory) -> str:
    kind = _kind(report)
    if report.success:
        verdict = "succeeded"
    elif report.success is None:
        verdict = "did not complete"
    else:
        verdict = report.status if report.status not in ("", "success") else "failed"
        if report.error_type:
            verdict += f" — {report.error_type}"
    started = report.started_at.isoformat(" ", "seconds") if report.started_at else "–"
    outcome = f" · outcome <b>{_e(report.outcome)}</b>" if report.outcome else ""
    return (
        f'<header class="{kind}"><h1>{_e(report.name)}</h1>'
        f'<div class="meta"><span class="badge {kind}" id="outcome">{_e(verdict)}'
        f"</span> · duration <b>{_e(_seconds(report.duration))}</b>"
        f" · {len(report.stages)} stages · started {_e(started)}{outcome}"
        f" · story <code>{_e(report.story_id)}</code></div></header>"
    )


def _duration_chart(report: ReportStory) -> str:
    stages = report.stages
    if not stages:
        return '<p class="note">This story ran no stages.</p>'
    longest = max((s.duration or 0.0) for s in stages) or 1.0
    row, label_width, bar_width = 22, 280, 560
    height = row * len(stages) + 8
    parts = [
        f'<svg class="duration-chart" xmlns="http://www.w3.org/2000/svg"'
        f' width="{label_width + bar_width + 110}" height="{height}" role="img"'
        ' aria-label="duration of each stage">'
    ]
    for number, stage in enumerate(stages):
        y = 4 + number * row
        width = max(2.0, bar_width * (stage.duration or 0.0) / longest)
        colour = {"failed": "#e03131", "open": "#adb5bd"}.get(stage.status, "#4c6ef5")
        name = "  " * stage.depth + _label(stage.name)
        mark = " ✘" if stage.status == "failed" else ""
        parts.append(
            f'<g class="bar {stage.status}"><title>{_e(_label(stage.name))}:'
            f" {_e(_seconds(stage.duration))}</title>"
            f'<text x="{4 + 12 * stage.depth}" y="{y + 14}">'
            f"{_e(_cut(name.strip(), 38))}{mark}</text>"
            f'<rect x="{label_width}" y="{y + 2}" width="{width:.1f}" height="14"'
            f' rx="3" fill="{colour}"></rect>'
            f'<text x="{label_width + width + 6:.1f}" y="{y + 14}">'
            f"{_e(_seconds(stage.duration))}</text></g>"
        )
    parts.append("</svg>")
    if report.omitted_stages:
        parts.append(
            f'<p class="note">{report.omitted_stages} later stages are not shown.</p>'
        )
    return "".join(parts)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _timeline(report: ReportStory) -> str:
    total = report.duration or max(
        ((s.start or 0.0) + (s.duration or 0.0) for s in report.stages), default=0.0
    )
    rows = _timeline_rows(report, 0.0, total or 1.0, 0)
    if not rows:
        return '<p class="note">Nothing to show.</p>'
    return '<div class="timeline">' + "".join(rows) + "</div>"


def _timeline_rows(
    report: ReportStory, base: float, total: float, level: int
) -> list[str]:
    rows = []
    children = sorted(
        report.children,
        key=lambda c: c.started_at.timestamp() if c.started_at else 0.0,
    )
    for stage in report.stages:
        rows.append(
            _bar_row(
                _label(stage.name),
                level + stage.depth,
                base + (stage.start or 0.0),
                stage.duration,
                total,
                stage.status,
            )
        )
    for child in children:
        offset = base
        if child.started_at and report.started_at:
            offset = base + (child.started_at - report.started_at).total_seconds()
        rows.append(
            _bar_row(
                f"▶ sub-story: {child.name}",
                level + 1,
                offset,
                child.duration,
                total,
                "story" if child.success else "failed",
            )
        )
        rows.extend(_timeline_rows(child, offset, total, level + 2))
    return rows


def _bar_row(
    label: str,
    level: int,
    start: float,
    duration: Optional[float],
    total: float,
    status: str,
) -> str:
    left = min(100.0, max(0.0, 100 * start / total))
    width = min(100.0 - left, max(0.3, 100 * (duration or 0.0) / total))
    return (
        f'<div class="tl-row {status}"><div class="tl-label"'
        f' style="padding-left:{14 * level}px">{_e(label)}</div>'
        f'<div class="tl-track"><div class="tl-bar {status}"'
        f' style="left:{left:.2f}%;width:{width:.2f}%"'
        f' title="{_e(_seconds(duration))}"></div></div></div>'
    )


def _failures(report: ReportStory) -> str:
    failures = _all_failures(report)
    if not failures:
        return ""
    parts = ['<section id="failures"><h2>Failure</h2>']
    for story_name, failure in failures:
        parts.append(_failure_block(story_name, failure))
    parts.append("</section>")
    return "".join(parts)


def _all_failures(report: ReportStory) -> list[tuple[str, FailureOccurred]]:
    found = [(report.name, failure) for failure in report.failures]
    for child in report.children:
        found.extend(_all_failures(child))
    return found


def _failure_block(story_name: str, event: FailureOccurred) -> str:
    recorded = " (recorded; the story went on)" if event.recorded else ""
    where = ""
    if event.filename:
        where = f"{event.filename}:{event.lineno}" if event.lineno else event.filename
        if event.function:
            where += f" in {event.function}"
    rows = [("Story", story_name), ("Stage", _label(event.stage_name))]
    if where:
        rows.append(("Location", where))
    if event.source_line:
        rows.append(("Code", event.source_line.strip()))
    chain = [
        str(link.get("short_type") or link.get("error_type") or "?")
        for link in event.chain
    ]
    if len(chain) > 1:
        rows.append(("Chain", " ← ".join(chain)))
    elif event.exception_chain and " <- " in event.exception_chain:
        rows.append(("Chain", event.exception_chain))
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in rows)
    parts = [
        '<div class="failure">',
        f"<h3>{_e(event.error_type)}: {_e(event.error_message)}{_e(recorded)}</h3>",
        f"<dl>{items}</dl>",
    ]
    if event.source_snippet:
        parts.append(
            f'<h4>Snippet</h4><pre class="snippet">{_e(event.source_snippet)}</pre>'
        )
    if event.traceback_text:
        parts.append(
            f'<h4>Traceback</h4><pre class="traceback">{_e(event.traceback_text)}</pre>'
        )
    if event.rules_analysis:
        parts.append(
            f'<h4>Diagnosis</h4><pre class="analysis">{_e(event.rules_analysis)}</pre>'
        )
    if event.llm_analysis:
        parts.append(
            f'<h4>LLM analysis</h4><pre class="analysis">{_e(event.llm_analysis)}</pre>'
        )
    parts.append("</div>")
    return "".join(parts)
