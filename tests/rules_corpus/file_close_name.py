"""A file name with a typo, next to the right one."""

import os
import tempfile

EXPECT = ("Its directory", "entries with a close name: customers.csv")

base = tempfile.mkdtemp()
with open(os.path.join(base, "customers.csv"), "w") as handle:
    handle.write("id\n")
open(os.path.join(base, "customer.csv"))  # noqa: SIM115
