"""Rendering a whole clip through a chain frame by frame, with per-frame settings (automation)
or one fixed setting.

``fxgrad render`` and :class:`fxgrad.train.model.TrainedModel` render this way: the clip is cut into
frames of N samples and the chain processes them in order, frame k at its own normalised
parameters, keeping its state from frame to frame.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .plugins import Chain


def frame_count(samples: int, frame_size: int) -> int:
    """Frames of ``frame_size`` that cover ``samples`` (the last one zero-padded)."""
    return int(math.ceil(samples / frame_size))


def render_automation(chain: Chain, audio: np.ndarray, thetas: np.ndarray, frame_size: int) -> np.ndarray:
    """Process ``audio`` (C, samples) through ``chain`` frame by frame, frame k with normalised
    parameters ``thetas[k]``; the chain keeps its state from frame to frame (pass a fresh or
    reset chain). Returns (C, samples) float32."""
    audio = np.asarray(audio, dtype=np.float32)
    channels, samples = audio.shape
    frames = frame_count(samples, frame_size)
    thetas = np.asarray(thetas, dtype=np.float32)
    if thetas.shape != (frames, chain.num_parameters):
        raise ValueError(f"thetas must be shaped ({frames}, {chain.num_parameters}), got {thetas.shape}")
    padded = np.zeros((channels, frames * frame_size), np.float32)
    padded[:, :samples] = audio
    out = np.empty_like(padded)
    for k in range(frames):
        chain.set_learned(np.ascontiguousarray(thetas[k]))
        span = slice(k * frame_size, (k + 1) * frame_size)
        out[:, span] = chain.process(np.ascontiguousarray(padded[:, span]))
    return out[:, :samples]


def render_static(chain: Chain, audio: np.ndarray, theta: np.ndarray, frame_size: int) -> np.ndarray:
    """Process ``audio`` with fixed normalised parameters ``theta`` (P,)."""
    frames = frame_count(np.shape(audio)[-1], frame_size)
    return render_automation(chain, audio, np.tile(np.asarray(theta, np.float32), (frames, 1)), frame_size)
