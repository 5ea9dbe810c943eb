"""Import customers from a CSV file into SQLite, as a story of three stages.

The CSV under examples/data/ holds a duplicate customer id, so the Insert
Records stage fails: sqlite3 raises IntegrityError on the UNIQUE constraint,
and the import turns it into a ValueError that names the duplicate id. The
console shows the story and the failure block, with the chain
``ValueError ← IntegrityError`` and the built-in diagnosis.

Run it from the repository root::

    python examples/import_customers.py

It exits with status 1, as a failed import should.
"""

from __future__ import annotations

import argparse
import csv
import sqlite3
import sys
from pathlib import Path

from runtime_narrative import ConsoleRenderer, SqliteStoryRenderer, stage, story

HERE = Path(__file__).resolve().parent
REQUIRED_COLUMNS = ("customer_id", "name", "email", "country", "signup_date")

SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (
    customer_id INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    email       TEXT NOT NULL UNIQUE,
    country     TEXT NOT NULL,
    signup_date TEXT NOT NULL
)
"""


def load_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise ValueError(f"{path.name} lacks column(s) {', '.join(missing)}")
        return list(reader)


def validate(rows: list[dict[str, str]]) -> None:
    for number, row in enumerate(rows, start=2):  # line 1 is the header
        if not row["customer_id"].isdigit():
            raise ValueError(f"line {number}: customer_id {row['customer_id']!r}")
        if "@" not in row["email"]:
            raise ValueError(f"line {number}: email {row['email']!r}")


def insert_rows(connection: sqlite3.Connection, rows: list[dict[str, str]]) -> int:
    with connection:  # one transaction: all rows or none
        for row in rows:
            try:
                connection.execute(
                    "INSERT INTO customers VALUES (?, ?, ?, ?, ?)",
                    (
                        int(row["customer_id"]),
                        row["name"],
                        row["email"],
                        row["country"],
                        row["signup_date"],
                    ),
                )
            except sqlite3.IntegrityError as exc:
                raise ValueError(f"duplicate customer id {row['customer_id']}") from exc
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, default=HERE / "data" / "customers.csv")
    parser.add_argument("--db", type=Path, default=Path("customers.db"))
    args = parser.parse_args(argv)

    args.db.unlink(missing_ok=True)  # each run imports into a fresh database
    connection = sqlite3.connect(args.db)
    connection.execute(SCHEMA)
    try:
        with story(
            "Import Customers",
            total_stages=3,
            renderers=[ConsoleRenderer(), SqliteStoryRenderer("runtime_narrative.db")],
        ):
            with stage("Load CSV"):
                rows = load_csv(args.csv)
            with stage("Validate Data"):
                validate(rows)
            with stage("Insert Records"):
                insert_rows(connection, rows)
    except ValueError:
        return 1  # the story has already told what went wrong, and where
    finally:
        connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
