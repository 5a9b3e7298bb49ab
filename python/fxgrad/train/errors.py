"""The two ways a training run ends early: an error that says why, and an interruption."""

from __future__ import annotations

from pathlib import Path
from typing import Optional


class TrainingError(RuntimeError):
    """Training cannot start or continue (the message says why and what to do)."""


class TrainingInterrupted(KeyboardInterrupt):
    """Raised by :meth:`Trainer.fit` after Ctrl-C/SIGTERM, once the checkpoint is written."""

    def __init__(self, message: str, checkpoint: Optional[Path]):
        super().__init__(message)
        self.checkpoint = checkpoint
