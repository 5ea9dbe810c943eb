"""Creating a file in a read-only directory."""

import errno
import os
import tempfile

EXPECT = ("does not exist and could not be created", "mode dr-xr-xr-x")

folder = tempfile.mkdtemp()
os.chmod(folder, 0o555)
path = os.path.join(folder, "new.txt")
if os.geteuid() == 0:  # root may write anyway: raise what open() would
    raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
open(path, "w")  # noqa: SIM115
