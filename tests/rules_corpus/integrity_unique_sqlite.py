"""Two users with one email break a UNIQUE column."""

import sqlite3

EXPECT = ("UNIQUE constraint on users.email", "INSERT ... ON CONFLICT(email)")

db = sqlite3.connect(":memory:")
db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT UNIQUE)")
db.execute("INSERT INTO users (email) VALUES ('ada@example.com')")
db.execute("INSERT INTO users (email) VALUES ('ada@example.com')")
