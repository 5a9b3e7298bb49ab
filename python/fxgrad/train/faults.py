"""Plugin faults during a run: the reproducer log, and the loss over the lanes that stayed healthy."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import torch

from ..base.files import append_no_follow
from ..data.stream import StreamBatch
from ..torch import PluginLayer
from .files import FAULTS


class FaultLog:
    """Plugin faults of a run: one JSON line each in ``RUN_DIR/faults.jsonl`` (the reproducer:
    the run's ``stage`` and step, the plugin's name and ``identifier``, the kind, the lane, its
    ``clip`` and ``position_samples``, what was rendering (``phase``), the normalised and plain
    values of the learned parameters and the ``pinned`` values) and a one-line note. The file is
    opened without following a link."""

    def __init__(self, folder: Path, note: Callable[[str], None]):
        self.path = folder / FAULTS
        self.note = note
        self.count = 0

    def record(
        self,
        reports: List[Dict[str, Any]],
        phase: str,
        step: int,
        layer: Optional[PluginLayer] = None,
        where: Optional[Dict[int, Dict[str, Any]]] = None,
    ) -> None:
        """Logs ``reports`` (from ``layer.take_faults()``) of ``phase`` at ``step``; ``layer``
        adds the chain's pinned values and plugin identifiers, ``where`` (lane -> ``clip``,
        ``position_samples``, ``position_s``) what each lane was streaming."""
        if not reports:
            return
        pinned = {name: value for name, value in layer.chain.pinned} if layer is not None else {}
        with append_no_follow(self.path) as handle:
            for report in reports:
                # "stage": the run's (train, validation, ...); the report's "phase": what was rendering.
                handle.write(json.dumps({"stage": phase, "train_step": step, **_context(report, layer, pinned, where)}))
                handle.write("\n")
        for report in reports:
            self.count += 1
            values = ", ".join(f"{name}={value:.6g}" for name, value in report["plain"].items())
            where_text = (
                f"{report['plugin'] or 'a plugin'}: {report['kind']} ({report['detail']}) in lane {report['lane']}, "
                f"{report['phase']}"
                if report["lane"] >= 0
                else f"a worker: {report['kind']} ({report['detail']}) between renders"
            )
            self.note(
                f"fault {self.count} at {phase} step {step}: {where_text}; lanes {report['lanes']} restarted"
                + (f"; settings {values}" if values else "")
                + f"  [{self.path}]"
            )

    def after_step(
        self,
        layer: PluginLayer,
        phase: str,
        step: int,
        streamer=None,
        batch: Optional[StreamBatch] = None,
        dataset=None,
    ) -> int:
        """Logs the step's faults (with the clip of ``dataset``, by default the streamer's, and
        position of ``batch``'s lanes) and moves the lanes they restarted on to new clips of
        ``streamer`` (validation passes none: its lanes go on with their clip from the preset
        state); returns how many lanes faulted."""
        faulted = layer.faulted
        dataset = dataset if dataset is not None else getattr(streamer, "dataset", None)
        where = lane_positions(batch, dataset) if batch is not None else None
        self.record(layer.take_faults(), phase, step, layer, where)
        if not bool(faulted.any()):
            return 0
        if streamer is not None:
            streamer.retire(faulted.nonzero().squeeze(1).tolist())
        return int(faulted.sum())


def lane_positions(batch: StreamBatch, dataset=None) -> Dict[int, Dict[str, Any]]:
    """Lane -> the clip it streams (its input file's name when ``dataset`` is given, else its
    index) and the position of ``batch``'s frame in it, for lanes that carry a clip."""
    frame = batch.frame.shape[-1]
    out = {}
    for lane, (clip, index) in enumerate(zip(batch.clip_index.tolist(), batch.frame_index.tolist())):
        if clip < 0:
            continue
        name = str(dataset.pairs[clip][0]) if dataset is not None else clip
        out[lane] = {"clip": name, "position_samples": index * frame}
        if dataset is not None:
            out[lane]["position_s"] = index * frame / dataset.sample_rate
    return out


def _context(
    report: Dict[str, Any], layer: Optional[PluginLayer], pinned: Dict[str, float], where: Optional[Dict[int, Dict]]
) -> Dict[str, Any]:
    """A report with what reproduces it: the plugin's identifier, the pinned values, the clip."""
    out = dict(report)
    if layer is not None:
        plugins = layer.chain.plugins
        index = report.get("plugin_index", -1)
        if 0 <= index < len(plugins):
            out["identifier"] = getattr(plugins[index], "_source", plugins[index].identifier)
        out["pinned"] = pinned
    if where and report.get("lane", -1) in where:
        out.update(where[report["lane"]])
    return out


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
