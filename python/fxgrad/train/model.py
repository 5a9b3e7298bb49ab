"""A trained model: a checkpoint's encoder and chain, made ready to predict a clip's per-frame
settings and render it with them.

A trained model renders a clip as in training, but on one fresh lane: the clip is cut into
frames of N samples; each frame's context window (W samples centred on it, zeros outside the
clip, :func:`fxgrad.data.stream.contexts`) goes through the encoder, and the chain processes the frames
in order with each frame's predicted parameters (:func:`fxgrad.host.render.render_automation`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
import torch

from ..base.device import usable_device
from ..base.files import PathLike
from ..data.stream import contexts
from ..host.plugins import Chain
from ..host.render import frame_count, render_automation
from ..nn.encoder import Encoder
from ..nn.smoothing import Smoothing
from .checkpoint import load_checkpoint


@dataclass
class TrainedModel:
    """A checkpoint made usable: the encoder (eval mode), the chain configuration and the
    per-parameter mask of a progressive run (masked parameters are held at ``defaults``)."""

    encoder: Encoder
    chain_config: Dict[str, Any]
    names: List[str]
    defaults: np.ndarray
    active: np.ndarray
    frame_size: int
    sample_rate: int
    channels: int
    checkpoint: Dict[str, Any]
    device: torch.device

    @classmethod
    def from_checkpoint(cls, path: PathLike, device: Union[str, torch.device] = "cpu") -> "TrainedModel":
        device = usable_device(device) if isinstance(device, str) else device
        state = load_checkpoint(path)
        encoder = Encoder(**state["encoder"])
        encoder.load_state_dict(state["model"])
        encoder.to(device).eval()
        chain = state["chain"]
        return cls(
            encoder=encoder,
            chain_config=chain,
            names=list(state["parameters"]),
            defaults=np.asarray(state["defaults"], np.float32),
            active=np.asarray(state["active"], bool),
            frame_size=int(state["encoder"]["frame_size"]),
            sample_rate=int(round(float(chain["sample_rate"]))),
            channels=int(chain["channels"]),
            checkpoint=state,
            device=device,
        )

    def new_chain(self) -> Chain:
        """A fresh chain (new plugin instances) as the model was trained with."""
        return Chain.from_config(self.chain_config)

    def plugin_names(self) -> List[str]:
        """The chain's plugins by the last part of their identifier (file, URI or name)."""
        names = []
        for entry in self.chain_config["plugins"]:
            text = entry["plugin"] if isinstance(entry, dict) else str(entry)
            names.append(text.rstrip("/").rsplit("/", 1)[-1])
        return names

    @torch.no_grad()
    def predict(self, audio: np.ndarray, batch: int = 64, smoothing: Optional[Smoothing] = None) -> np.ndarray:
        """(frames, P) normalised parameters for a (C, samples) clip, smoothed over time with
        ``smoothing`` (:mod:`fxgrad.nn.smoothing`) when given."""
        signal = torch.as_tensor(np.asarray(audio, np.float32))
        frames = frame_count(signal.shape[-1], self.frame_size)
        features = self.encoder.stream_features()  # as the training stream cut its inputs
        clip = features.of_clip(signal) if features is not None else None
        out = []
        for start in range(0, frames, batch):
            stop = min(frames, start + batch)
            if features is not None:
                windows = features.windows(clip, start, stop)
            else:
                windows = contexts(signal, self.frame_size, self.encoder.context, start, stop)
            out.append(self.encoder(windows.to(self.device)).cpu())
        return self.smoothed(torch.cat(out).numpy(), smoothing)

    def smoothed(self, thetas: np.ndarray, smoothing: Optional[Smoothing]) -> np.ndarray:
        """(frames, P) normalised parameters smoothed over time with ``smoothing`` (none: as
        they are), the parameters a progressive run had not released held at ``defaults``.
        Each parameter is smoothed on its own, so smoothing :meth:`predict`'s output equals
        predicting with the smoothing."""
        if smoothing is not None:
            thetas = smoothing.apply(thetas, self.frame_size, self.sample_rate)
        return np.where(self.active[None, :], thetas, self.defaults[None, :]).astype(np.float32)

    def render(
        self, audio: np.ndarray, chain: Optional[Chain] = None, smoothing: Optional[Smoothing] = None
    ) -> Tuple[np.ndarray, np.ndarray]:
        """``(output (C, samples), thetas (frames, P))`` for a (C, samples) clip."""
        thetas = self.predict(audio, smoothing=smoothing)
        chain = chain if chain is not None else self.new_chain()
        return render_automation(chain, audio, thetas, self.frame_size), thetas
