"""A child row whose parent does not exist."""

import sqlite3

EXPECT = ("FOREIGN KEY constraint", "Insert the parent rows first")

db = sqlite3.connect(":memory:")
db.execute("PRAGMA foreign_keys = ON")
db.execute("CREATE TABLE authors (id INTEGER PRIMARY KEY)")
db.execute(
    "CREATE TABLE books (id INTEGER PRIMARY KEY, author_id INT REFERENCES authors(id))"
)
db.execute("INSERT INTO books (author_id) VALUES (42)")
