"""An IntegrityError whose message the rules do not know."""

EXPECT = None


class IntegrityError(Exception):
    pass


raise IntegrityError("constraint 17 violated in segment 4")
