"""The encoder's weights averaged over the training steps (``train.ema_decay``): what validation
measures, ``best.pt`` holds and ``evaluate``/``apply`` run.

SPSA's gradient is an estimate from a few perturbed renders, so the weights jitter from step to
step about where the loss would take them; an exponential moving average of the weights (Polyak
averaging) removes much of that jitter at no cost in renders. The average is torch's
:class:`~torch.optim.swa_utils.AveragedModel`, buffers included (batch norm's running
statistics are averaged with the weights they belong to).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Dict, Iterator, Optional

from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


class WeightAverage:
    """An exponential moving average of ``encoder``'s weights with ``decay`` per training step
    (0.99: about the last 100 steps; 0: none, and the encoder stands for itself); the first
    :meth:`update` starts it at the encoder's weights of that moment (after pretraining)."""

    def __init__(self, encoder: nn.Module, decay: float):
        self.decay = float(decay)
        self.averaged: Optional[AveragedModel] = None
        if self.decay:
            self.averaged = AveragedModel(encoder, multi_avg_fn=get_ema_multi_avg_fn(self.decay), use_buffers=True)

    @property
    def started(self) -> bool:
        return self.averaged is not None and int(self.averaged.n_averaged) > 0

    def update(self, encoder: nn.Module) -> None:
        """Folds the encoder's weights after an optimiser step into the average."""
        if self.averaged is not None:
            self.averaged.update_parameters(encoder)

    def module(self, encoder: nn.Module) -> nn.Module:
        """The encoder to run for validation and to save as the model: the average once it has
        started, else ``encoder`` itself."""
        return self.averaged.module if self.started else encoder

    @contextmanager
    def evaluating(self, encoder: nn.Module) -> Iterator[nn.Module]:
        """:meth:`module` in eval mode for the ``with`` block (its mode restored after)."""
        module = self.module(encoder)
        was_training = module.training
        module.eval()
        try:
            yield module
        finally:
            module.train(was_training)

    def state(self, encoder: nn.Module) -> Optional[Dict[str, Any]]:
        """The checkpoint's ``averaging`` entry: the raw weights a resumed run goes on from (the
        checkpoint's ``model`` holds the average) and how many steps the average holds; None
        before the average has started."""
        if not self.started:
            return None
        return {"decay": self.decay, "steps": int(self.averaged.n_averaged), "raw_model": encoder.state_dict()}

    def restore(self, encoder: nn.Module, state: Dict[str, Any]) -> None:
        """Puts a checkpoint's weights back: the raw ones into ``encoder`` (the checkpoint's
        ``model`` where it holds no average) and its average into this one (a run that did not
        average starts its average at the next step)."""
        entry = state.get("averaging")
        encoder.load_state_dict(entry["raw_model"] if entry else state["model"])
        if self.averaged is not None and entry and entry["steps"]:
            self.averaged.module.load_state_dict(state["model"])
            self.averaged.n_averaged.fill_(int(entry["steps"]))
