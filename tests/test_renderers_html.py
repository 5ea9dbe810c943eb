from __future__ import annotations

import importlib.util
import os
import re
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path
from types import ModuleType

import pytest

from runtime_narrative import HtmlReportRenderer, LLMAnalysisReady, stage, story

HOSTILE = '<script>alert(1)</script><img src=x onerror="alert(2)">'
SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


class _Elements(HTMLParser):
    """Collects the tags and attribute names a browser would build."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes.extend(name for name, _ in attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(text: str) -> _Elements:
    parser = _Elements()
    parser.feed(text)
    return parser


def run_failing(renderer: HtmlReportRenderer, name: str = "ETL Run") -> str:
    with pytest.raises(ValueError), story(name, renderers=[renderer]) as runtime:
        with stage("Load"), stage("Parse"):
            pass
        with stage("Load"), story("DB: INSERT"), stage("Execute"):
            pass
        with stage("Insert Records"):
            raise ValueError("duplicate customer id 7") from KeyError("7")
    return str(runtime.story_id)


def test_a_failed_story_shows_header_chart_timeline_and_failure(tmp_path: Path) -> None:
    path = tmp_path / "report.html"

    run_failing(HtmlReportRenderer(path))

    text = path.read_text(encoding="utf-8")
    page = parse(text)
    body = "".join(page.text)
    assert "ETL Run" in body
    assert "failed — ValueError" in body
    assert text.count('<g class="bar ') == 4
    assert '<g class="bar failed">' in text
    assert "sub-story: DB: INSERT" in body
    assert '<div class="tl-row failed">' in text
    assert "duplicate customer id 7" in body
    assert "test_renderers_html.py" in body  # the location
    assert "Traceback (most recent call last)" in body
    assert "ValueError ← KeyError" in body
    assert "Diagnosis" in body


def test_the_page_loads_nothing_from_outside(tmp_path: Path) -> None:
    path = tmp_path / "report.html"

    run_failing(HtmlReportRenderer(path))

    page = parse(path.read_text(encoding="utf-8"))
    assert "script" not in page.tags
    assert "link" not in page.tags
    assert not {"src", "href"} & set(page.attributes)


def test_hostile_text_is_shown_as_text(tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    renderer = HtmlReportRenderer(path)

    with pytest.raises(RuntimeError), story(HOSTILE, renderers=[renderer]) as runtime:
        with stage(HOSTILE):
            raise RuntimeError(HOSTILE)
    renderer.handle(
        LLMAnalysisReady(
            story_id=runtime.story_id,
            story_name=HOSTILE,
            stage_name=HOSTILE,
            llm_analysis=HOSTILE,
            timestamp=datetime.now(timezone.utc),
        )
    )

    text = path.read_text(encoding="utf-8")
    page = parse(text)
    assert "script" not in page.tags
    assert "img" not in page.tags
    assert "onerror" not in page.attributes
    assert HOSTILE in "".join(page.text)


def test_one_renderer_reports_each_story_alone(tmp_path: Path) -> None:
    renderer = HtmlReportRenderer(tmp_path / "{story_name}-{story_id}.html")

    first_id = run_failing(renderer, "First")
    with story("Second", renderers=[renderer]), stage("Only stage"):
        pass

    [first] = tmp_path.glob(f"First-{first_id}.html")
    [second] = tmp_path.glob("Second-*.html")
    second_text = second.read_text(encoding="utf-8")
    assert "Insert Records" in first.read_text(encoding="utf-8")
    assert "Insert Records" not in second_text
    assert "duplicate customer id" not in second_text
    assert "succeeded" in second_text
    assert second_text.count('<g class="bar ') == 1
    assert len(list(tmp_path.glob("*.html"))) == 2  # no file for the sub-story


def test_without_a_placeholder_each_story_replaces_the_report(tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    renderer = HtmlReportRenderer(path)

    run_failing(renderer, "First")
    with story("Second", renderers=[renderer]):
        pass

    assert "<h1>Second</h1>" in path.read_text(encoding="utf-8")
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


@pytest.mark.allow_internal_errors
def test_a_report_that_cannot_be_written_is_logged(
    tmp_path: Path, internal_errors: list[object]
) -> None:
    renderer = HtmlReportRenderer(tmp_path / "no-such-dir" / "r.html")

    with story("Unwritable", renderers=[renderer]):
        pass

    assert len(internal_errors) == 1
    assert "no-such-dir" in internal_errors[0].getMessage()  # type: ignore[attr-defined]


# -- in a real browser -----------------------------------------------------------


def _screenshot_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "screenshot_html_report", SCRIPTS / "screenshot_html_report.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.browser
def test_chromium_shows_the_chart_and_the_failure(tmp_path: Path) -> None:
    script = _screenshot_module()
    if script.find_chromium() is None:
        if os.environ.get("RUNTIME_NARRATIVE_REQUIRE_SERVERS") == "1":
            pytest.fail("chromium is not installed")
        pytest.skip("chromium is not installed")
    path = tmp_path / "report.html"
    run_failing(HtmlReportRenderer(path))

    dom = script.run_chromium(path, dump_dom=True)
    shot = tmp_path / "report.png"
    script.run_chromium(path, screenshot=shot)

    assert re.search(r'<svg class="duration-chart"[^>]*>', dom)
    assert dom.count("<rect ") == 4
    assert 'id="failures"' in dom
    assert "duplicate customer id 7" in dom
    assert shot.stat().st_size > 10_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
