"""A row that breaks a CHECK constraint."""

import sqlite3

EXPECT = ("CHECK constraint", "price_positive")

db = sqlite3.connect(":memory:")
db.execute(
    "CREATE TABLE products (price REAL, CONSTRAINT price_positive CHECK (price > 0))"
)
db.execute("INSERT INTO products VALUES (-1)")
