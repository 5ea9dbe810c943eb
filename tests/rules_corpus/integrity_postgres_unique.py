"""The message shape of a PostgreSQL driver's unique violation."""

EXPECT = ("UNIQUE constraint on email", "(the value ada@example.com)")


class IntegrityError(Exception):
    """The DB-API exception a PostgreSQL driver raises."""


class UniqueViolation(IntegrityError):
    pass


raise UniqueViolation(
    'duplicate key value violates unique constraint "users_email_key"\n'
    "DETAIL:  Key (email)=(ada@example.com) already exists."
)
