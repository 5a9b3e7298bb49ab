"""Every seed a run derives from ``config.seed``, with the reason for each offset.

A run draws randomness in four places: torch/NumPy/``random`` (the encoder's initial weights),
the SPSA perturbations of each rack, and the clip order of each frame stream. Each gets its own
seed so that no two draw the same sequence (two racks with one seed would perturb in step, two
streams with one seed would deal the same clips), and each depends only on ``config.seed`` and
the process's rank: results are the same whatever the thread or worker count.
"""

from __future__ import annotations

import random

import numpy as np
import torch

#: Racks' seeds are ``config.seed * LAYER_STRIDE + slot``: a prime larger than any slot, so the
#: racks of different config seeds never share a seed.
LAYER_STRIDE = 1_000_003
#: The static baseline's rack slot: apart from the training racks' slots (0 .. ranks - 1) for any
#: rank count below it, so a baseline fitted beside a training run perturbs differently.
STATIC_LAYER_SLOT = 99
#: Stream seeds step by these primes per rank and per stream (0: training, 1: pretraining), so
#: that ranks and the pretraining stream deal different clip orders.
RANK_STREAM_STRIDE = 7919
STREAM_STRIDE = 104_729
#: The static baseline's stream: another clip order than the training stream of the same seed.
STATIC_STREAM_OFFSET = 31
#: The validation rack only renders (no perturbation is ever drawn): its seed is a constant.
VALIDATION_LAYER = 0


def seed_everything(seed: int) -> None:
    """torch, ``random`` and NumPy's global generators (the encoder's initial weights)."""
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


def training_layer(seed: int, rank: int) -> int:
    """The SPSA seed of one rank's training rack."""
    return seed * LAYER_STRIDE + rank


def static_layer(seed: int) -> int:
    """The SPSA seed of :func:`fxgrad.train.fit_static`'s rack."""
    return seed * LAYER_STRIDE + STATIC_LAYER_SLOT


def training_stream(seed: int, rank: int, stream: int) -> int:
    """The clip-order seed of one rank's stream (0: training, 1: pretraining)."""
    return seed + RANK_STREAM_STRIDE * rank + STREAM_STRIDE * stream


def static_stream(seed: int) -> int:
    """The clip-order seed of :func:`fxgrad.train.fit_static`'s stream."""
    return seed + STATIC_STREAM_OFFSET
