"""The learned parameters of a chain as tables: their plain values and units, and the per-frame
parameter CSV that ``fxgrad apply``, ``fxgrad match`` and ``fxgrad data pairs`` write and
``fxgrad render --params`` and ``fxgrad evaluate`` read."""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING, List, Optional, Sequence

import numpy as np

from ..base.files import PathLike, atomic_write_bytes

if TYPE_CHECKING:  # the CSV reader runs without the native host
    from ..host.plugins import Chain


def plain_values(chain: Chain, thetas: np.ndarray) -> np.ndarray:
    """(frames, P) plain-unit values of the learned parameters for normalised ``thetas``."""
    plugins = chain.plugins
    where = []
    for name in chain.learned:
        index, _, parameter = name.partition(".")
        where.append((plugins[int(index)], parameter))
    previous = np.asarray(chain.get_learned(), np.float32)
    out = np.empty(np.shape(thetas), dtype=np.float64)
    try:  # only parameter values change (no audio runs), and they are put back
        for k, theta in enumerate(np.asarray(thetas, dtype=np.float32)):
            chain.set_learned(np.ascontiguousarray(theta))
            out[k] = [plugin.get(parameter) for plugin, parameter in where]
    finally:
        chain.set_learned(previous)
    return out


def parameter_units(chain: Chain) -> List[str]:
    """The unit of each learned parameter ("dB", "ms", or "" where the plugin declares none)."""
    units = []
    for name in chain.learned:
        index, _, parameter = name.partition(".")
        plugin = chain.plugins[int(index)]
        info = plugin.parameters[plugin.parameter_index(parameter)]
        units.append(info.unit)
    return units


def write_parameter_csv(path: PathLike, chain: Chain, thetas: np.ndarray, frame_size: int) -> None:
    """One row per frame: ``frame``, ``time_s`` (the frame's start), then each learned
    parameter in plain units (``NAME``) and normalised (``NAME [norm]``); written atomically."""
    thetas = np.asarray(thetas, dtype=np.float32)
    plain = plain_values(chain, thetas)
    names = list(chain.learned)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["frame", "time_s", *names, *[f"{n} [norm]" for n in names]])
    rate = float(chain.sample_rate)
    for k in range(len(thetas)):
        writer.writerow(
            [k, f"{k * frame_size / rate:.6f}", *[f"{v:.6g}" for v in plain[k]], *[f"{v:.6f}" for v in thetas[k]]]
        )
    atomic_write_bytes(path, buffer.getvalue().encode())


def read_parameter_csv(path: PathLike, names: Optional[Sequence[str]] = None) -> np.ndarray:
    """(frames, P) normalised values from a parameter CSV written by :func:`write_parameter_csv`:
    the columns of ``names``, or every normalised column when None."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise ValueError(f"{path} holds no rows")
    columns = list(rows[0].keys())
    if names is None:
        names = [c[: -len(" [norm]")] for c in columns if c.endswith(" [norm]")]
    missing = [n for n in names if f"{n} [norm]" not in columns]
    if missing:
        raise ValueError(f"{path} has no normalised column for {missing} (columns: {columns})")
    return np.array([[float(row[f"{n} [norm]"]) for n in names] for row in rows], dtype=np.float32)
