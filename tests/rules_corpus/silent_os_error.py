"""An OSError the rules do not cover."""

import errno
import os

EXPECT = None

raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
