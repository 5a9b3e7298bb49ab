"""Identifiability: how well a loss determines each parameter of a setting it was minimised at,
and the warning for parameters the reference barely constrains (``fxgrad match`` and
``fxgrad fit-static``)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence

import numpy as np

from ..base.files import atomic_write_bytes

IDENTIFIABILITY_STEP = 0.1
"""Normalised move of one parameter at a time around the solution."""
RESIDUAL_FLOOR = 0.001
"""The yardstick of a loss rise is the loss left at the solution, or this share of what
matching gained where the match is (nearly) exact."""
BARELY_CONSTRAINED = 0.1
"""A parameter whose move raises the loss by less than this share of the yardstick is barely
constrained (a warning); by less than the yardstick itself, weakly determined."""


def identifiability(
    evaluate: Callable[[np.ndarray], np.ndarray],
    theta: np.ndarray,
    start: np.ndarray,
    names: Sequence[str],
    step: float = IDENTIFIABILITY_STEP,
) -> Dict[str, Any]:
    """How well the loss determines each parameter at the solution ``theta``.

    Renders the solution, the starting setting and the solution with one parameter at a time
    moved by ``±step`` (normalised; one side only at a bound): 2P + 2 settings in one call of
    ``evaluate``. Per parameter, ``rise`` is the mean loss increase of its moves and
    ``contrast`` that rise over the yardstick: the loss left at the solution (what the chain
    cannot match), or 0.1 % of the gain (loss at ``start`` - loss at ``theta``) where that is
    larger. ``range`` is the move that would raise the loss by the yardstick, from a quadratic
    fit (capped at 1). ``status``: ``barely constrained`` (contrast < 0.1: the reference hardly
    tells this setting; a warning), ``weak`` (< 1), ``well determined``, or ``not at a minimum``
    when a move lowers the loss.

    Returns ``{"loss": at theta, "start_loss": at start, "step", "yardstick", "parameters": [...]}``.
    """
    theta = np.asarray(theta, np.float32)
    probes, owners = [theta, np.asarray(start, np.float32)], []
    for i in range(len(theta)):
        for sign in (1.0, -1.0):
            moved = theta.copy()
            moved[i] = np.clip(theta[i] + sign * step, 0.0, 1.0)
            if moved[i] != theta[i]:
                probes.append(moved)
                owners.append(i)
    losses = np.asarray(evaluate(np.stack(probes)), np.float64)
    best, start_loss = float(losses[0]), float(losses[1])
    yardstick = max(best, RESIDUAL_FLOOR * max(start_loss - best, 0.0), 1e-12)
    rows = []
    for i, name in enumerate(names):
        rises = [losses[2 + j] - best for j, owner in enumerate(owners) if owner == i]
        rise = float(np.mean(rises)) if rises else 0.0
        contrast = rise / yardstick
        if rises and min(rises) < -1e-9 * max(1.0, abs(best)):
            status = "not at a minimum"
        elif contrast < BARELY_CONSTRAINED:
            status = "barely constrained"
        elif contrast < 1.0:
            status = "weak"
        else:
            status = "well determined"
        width = 1.0 if contrast <= 0 else float(min(1.0, step / math.sqrt(contrast)))
        rows.append(
            {
                "parameter": name,
                "normalised": float(theta[i]),
                "rise": rise,
                "contrast": contrast,
                "range": width,
                "status": status,
            }
        )
    return {"loss": best, "start_loss": start_loss, "step": float(step), "yardstick": yardstick, "parameters": rows}


def fit_static_identifiability(config, result: Dict[str, Any], clips: int = 4) -> Dict[str, Any]:
    """:func:`identifiability` of a ``fit-static`` result under the config's own loss, on the
    first ``clips`` training clips rendered whole from a fresh state; the report is added to
    the result's JSON file (``identifiability``) and returned."""
    import torch

    from ..host.batch import render_batch
    from ..train import build_chain, build_loss, prepare_data

    chain = build_chain(config)
    dataset = prepare_data(config, progress=False).train
    loss_fn = build_loss(config)
    pairs = [dataset[i] for i in range(min(clips, len(dataset)))]

    def evaluate(thetas: np.ndarray) -> np.ndarray:
        total = np.zeros(len(thetas))
        with torch.no_grad():
            for audio, target in pairs:
                rendered = torch.from_numpy(render_batch(chain, thetas, np.ascontiguousarray(audio.numpy())))
                total += [float(loss_fn(out[None], target[None])) for out in rendered]
        return total / len(pairs)

    report = identifiability(
        evaluate,
        np.asarray(result["normalised"], np.float32),
        np.asarray(result["defaults"], np.float32),
        result["parameters"],
    )
    path = Path(result["path"])
    saved = json.loads(path.read_text())
    saved["identifiability"] = report
    atomic_write_bytes(path, json.dumps(saved, indent=2).encode())
    return report


def identifiability_table(
    report: Dict[str, Any], plain: Optional[Sequence[float]] = None, units: Optional[Sequence[str]] = None
) -> str:
    """The report as a text table, then one warning line per barely constrained parameter."""
    from ..base.text import format_table

    rows, warnings = [], []
    for k, row in enumerate(report["parameters"]):
        value = "" if plain is None else f"{plain[k]:.6g}{(' ' + units[k]) if units and units[k] else ''}"
        rows.append(
            [
                row["parameter"],
                value,
                f"{row['normalised']:.4f}",
                f"{row['rise']:.4g}",
                f"{row['contrast']:.3g}",
                f"±{row['range']:.3f}",
                row["status"],
            ]
        )
        if row["status"] == "not at a minimum":
            warnings.append(
                f"warning: {row['parameter']} is not at a minimum: a move of ±{report['step']:g} lowers the loss; "
                "the search stopped short of it: search longer (a larger budget) or from another --seed"
            )
        elif row["status"] == "barely constrained":
            warnings.append(
                f"warning: {row['parameter']} is barely constrained: moving it by ±{report['step']:g} raises "
                f"the loss by {row['rise']:.3g}, {row['contrast']:.2g}x what is left of it "
                f"({report['yardstick']:.3g}); its value is a guess"
            )
    text = format_table(
        ["parameter", "value", "normalised", f"loss rise ±{report['step']:g}", "rise/residual", "±range", ""],
        rows,
        align="lrrrrrl",
    )
    return "\n".join([text, *warnings])
