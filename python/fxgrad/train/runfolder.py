"""The run folder as a trainer starts in it: what it refuses, the stale temporaries it clears, and
what a start that fails leaves behind (nothing of its own)."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from ..base.files import is_temporary_of
from .errors import TrainingError
from .files import BEST, CHECKPOINT, CONFIG, FAULTS, LOCK, LOG, PLUGIN_LOG

#: Every file a trainer writes in its run folder.
WRITTEN = (CHECKPOINT, BEST, LOCK, LOG, FAULTS, PLUGIN_LOG, CONFIG)
#: The files written atomically, through a temporary ``.NAME.tmp-PID`` beside them.
ATOMIC = (CHECKPOINT, BEST, LOG, CONFIG)
TENSORBOARD = "tensorboard"


class RunFolder:
    """``path`` as it was before a trainer started in it. :meth:`check` refuses what the
    trainer must not write through or over; :meth:`clear_stale` removes temporaries that an
    interrupted write left; :meth:`discard` removes what a start that failed created."""

    def __init__(self, path: Path):
        self.path = path
        self.made = not path.exists()
        self.before = set(os.listdir(path)) if path.is_dir() else set()

    def check(self, resume: bool, overwrite: bool) -> None:
        """Raise :class:`TrainingError` for a symbolic link where the trainer writes (it would
        write another file through it), a checkpoint that is not a file, or a folder holding a
        run that neither ``resume`` nor ``overwrite`` allows to touch."""
        links = [name for name in WRITTEN if (self.path / name).is_symlink()]
        if links:
            raise TrainingError(
                f"{self.path}: {', '.join(links)} {'is a symbolic link' if len(links) == 1 else 'are symbolic links'}; "
                "fxgrad never writes through a link in a run folder (it would overwrite the file it points at): "
                "remove it, or train into another output_dir"
            )
        checkpoint = self.path / CHECKPOINT
        if checkpoint.exists() and not checkpoint.is_file():
            kind = "folder" if checkpoint.is_dir() else stat.filemode(checkpoint.stat().st_mode)
            raise TrainingError(f"{checkpoint} is not a checkpoint file but a {kind}: move it away first")
        held = [name for name in (CHECKPOINT, BEST) if (self.path / name).is_file()]
        if held and not resume and not overwrite:
            raise TrainingError(
                f"{self.path} already holds {' and '.join(held)}; pass --resume to continue it or --overwrite to "
                "start over"
            )
        if resume and not overwrite and held == [BEST]:
            raise TrainingError(
                f"{self.path} holds {BEST} but no {CHECKPOINT} to resume; pass --overwrite to start over (replacing "
                f"{BEST}), or train into another output_dir"
            )

    def clear_stale(self) -> None:
        """Remove ``.NAME.tmp-PID`` files that a write killed midway left (the caller holds the
        folder's lock, so no other trainer is writing them). Links are removed, not followed."""
        for entry in os.listdir(self.path):
            if any(is_temporary_of(entry, name) for name in ATOMIC):
                (self.path / entry).unlink(missing_ok=True)

    def overwrite(self) -> None:
        """``--overwrite``: the previous run's checkpoints and log go."""
        for name in (CHECKPOINT, BEST, LOG):
            (self.path / name).unlink(missing_ok=True)

    def discard(self) -> None:
        """After a start that failed: remove the files it created, and the folder when it made
        it and nothing else is left (generated data stays)."""
        if not self.path.is_dir():
            return
        for name in WRITTEN:
            if name not in self.before:
                (self.path / name).unlink(missing_ok=True)
        board = self.path / TENSORBOARD
        if TENSORBOARD not in self.before and board.is_dir() and not board.is_symlink():
            shutil.rmtree(board, ignore_errors=True)
        if self.made:
            try:
                self.path.rmdir()
            except OSError:
                pass  # not empty: something else was written there
