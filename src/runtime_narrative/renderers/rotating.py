"""RotatingJsonRenderer: JSON Lines in a file that rotates by size.

When writing a line would take ``path`` past ``max_bytes``, the file becomes
``path.1``, ``path.1`` becomes ``path.2`` and so on up to ``path.N``
(``backup_count``); the oldest is deleted.

Lines are never torn or lost, within a process and across processes: every
write and every rotation happens under an advisory lock (``fcntl.flock``) on
``path + ".lock"``, and a process that finds its file rotated by another
reopens ``path`` before writing. Where ``fcntl`` does not exist (Windows) the
guarantee holds between the threads of one process only.
"""

from __future__ import annotations

import os
import threading
from types import ModuleType
from typing import Optional, Union

from .json import JsonRenderer

try:
    import fcntl as _fcntl

    fcntl: Optional[ModuleType] = _fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["RotatingJsonRenderer"]


class _RotatingFile:
    """The stream JsonRenderer writes to: one locked append per line."""

    def __init__(self, path: str, max_bytes: int, backup_count: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backup_count = backup_count
        self._lock = threading.Lock()
        self._fd: Optional[int] = None
        self._lock_fd: Optional[int] = None
        self._pid = 0

    def write(self, text: str) -> int:
        data = text.encode("utf-8")
        with self._lock:
            self._reopen_after_fork()
            lock_fd = self._lock_file()
            if fcntl is not None:
                fcntl.flock(lock_fd, fcntl.LOCK_EX)
            try:
                fd = self._current_file()
                if self._needs_rotation(fd, len(data)):
                    self._rotate()
                    fd = self._current_file()
                _write_all(fd, data)
            finally:
                if fcntl is not None:
                    fcntl.flock(lock_fd, fcntl.LOCK_UN)
        return len(text)

    def flush(self) -> None:
        """Each line is written with os.write; nothing is buffered here."""

    def close(self) -> None:
        with self._lock:
            for fd in (self._fd, self._lock_fd):
                if fd is not None:
                    os.close(fd)
            self._fd = self._lock_fd = None

    def _reopen_after_fork(self) -> None:
        # A forked child shares the parent's open files, and flock locks
        # belong to the open file: it must lock a file of its own.
        if self._pid != os.getpid():
            self._fd = self._lock_fd = None
            self._pid = os.getpid()

    def _lock_file(self) -> int:
        if self._lock_fd is None:
            self._lock_fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        return self._lock_fd

    def _current_file(self) -> int:
        """The open ``path``, reopened if another process rotated it away."""
        if self._fd is not None:
            try:
                same = os.fstat(self._fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                return self._fd
            os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        return self._fd

    def _needs_rotation(self, fd: int, incoming: int) -> bool:
        if self.max_bytes <= 0:
            return False
        size = os.fstat(fd).st_size
        return size > 0 and size + incoming > self.max_bytes

    def _rotate(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        for number in range(self.backup_count - 1, 0, -1):
            source = f"{self.path}.{number}"
            if os.path.exists(source):
                os.replace(source, f"{self.path}.{number + 1}")
        os.replace(self.path, f"{self.path}.1")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class RotatingJsonRenderer(JsonRenderer):
    """JsonRenderer into ``path``, rotated at ``max_bytes`` to ``path.1``..``path.N``.

    ``max_bytes`` of 0 or less never rotates. ``backup_count`` (at least 1)
    is how many rotated files are kept. A single line longer than
    ``max_bytes`` is written whole, alone in its file.

    Safe with many threads and, where ``fcntl`` exists, with many processes
    writing the same ``path``: each line is one ``write`` under a lock, so no
    line is torn, interleaved or lost across a rotation.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        path: Union[str, os.PathLike[str]],
        max_bytes: int = 10_485_760,
        backup_count: int = 5,
        *,
        sort_keys: bool = False,
    ) -> None:
        if backup_count < 1:
            raise ValueError(
                f"backup_count must be 1 or more, not {backup_count}:"
                " rotating without a backup would drop lines"
            )
        self.path = os.fspath(path)
        self.max_bytes = max_bytes
        self.backup_count = backup_count
        self._file = _RotatingFile(self.path, max_bytes, backup_count)
        super().__init__(self._file, sort_keys=sort_keys)

    def close(self) -> None:
        """Close the file; a later event opens it again."""
        self._file.close()
