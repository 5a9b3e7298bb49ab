"""The time budget of one ``fxgrad train`` call (``train.max_seconds``): pretraining gets its
share (``train.pretrain_share``), training the rest, less the time its closing validation will
take, so that a run that stops on time has validated its last steps and written ``best.pt``."""

from __future__ import annotations

import time
from typing import Any, Optional


class TimeBudget:
    """The deadlines of a ``fit`` call's phases, counted from :meth:`restart`; none without
    ``train.max_seconds``. ``trainer`` is the :class:`~fxgrad.train.trainer.Trainer` it serves
    (not imported: the trainer imports this module)."""

    def __init__(self, trainer: Any):
        self.trainer = trainer
        self.phase = "pretrain"  # the phase running: "pretrain" or "train"
        self.started = time.monotonic()
        self.validation_s: Optional[float] = None  # how long the last validation took
        self.mean_step_s = 0.0  # the mean training step of this call (PhaseLoop sets it)

    def restart(self) -> None:
        """A ``fit`` call begins: the clock starts again, at pretraining."""
        self.started, self.phase = time.monotonic(), "pretrain"

    def late(self) -> bool:
        """Whether the current phase has used its time: pretraining its share of the budget,
        training the whole budget less :meth:`reserve`."""
        t = self.trainer.config.train
        if t.max_seconds is None:
            return False
        if self.phase == "pretrain":
            deadline = self.started + t.pretrain_share * t.max_seconds
        else:
            deadline = self.started + t.max_seconds - self.reserve()
        return time.monotonic() >= deadline

    def reserve(self) -> float:
        """Seconds kept for the validation that ends a timed run: the last validation's, or before
        the first an estimate (its batches at half a training step each)."""
        trainer = self.trainer
        valid = trainer.splits.valid
        if valid is None:
            return 0.0
        if self.validation_s is not None:
            return self.validation_s
        frame = trainer.config.frame_size
        frames = sum(-(-valid.num_samples(i) // frame) for i in range(len(valid)))
        frames = min(frames, trainer.config.train.valid_frames or frames)
        return 0.5 * frames / min(trainer.config.spsa.lanes, len(valid)) * self.mean_step_s
