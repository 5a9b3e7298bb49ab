"""Checkpoint files: written atomically, read back with checks.

A checkpoint is a ``torch.save``d dict of plain containers and tensors (so it loads with
``weights_only=True``): the model, optimiser, scheduler, step counters, RNG states, the frame
streamers' states, the PluginLayer step and the chain configuration. It is first written to a
temporary file in the same folder, flushed to disk, then renamed over the old one
(``os.replace``), so a crash or Ctrl-C at any moment leaves the previous checkpoint intact.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any, Dict, Union

import numpy as np
import torch

from ._files import atomic_write

FORMAT = "fxgrad-checkpoint"
VERSION = 1

PathLike = Union[str, os.PathLike]


class CheckpointError(ValueError):
    """A file that is not a usable fxgrad checkpoint."""


def save_checkpoint(path: PathLike, state: Dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file, fsync, os.replace)."""
    payload = {"format": FORMAT, "version": VERSION, **state}
    return atomic_write(path, lambda handle: torch.save(payload, handle))


def load_checkpoint(path: PathLike, map_location: Union[str, torch.device] = "cpu") -> Dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; clear errors for a missing,
    truncated or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such checkpoint: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(error).__name__}: {error})") from error
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an fxgrad checkpoint")
    if state.get("version", 0) > VERSION:
        raise CheckpointError(f"{path} has checkpoint version {state['version']}; this fxgrad reads up to {VERSION}")
    return state


def rng_state() -> Dict[str, Any]:
    """This process's random generator states (torch CPU and CUDA, Python, NumPy), in types
    that ``weights_only`` loading accepts."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(position), int(has_gauss), float(cached)],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
