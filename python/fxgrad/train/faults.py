"""Plugin faults during a run: the reproducer log, and the loss over the lanes that stayed healthy."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable, Dict, List

import torch

from ..torch import PluginLayer
from .files import FAULTS


class FaultLog:
    """Plugin faults of a run: one JSON line each in ``RUN_DIR/faults.jsonl`` (the reproducer:
    plugin, kind, lane, step, normalised and plain parameter values) and a one-line note."""

    def __init__(self, folder: Path, note: Callable[[str], None]):
        self.path = folder / FAULTS
        self.note = note
        self.count = 0

    def record(self, reports: List[Dict[str, Any]], phase: str, step: int) -> None:
        if not reports:
            return
        with open(self.path, "a") as handle:
            for report in reports:
                handle.write(json.dumps({"phase": phase, "train_step": step, **report}) + "\n")
        for report in reports:
            self.count += 1
            values = ", ".join(f"{name}={value:.6g}" for name, value in report["plain"].items())
            where = (
                f"{report['plugin'] or 'a plugin'}: {report['kind']} ({report['detail']}) in lane {report['lane']}, "
                f"{report['phase']}"
                if report["lane"] >= 0
                else f"a worker: {report['kind']} ({report['detail']}) between renders"
            )
            self.note(
                f"fault {self.count} at step {step}: {where}; lanes {report['lanes']} restarted"
                + (f"; settings {values}" if values else "")
                + f"  [{self.path}]"
            )

    def after_step(self, layer: PluginLayer, phase: str, step: int, streamer) -> int:
        """Logs the step's faults and moves the lanes they restarted on to new clips; returns
        how many lanes faulted."""
        faulted = layer.faulted
        self.record(layer.take_faults(), phase, step)
        if not bool(faulted.any()):
            return 0
        streamer.retire(faulted.nonzero().squeeze(1).tolist())
        return int(faulted.sum())


def healthy_samples(layer: PluginLayer, valid: torch.Tensor) -> torch.Tensor:
    """``valid`` samples with lanes whose plugins faulted in this forward left out of the loss."""
    faulted = layer.faulted
    return valid.masked_fill(faulted, 0) if bool(faulted.any()) else valid


def healthy_mean(layer: PluginLayer, loss: torch.Tensor) -> float:
    """The step's loss as the mean over the lanes that did not fault in its forward (the loss
    itself counts their zeroed frames as zero); NaN when every lane faulted."""
    faulted = layer.faulted
    healthy = len(faulted) - int(faulted.sum())
    return float(loss.detach()) * len(faulted) / healthy if healthy else math.nan
