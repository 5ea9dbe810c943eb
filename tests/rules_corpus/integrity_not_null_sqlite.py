"""A NULL into a NOT NULL column."""

import sqlite3

EXPECT = ("items.name is NOT NULL", "Supply a value for items.name")

db = sqlite3.connect(":memory:")
db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
db.execute("INSERT INTO items (name) VALUES (?)", (None,))
