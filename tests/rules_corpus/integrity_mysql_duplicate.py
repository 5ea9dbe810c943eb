"""The message shape of a MySQL duplicate entry."""

EXPECT = ("UNIQUE constraint on key PRIMARY", "(the value 1004)")


class IntegrityError(Exception):
    """The DB-API exception a MySQL driver raises."""


raise IntegrityError(1062, "Duplicate entry '1004' for key 'PRIMARY'")
