"""The message shape of a PostgreSQL NOT NULL violation."""

EXPECT = ("orders.customer_id is NOT NULL",)


class IntegrityError(Exception):
    """The DB-API exception a PostgreSQL driver raises."""


raise IntegrityError(
    'null value in column "customer_id" of relation "orders"'
    " violates not-null constraint"
)
