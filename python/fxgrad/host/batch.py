"""Batched renders: many settings (or many clips) through one chain at once, on native threads.

:func:`render_batch` is what a population-based optimiser (CMA-ES), a data generator or a knob
sweep needs: K renders, each from a fresh DSP state, in parallel with the GIL released. The
plugin instances that render belong to a renderer cached per chain and thread count, so calls
after the first create none.
"""

from __future__ import annotations

import weakref
from typing import Dict, Optional

import numpy as np

from .. import _native

_renderers: "weakref.WeakKeyDictionary[_native.Chain, Dict[int, _native.BatchRenderer]]" = weakref.WeakKeyDictionary()


def renderer(chain: _native.Chain, threads: Optional[int] = None) -> _native.BatchRenderer:
    """The cached :class:`fxgrad._native.BatchRenderer` of ``chain`` for ``threads`` threads
    (``None`` or 0: all cores), created on first use."""
    count = int(threads or 0)
    if count < 0:
        raise ValueError(f"threads must be >= 1 (or None for all cores), got {threads}")
    if not isinstance(chain, _native.Chain):
        raise TypeError(f"render_batch needs an fxgrad.Chain, got {type(chain).__name__}")
    by_threads = _renderers.setdefault(chain, {})
    if count not in by_threads:
        by_threads[count] = _native.BatchRenderer(chain, count)
    return by_threads[count]


def render_batch(chain: _native.Chain, theta, audio: np.ndarray, threads: Optional[int] = None) -> np.ndarray:
    """Render K settings of ``chain``'s learned parameters, or K clips, in parallel.

    Args:
        chain: an :class:`fxgrad.Chain`; its pinned values, other parameters and plugin state
            at the time of the call are the starting point of every render (the chain itself
            does not render and keeps its own DSP state).
        theta: (K, P) normalised values in [0, 1] of the chain's P learned parameters, or (P,)
            for one setting shared by K clips.
        audio: float32 (C, N), one clip shared by the K settings, or (K, C, N), one clip per
            setting; C = ``chain.channels``, N samples at ``chain.sample_rate``.
        threads: native worker threads (None: all cores).

    Returns:
        float32 (K, C, N). Render k is bit for bit what a fresh copy of the chain gives::

            c = chain.clone(); c.set_learned(theta[k]); c.process(audio[k])

        whatever the thread count. Raises ValueError for out-of-range theta, shapes that do not
        fit, or NaN/Inf audio; TypeError for audio that is not float32.
    """
    theta = np.ascontiguousarray(theta, dtype=np.float32)
    return renderer(chain, threads).render(theta, audio)


def render_stats(chain: _native.Chain, threads: Optional[int] = None) -> Dict[str, float]:
    """``dsp_seconds`` (inside the plugins, summed over threads), ``wall_seconds`` and
    ``renders`` of :func:`render_batch` calls on ``chain`` so far."""
    return dict(renderer(chain, threads).stats())
