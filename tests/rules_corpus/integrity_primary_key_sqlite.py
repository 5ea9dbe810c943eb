"""An INTEGER PRIMARY KEY inserted twice."""

import sqlite3

EXPECT = ("UNIQUE constraint on orders.id",)

db = sqlite3.connect(":memory:")
db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, total REAL)")
db.executemany("INSERT INTO orders VALUES (?, ?)", [(1, 9.5), (2, 3.0), (1, 4.0)])
