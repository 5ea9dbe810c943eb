"""A path whose directory does not exist."""

import os
import tempfile

EXPECT = ("There is no file or directory at", "The nearest existing directory is")

base = tempfile.mkdtemp()
open(os.path.join(base, "reports", "2024", "summary.csv"))  # noqa: SIM115
