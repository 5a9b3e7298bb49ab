"""Files written so that readers see the old version or the new one, never a partial one, and
never through a symbolic link planted where fxgrad writes."""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path
from typing import BinaryIO, Callable, TextIO, Union

PathLike = Union[str, "os.PathLike[str]"]


def temporary_name(name: str) -> str:
    """The name :func:`atomic_write` gives its temporary file for ``name`` in this process."""
    return f".{name}.tmp-{os.getpid()}"


def is_temporary_of(entry: str, name: str) -> bool:
    """Whether ``entry`` is a temporary file :func:`atomic_write` made for ``name`` (any process)."""
    return re.fullmatch(rf"\.{re.escape(name)}\.tmp-\d+", entry) is not None


def open_no_follow(path: PathLike, flags: int, mode: int = 0o666) -> int:
    """``os.open(path, flags | O_NOFOLLOW | O_CLOEXEC)``; a symbolic link at ``path`` raises
    ``OSError`` (ELOOP) saying so, instead of being followed to whatever it points at."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise OSError(
                errno.ELOOP, "it is a symbolic link, which fxgrad does not write through", str(path)
            ) from None
        raise


def append_no_follow(path: PathLike, newline: Union[str, None] = None) -> TextIO:
    """``path`` opened for appending text (created if missing), never through a link."""
    return os.fdopen(open_no_follow(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT), "a", newline=newline)


def atomic_write(path: PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(handle)`` on a temporary file in the same folder, flush it to disk and rename
    it over ``path`` (``os.replace``): a crash at any moment leaves the previous file intact. The
    temporary file is created exclusively (a file or link already of that name is removed
    first, never followed), and the rename replaces a link at ``path`` rather than its target."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(temporary_name(path.name))
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        try:
            fd = open_no_follow(temporary, flags)
        except FileExistsError:  # a stale one of a process with this PID, or a planted link
            temporary.unlink()
            fd = open_no_follow(temporary, flags)
        with os.fdopen(fd, "wb") as handle:
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
        # Never through a link: truncating the lock file must not truncate what a link names.
        self._handle = os.fdopen(open_no_follow(self.path, os.O_RDWR | os.O_CREAT), "r+")
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
