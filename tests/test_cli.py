from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from _pg import postgres_schema  # noqa: F401 - a fixture
from runtime_narrative import stage, story
from runtime_narrative.cli import main
from runtime_narrative.renderers.sqlite import SqliteStoryRenderer


def record(db: Path, name: str, fail: bool = True) -> str:
    renderer = SqliteStoryRenderer(db)
    try:
        with story(name, renderers=[renderer]) as runtime:
            with stage("Load CSV"), stage("Parse"):
                pass
            with stage("Insert Records"):
                if fail:
                    raise ValueError(f"duplicate in {name}")
    except ValueError:
        pass
    renderer.close()
    return str(runtime.story_id)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "stories.db"
    record(path, "Nightly ETL")
    record(path, "Import Customers")
    record(path, "Import Customers", fail=False)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_failures_lists_newest_first(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run(capsys, "failures", "--db", str(db))

    assert status == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["WHEN", "(UTC)", "STORY"]
    assert "Import Customers" in lines[1]
    assert "Nightly ETL" in lines[2]
    assert len(lines) == 3


def test_failures_filters_by_pattern_as_parameters(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run(
        capsys, "failures", "--db", str(db), "--story", "nightly", "--json"
    )
    _, like, _ = run(
        capsys, "failures", "--db", str(db), "--story", "Im%Cust_mers", "--json"
    )
    _, hostile, _ = run(
        capsys, "failures", "--db", str(db), "--story", "' OR 1=1 --", "--json"
    )

    assert status == 0
    assert [row["story_name"] for row in json.loads(out)] == ["Nightly ETL"]
    assert [row["story_name"] for row in json.loads(like)] == ["Import Customers"]
    assert json.loads(hostile) == []


def test_failures_last_and_stage(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "failures", "--db", str(db), "--last", "1", "--json")
    _, none, err = run(capsys, "failures", "--db", str(db), "--stage", "Parse")

    assert len(json.loads(out)) == 1
    assert none == ""
    assert "no failures recorded" in err


def test_story_by_short_id_shows_tree_failure_and_diagnosis(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "one.db"
    story_id = record(path, "Nightly ETL")

    status, out, _ = run(capsys, "story", story_id[:6], "--db", str(path))

    assert status == 0
    assert "Nightly ETL" in out
    assert "✔ Load CSV" in out
    assert "\n    ✔ Parse" in out  # nested one level deeper
    assert "✘ Insert Records" in out
    assert "Failure at: Insert Records" in out
    assert "ValueError: duplicate in Nightly ETL" in out
    assert "Traceback (most recent call last)" in out
    assert "\x1b[" not in out  # not a terminal: no colour


def test_an_ambiguous_prefix_lists_the_candidates(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with sqlite3.connect(db) as connection:
        ids = [row[0] for row in connection.execute("SELECT story_id FROM stories")]
        connection.execute("UPDATE stories SET story_id = 'abc' || story_id")

    status, out, err = run(capsys, "story", "abc", "--db", str(db))

    assert status == 1
    assert out == ""
    assert err.count("\n") == 1
    assert "ambiguous" in err
    assert all(f"abc{i}"[:12] in err for i in ids)


def test_db_comes_from_the_environment(
    db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNTIME_NARRATIVE_DB", str(db))

    status, out, _ = run(capsys, "failures", "--json")

    assert status == 0
    assert len(json.loads(out)) == 2


def test_no_color_is_honoured(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "one.db"
    story_id = record(path, "Coloured")
    monkeypatch.setenv("FORCE_COLOR", "1")
    _, coloured, _ = run(capsys, "story", story_id, "--db", str(path))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.delenv("FORCE_COLOR")

    _, plain, _ = run(capsys, "story", story_id, "--db", str(path))

    assert "\x1b[" in coloured
    assert "\x1b[" not in plain


def test_stats_counts_rates_and_flags_a_slow_latest_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "stats.db"
    record(path, "Job")
    for _ in range(4):
        record(path, "Job", fail=False)
    with sqlite3.connect(path) as connection:
        connection.execute(
            "UPDATE stages SET duration_seconds = 0.01 WHERE stage_name = 'Load CSV'"
        )
        connection.execute(
            "UPDATE stages SET duration_seconds = 5.0 WHERE stage_name = 'Load CSV'"
            " AND story_id = (SELECT story_id FROM stories ORDER BY started_at DESC"
            " LIMIT 1)"
        )

    status, out, _ = run(capsys, "stats", "--db", str(path), "--since", "1h", "--json")
    _, table, _ = run(capsys, "stats", "--db", str(path))

    assert status == 0
    rows = {(r["story"], r["stage"]): r for r in json.loads(out)}
    assert rows[("Job", None)]["runs"] == 5
    assert rows[("Job", None)]["failure_rate"] == pytest.approx(0.2)
    assert rows[("Job", "Insert Records")]["failures"] == 1
    assert rows[("Job", "Load CSV")]["slower_than_usual"] is True
    assert rows[("Job", "Load CSV")]["max_seconds"] == 5.0
    assert rows[("Job", "Parse")]["slower_than_usual"] is False
    assert "latest 5.000s vs usual 0.010s" in table


def test_report_writes_the_html_of_a_stored_story(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run(capsys, "failures", "--db", str(db), "--json", "--story", "Nightly")
    story_id = json.loads(out)[0]["story_id"]
    target = tmp_path / "report.html"

    status, _, _ = run(
        capsys, "report", story_id[:8], "--db", str(db), "-o", str(target)
    )

    text = target.read_text(encoding="utf-8")
    assert status == 0
    assert "<h1>Nightly ETL</h1>" in text
    assert '<g class="bar failed">' in text
    assert "duplicate in Nightly ETL" in text


# -- every bad input: one line on stderr, a non-zero status ---------------------


def _assert_one_line_error(status: int, out: str, err: str, *expected: str) -> None:
    assert status != 0
    assert out == ""
    assert err.count("\n") == 1, err
    assert err.startswith("runtime-narrative: error: ")
    assert "Traceback" not in err
    for text in expected:
        assert text in err


def test_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.db"

    result = run(capsys, "failures", "--db", str(missing))

    _assert_one_line_error(*result, "no story database", "nope.db")
    assert not missing.exists()


def test_an_empty_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")

    _assert_one_line_error(*run(capsys, "failures", "--db", str(empty)), "is empty")


def test_a_file_that_is_not_sqlite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "junk.db"
    junk.write_text("hello, this is not a database\n" * 100)

    result = run(capsys, "story", "abc", "--db", str(junk))

    _assert_one_line_error(*result, "is not a SQLite database")


def test_a_sqlite_file_of_another_program(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE customers (id INTEGER)")

    _assert_one_line_error(*run(capsys, "failures", "--db", str(other)), "no runtime")


def test_an_unknown_schema_version(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE schema_version SET version = 42")

    result = run(capsys, "failures", "--db", str(db))

    _assert_one_line_error(*result, "schema version 42", "upgrade")


def test_an_unknown_id(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _assert_one_line_error(*run(capsys, "story", "zzzz", "--db", str(db)), "no story")
    _assert_one_line_error(
        *run(capsys, "report", "zzzz", "--db", str(db), "-o", "x.html"), "no story"
    )


def test_bad_arguments(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _assert_one_line_error(*run(capsys, "failures", "--last", "0", "--db", str(db)))
    _assert_one_line_error(*run(capsys, "stats", "--since", "soon", "--db", str(db)))
    _assert_one_line_error(*run(capsys, "frobnicate"))


def test_an_unreachable_postgresql_url(capsys: pytest.CaptureFixture[str]) -> None:
    # Port 9 on the loopback interface: nothing listens there.
    url = "postgresql://someone:s3cret@127.0.0.1:9/stories"

    result = run(capsys, "failures", "--db", url)

    _assert_one_line_error(*result, "cannot connect to PostgreSQL", "127.0.0.1:9")
    assert "s3cret" not in result[2]


def test_the_cli_reads_postgresql(
    postgres_schema: tuple[str, str],  # noqa: F811 - the fixture imported above
    capsys: pytest.CaptureFixture[str],
) -> None:
    from runtime_narrative.renderers.postgres import PostgresStoryRenderer

    url, schema = postgres_schema
    renderer = PostgresStoryRenderer(url, schema=schema)
    with pytest.raises(ValueError), story("PG Story", renderers=[renderer]) as runtime:
        with stage("Remote"):
            raise ValueError("from the fleet")
    renderer.close()
    target = f"{url}?options=-csearch_path%3D{schema}"

    _, listing, _ = run(capsys, "failures", "--db", target, "--json")
    status, out, _ = run(capsys, "story", runtime.story_id[:6], "--db", target)

    assert [row["story_name"] for row in json.loads(listing)] == ["PG Story"]
    assert status == 0
    assert "✘ Remote" in out
    assert "ValueError: from the fleet" in out


def test_a_story_failed_by_its_status_is_listed_with_its_outcome(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from runtime_narrative.story import http_outcome

    path = tmp_path / "stories.db"
    record(path, "Nightly ETL")
    renderer = SqliteStoryRenderer(path)
    with story("Checkout", renderers=[renderer]) as parent:
        with stage("Call Payments"):
            with story("POST /pay", renderers=[renderer]) as child:
                child.set_outcome(http_outcome(502))
                child.mark_failed("HTTP 502")
    renderer.close()

    status, out, _ = run(capsys, "failures", "--db", str(path))
    _, listing, _ = run(capsys, "failures", "--db", str(path), "--json")
    _, shown, _ = run(capsys, "story", parent.story_id[:8], "--db", str(path))

    assert status == 0
    lines = out.splitlines()
    assert len(lines) == 3
    assert "POST /pay" in lines[1]
    assert "502 Bad Gateway" in lines[1]
    assert "Nightly ETL" in lines[2]
    rows = json.loads(listing)
    assert rows[0]["story_name"] == "POST /pay"
    assert rows[0]["error_message"] == "502 Bad Gateway"
    [sub_line] = [line for line in shown.splitlines() if "sub-story" in line]
    assert "POST /pay" in sub_line
    assert "502 Bad Gateway" in sub_line
