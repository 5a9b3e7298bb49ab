"""One step through the plugins, the path every phase takes: reset -> render -> frame loss.

Training, pipelined training, validation, the static baseline and the lanes' warm-up after a
resume all go through :class:`FrameStep`; the encoder (or a free parameter vector) only
supplies ``theta``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Iterable, Optional, Tuple

import torch
from torch import nn

from ..config.schema import Config
from ..data.stream import StreamBatch
from ..nn.losses import frame_loss
from ..torch import PluginLayer
from .errors import TrainingError
from .faults import healthy_mean, healthy_samples


@dataclass
class StepResult:
    loss: torch.Tensor
    """The frame loss, differentiable with respect to ``theta`` (SPSA through the plugins)."""
    output: torch.Tensor
    """(M, C, N) what the plugins rendered."""
    healthy_loss: float
    """The loss as the mean over lanes that did not fault (NaN when all did)."""


class FrameStep:
    """Renders a :class:`~fxgrad.data.stream.StreamBatch` through ``layer`` with parameters ``theta``
    (M, P) in [0, 1] and compares it with the batch's target by ``loss_fn`` on ``device``."""

    def __init__(self, layer: PluginLayer, loss_fn: nn.Module, config: Config, device: torch.device):
        self.layer = layer
        self.loss_fn = loss_fn
        self.config = config
        self.device = device

    def render(self, frames: torch.Tensor, theta: torch.Tensor, reset: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Lanes flagged in ``reset`` start a new clip (preset state), then ``frames`` (M, C, N)
        go through the plugins; returns (M, C, N) on ``device``."""
        if reset is not None and bool(reset.any()):
            self.layer.reset_lanes(reset)
        return self.layer(frames.to(self.device), theta)

    def __call__(
        self, batch: StreamBatch, theta: torch.Tensor, where: str, lanes: Optional[torch.Tensor] = None
    ) -> StepResult:
        """The step's loss; ``lanes`` (indices) restricts it to some lanes (validation: those
        still streaming a clip). Faulted lanes count as padding. ``where`` names the step in the
        error a non-finite loss raises."""
        output = self.render(batch.frame, theta, batch.reset)
        target = batch.target.to(self.device)
        valid = healthy_samples(self.layer, batch.valid_samples)
        if lanes is not None:
            output, target, valid = output[lanes.to(output.device)], target[lanes.to(self.device)], valid[lanes]
        loss = frame_loss(self.loss_fn, output, target, valid)
        require_finite_loss(loss, output, target, self.config, where)
        return StepResult(loss, output, healthy_mean(self.layer, loss) if lanes is None else float(loss.detach()))

    def per_lane(
        self, batch: StreamBatch, theta: torch.Tensor, where: str
    ) -> Tuple[torch.Tensor, Dict[int, torch.Tensor]]:
        """Each lane's own frame loss, for lanes still streaming a clip whose plugins did not
        fault (the oracle: every lane optimises its own clip, and a loss like MRSTFT that is not
        a mean over items must not couple them). Returns their sum (differentiable; zero when
        no lane counts) and ``{lane: loss}``."""
        output = self.render(batch.frame, theta, batch.reset)
        target = batch.target.to(self.device)
        lanes = (batch.active & ~self.layer.faulted).nonzero().squeeze(1).tolist()
        valid = batch.valid_samples
        losses = {m: frame_loss(self.loss_fn, output[m : m + 1], target[m : m + 1], valid[m : m + 1]) for m in lanes}
        total = torch.stack(list(losses.values())).sum() if losses else output.sum() * 0.0
        require_finite_loss(total, output, target, self.config, where)
        return total, losses


def spsa_settings(config: Config) -> str:
    """The settings that shape a training step's gradient, for error messages."""
    s, t = config.spsa, config.train
    return (
        f"spsa.eps={s.eps:g}, spsa.estimator={s.estimator}, spsa.strategy={s.strategy}, "
        f"spsa.perturbations={s.perturbations}, spsa.directions={s.directions}, spsa.baseline={s.baseline:g}, "
        f"train.lr={t.lr:g}, train.grad_clip={t.grad_clip}, "
        f"loss.type={config.loss.type}"
    )


def require_finite_loss(
    loss: torch.Tensor, output: torch.Tensor, target: torch.Tensor, config: Config, where: str
) -> None:
    """Raise :class:`TrainingError` before a non-finite loss reaches the gradient, naming the
    loss and the peaks of what it compared (audio is expected within about +-1)."""
    if bool(torch.isfinite(loss)):
        return
    raise TrainingError(
        f"{where}: the loss is {float(loss.detach())} (loss.type={config.loss.type}); the target frames peak at "
        f"{float(target.detach().abs().max()):.3g} and the plugins' output at {float(output.detach().abs().max()):.3g} "
        "(audio is expected within about +-1: check the data); the optimiser step was not applied and nothing was "
        "saved"
    )


def clip_gradients(parameters: Iterable[torch.Tensor], clip: Optional[float], config: Config, what: str) -> float:
    """Clip the gradients' norm to ``clip`` (none: no clipping) and return the norm; a
    non-finite norm raises :class:`TrainingError` before the optimiser can apply it (``what``:
    e.g. "train step 3: the encoder's gradient")."""
    norm = float(torch.nn.utils.clip_grad_norm_(parameters, clip if clip else math.inf))
    if not math.isfinite(norm):
        raise TrainingError(
            f"{what} is {norm} ({spsa_settings(config)}); the optimiser step was not applied and nothing was saved"
        )
    return norm
