"""A read-only file opened for writing."""

import errno
import os
import tempfile

EXPECT = ("refused access to the file", "mode -r--r--r--")

path = os.path.join(tempfile.mkdtemp(), "locked.txt")
with open(path, "w") as handle:
    handle.write("x")
os.chmod(path, 0o444)
if os.geteuid() == 0:  # root may write anyway: raise what open() would
    raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
open(path, "w")  # noqa: SIM115
