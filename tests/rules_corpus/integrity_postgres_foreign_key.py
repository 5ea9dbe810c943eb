"""The message shape of a PostgreSQL foreign key violation."""

EXPECT = (
    "FOREIGN KEY constraint on orders (orders_customer_id_fkey)",
    "customer_id=77",
)


class IntegrityError(Exception):
    """The DB-API exception a PostgreSQL driver raises."""


raise IntegrityError(
    'insert or update on table "orders" violates foreign key constraint'
    ' "orders_customer_id_fkey"\nDETAIL:  Key (customer_id)=(77) is not present'
    ' in table "customers".'
)
