"""A composite UNIQUE key."""

import sqlite3

EXPECT = ("UNIQUE constraint on stock.shop, stock.sku", "duplicate shop values")

db = sqlite3.connect(":memory:")
db.execute("CREATE TABLE stock (shop TEXT, sku TEXT, qty INT, UNIQUE (shop, sku))")
db.executemany("INSERT INTO stock VALUES (?, ?, ?)", [("a", "x", 1), ("a", "x", 2)])
