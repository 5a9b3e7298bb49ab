"""Checkpoint files: written atomically, read back with checks.

A checkpoint is a ``torch.save``d dict of plain containers and tensors (so it loads with
``weights_only=True``): the model, optimiser, scheduler, step counters, RNG states, the frame
streamers' states, the PluginLayer step and the chain configuration. It is first written to a
temporary file in the same folder, flushed to disk, then renamed over the old one
(``os.replace``), so a crash or Ctrl-C at any moment leaves the previous checkpoint intact.

The dict carries ``"checksum"``, the SHA-256 of everything else in it (every tensor's dtype,
shape and bytes, every other value's type and text, in order), which :func:`load_checkpoint`
verifies: a file changed after it was written (a flipped bit in a weight) is refused, not used.
"""

from __future__ import annotations

import hashlib
import pickle
import random
from pathlib import Path
from typing import Any, Dict, Union

import numpy as np
import torch

from ..base.files import PathLike, atomic_write

FORMAT = "fxgrad-checkpoint"
VERSION = 2  # 2: with "checksum"; version 1 files (written before checksums) load unverified


class CheckpointError(ValueError):
    """A file that is not a usable fxgrad checkpoint."""


def content_checksum(state: Dict[str, Any]) -> str:
    """SHA-256 (hex) of a checkpoint dict's content, leaving out its ``"checksum"`` entry."""
    digest = hashlib.sha256()
    _feed(digest, {key: value for key, value in state.items() if key != "checksum"})
    return digest.hexdigest()


def _feed(digest: "hashlib._Hash", value: Any) -> None:
    """Every value with its type and, for containers, its length, so that no two different
    contents hash the same stream."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"T{tensor.dtype}{tuple(value.shape)}:".encode())
        digest.update(tensor.view(torch.uint8).numpy())
    elif isinstance(value, dict):
        digest.update(f"D{len(value)}:".encode())
        for key, item in value.items():
            _feed(digest, key)
            _feed(digest, item)
    elif isinstance(value, (list, tuple)):
        digest.update(f"{'L' if isinstance(value, list) else 'U'}{len(value)}:".encode())
        for item in value:
            _feed(digest, item)
    elif isinstance(value, (bytes, str)):
        data = value if isinstance(value, bytes) else value.encode()
        digest.update(f"{'B' if isinstance(value, bytes) else 'S'}{len(data)}:".encode())
        digest.update(data)
    else:  # None, bool, int, float (repr is exact)
        digest.update(f"{type(value).__name__}:{value!r};".encode())


def save_checkpoint(path: PathLike, state: Dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file, fsync, os.replace), with its checksum."""
    payload = {"format": FORMAT, "version": VERSION, **state}
    payload["checksum"] = content_checksum(payload)
    return atomic_write(path, lambda handle: torch.save(payload, handle))


def load_checkpoint(path: PathLike, map_location: Union[str, torch.device] = "cpu") -> Dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; clear errors for a missing,
    truncated, foreign or damaged file (its checksum is verified)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such checkpoint: {path}")
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic != b"PK\x03\x04":  # torch.save's zip archive; anything else is not a checkpoint
        raise CheckpointError(f"{path} is not an fxgrad checkpoint (not a file torch.save wrote)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"{path} is not an fxgrad checkpoint: it holds Python objects other than tensors and plain containers, "
            "which fxgrad never writes and never unpickles (that could run code)"
        ) from None
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(error).__name__}: {first})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an fxgrad checkpoint")
    if state.get("version", 0) > VERSION:
        raise CheckpointError(f"{path} has checkpoint version {state['version']}; this fxgrad reads up to {VERSION}")
    if state.get("version", 0) >= 2 and state.get("checksum") != content_checksum(state):
        raise CheckpointError(
            f"{path} is damaged: its content does not match the checksum fxgrad wrote with it "
            "(the file changed after it was saved); use another checkpoint"
        )
    return state


def rng_state() -> Dict[str, Any]:
    """This process's random generator states (torch CPU and CUDA, Python, NumPy), in types
    that ``weights_only`` loading accepts."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": [
            kind,
            torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            int(position),
            int(has_gauss),
            float(cached),
        ],
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
