"""Files written so that readers see the old version or the new one, never a partial one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO, Callable, Union

PathLike = Union[str, "os.PathLike[str]"]


def atomic_write(path: PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(handle)`` on a temporary file in the same folder, flush it to disk and rename
    it over ``path`` (``os.replace``): a crash at any moment leaves the previous file intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(temporary, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError:
        pass
    return path


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """:func:`atomic_write` of ``data``."""
    return atomic_write(path, lambda handle: handle.write(data))


class FolderLocked(RuntimeError):
    """Another process holds the folder's lock."""


class FolderLock:
    """An advisory lock on ``folder`` (``fcntl.flock`` on ``folder/name``, a file that holds the
    owner's PID while locked), so that two processes never write one folder at once.

    Held until :meth:`release`, or until the process ends however it ends (the kernel drops
    the lock with the file), so no stale lock outlives a crash. Raises :class:`FolderLocked`
    naming the holder's PID when another open file holds it (another process, or another lock
    object of this one)."""

    def __init__(self, folder: PathLike, name: str):
        import fcntl

        self.path = Path(folder) / name
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.path, "a+")
        try:
            fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._handle.seek(0)
            holder = self._handle.read().strip() or "unknown"
            self._handle.close()
            raise FolderLocked(
                f"{self.path.parent} is in use by another run (PID {holder}, lock file {self.path})"
            ) from None
        self._handle.seek(0)
        self._handle.truncate()
        self._handle.write(f"{os.getpid()}\n")
        self._handle.flush()

    def release(self) -> None:
        if self._handle.closed:
            return
        self._handle.truncate(0)  # the PID names a holder only while the lock is held
        self._handle.close()  # closing the file drops the lock
