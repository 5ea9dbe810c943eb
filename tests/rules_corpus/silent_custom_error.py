"""A user-defined exception."""

EXPECT = None


class ImportFailed(Exception):
    pass


raise ImportFailed("batch 7 rejected by the upstream service")
