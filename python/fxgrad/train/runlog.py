"""The run log: ``log.csv`` rows (and TensorBoard scalars) of steps and epochs."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from ..base.files import append_no_follow, atomic_write_bytes
from .files import LOG


class RunLog:
    """``log.csv`` (one row per logged step and per epoch) and TensorBoard scalars when the
    ``tensorboard`` package is installed. On resume, rows past the checkpoint are dropped."""

    FIELDS = [
        "phase",
        "step",
        "epoch",
        "loss",
        "valid_loss",
        "lr",
        "grad_norm",
        "step_s",
        "plugins_s",
        "dsp_s",
        "elapsed_s",
        "faults",
    ]

    def __init__(self, folder: Path, keep: Optional[Callable[[Dict[str, str]], bool]] = None, tensorboard: bool = True):
        self.path = folder / LOG
        folder.mkdir(parents=True, exist_ok=True)
        rows = []
        if keep is not None and self.path.is_file():
            with open(self.path, newline="") as handle:
                rows = [row for row in csv.DictReader(handle) if keep(row)]
        atomic_write_bytes(self.path, _csv_text(self.FIELDS, rows).encode())
        self._handle = append_no_follow(self.path, newline="")
        self._writer = csv.DictWriter(self._handle, self.FIELDS)
        self._board = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._board = SummaryWriter(str(folder / "tensorboard"))
            except Exception:  # tensorboard not installed: CSV only
                self._board = None

    def row(self, **values: Any) -> None:
        self._writer.writerow({k: _format(values.get(k)) for k in self.FIELDS})
        self._handle.flush()
        if self._board is not None:
            step = int(values["step"])
            for key in ("loss", "valid_loss", "lr", "grad_norm", "step_s", "plugins_s", "dsp_s", "faults"):
                if values.get(key) is not None:
                    self._board.add_scalar(f"{values['phase']}/{key}", float(values[key]), step)

    def steps(self, window: Sequence[Dict[str, Any]], epoch: int, elapsed_s: float) -> None:
        """One row for a window of step records: their means (loss over the steps that had a
        healthy lane), the last step's number and learning rate, the faults summed."""
        if not window:
            return
        last = window[-1]
        self.row(
            phase=last["phase"],
            step=last["step"],
            epoch=epoch,
            loss=mean_or_nan([r["loss"] for r in window]),
            lr=last["lr"],
            grad_norm=float(np.mean([r["grad_norm"] for r in window])),
            step_s=float(np.mean([r["step_s"] for r in window])),
            plugins_s=float(np.mean([r["plugins_s"] for r in window])),
            dsp_s=float(np.mean([r.get("dsp_s", 0.0) for r in window])),
            elapsed_s=elapsed_s,
            faults=sum(r.get("faults", 0) for r in window),
        )

    def close(self) -> None:
        self._handle.close()
        if self._board is not None:
            self._board.close()


def mean_or_nan(values: Sequence[float]) -> float:
    """Mean of the finite values (steps whose every lane faulted log NaN); NaN if there are none."""
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def read_log(path: Path) -> List[Dict[str, str]]:
    """The rows of a ``log.csv`` as dicts of strings."""
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _csv_text(fields: Sequence[str], rows: Sequence[Dict[str, str]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
