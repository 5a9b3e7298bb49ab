"""Training through real plugins: the trainer, its run folder, and the static baseline.

:class:`Trainer` trains an encoder to drive a chain of real plugins frame by frame (the DeepAFx
loop, :mod:`fxgrad.train.trainer`); :func:`fit_static` fits the best single setting with the
same SPSA optimiser (:mod:`fxgrad.train.static`). The other modules hold one concern each:
``build`` (data, chain, loss and plugin layers from the config), ``step`` (reset -> render ->
frame loss, the one path every phase takes), ``loop`` (a phase's steps, log, bar and stops),
``pipelined``, ``resume`` (checkpoint state and the lanes' warm-up), ``distributed``,
``runlog``, ``faults``, ``signals``, ``seeds`` and ``files`` (the run folder's file names);
``checkpoint`` (the checkpoint file) and ``model`` (a trained model, ready to predict and render).

Layers, lowest first (each imports only from the layers before it): base, host, torch, nn, io,
config, data, **train**, match, evaluation, cli.
"""

from .build import (
    Splits,
    build_chain,
    build_loss,
    prepare_data,
    render_layer,
    spsa_layer,
)
from .errors import TrainingError, TrainingInterrupted
from .files import BEST, CHECKPOINT, FAULTS, LOCK, LOG, PLUGIN_LOG, STATIC
from .runlog import read_log
from .static import fit_static, load_static
from .trainer import Trainer

__all__ = [
    "BEST",
    "CHECKPOINT",
    "FAULTS",
    "LOCK",
    "LOG",
    "PLUGIN_LOG",
    "STATIC",
    "Splits",
    "Trainer",
    "TrainingError",
    "TrainingInterrupted",
    "build_chain",
    "build_loss",
    "fit_static",
    "load_static",
    "prepare_data",
    "read_log",
    "render_layer",
    "spsa_layer",
]
