"""The main example: ValueError raised from IntegrityError."""

import sqlite3

EXPECT = (
    "raised from sqlite3.IntegrityError",
    "UNIQUE constraint on customers.customer_id",
    "the value '1004'",
    "duplicate customer id 1004",
)
MODE = "rich"


def insert(db, rows):
    for row in rows:
        try:
            db.execute(
                "INSERT INTO customers VALUES (?, ?)",
                (int(row["customer_id"]), row["name"]),
            )
        except sqlite3.IntegrityError as exc:
            raise ValueError(f"duplicate customer id {row['customer_id']}") from exc


db = sqlite3.connect(":memory:")
db.execute("CREATE TABLE customers (customer_id INTEGER PRIMARY KEY, name TEXT)")
insert(
    db, [{"customer_id": "1004", "name": "Ada"}, {"customer_id": "1004", "name": "Bob"}]
)
