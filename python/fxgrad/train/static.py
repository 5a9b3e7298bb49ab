"""The best static setting: one parameter vector for a whole training set (``fxgrad fit-static``).

:func:`fit_static` fits it with the trainer's own SPSA optimiser; :func:`load_static` reads it
back for ``train.start_from``, ``fxgrad evaluate --static`` and the oracle.
"""

from __future__ import annotations

import collections
import json
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from torch import nn

from ..base.files import PathLike, atomic_write_bytes
from ..config.schema import Config
from ..data.stream import FrameStreamer, PairedAudioDataset
from ..io.params import parameter_units, plain_values
from . import seeds
from .build import (
    build_chain,
    build_loss,
    checked_layer,
    plugin_threads,
    prepare_data,
    spsa_layer,
)
from .distributed import World
from .faults import FaultLog
from .files import PLUGIN_LOG, STATIC
from .step import FrameStep, clip_gradients


def load_static(path: PathLike, names: List[str]) -> np.ndarray:
    """The normalised setting of a :func:`fit_static` JSON, checked to be for ``names``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such static settings file: {path} (make one with `fxgrad fit-static CONFIG`)")
    content = json.loads(path.read_text())
    if list(content.get("parameters", [])) != list(names):
        raise ValueError(f"{path} holds settings for {content.get('parameters')}, the model drives {names}")
    return np.asarray(content["normalised"], np.float32)


def logit(p: torch.Tensor) -> torch.Tensor:
    """The inverse of the sigmoid, with ``p`` kept off 0 and 1 (a start Adam can move from)."""
    p = p.clamp(0.01, 0.99)
    return torch.log(p) - torch.log1p(-p)


def fit_static(
    config: Config, progress: bool = True, output: Optional[Path] = None, dataset: Optional[PairedAudioDataset] = None
) -> Dict[str, Any]:
    """The best single parameter setting for the whole training set, found by the trainer's own
    SPSA optimiser (same lanes, stream and loss; Adam on logits with a cosine schedule, from
    the chain's defaults). Writes ``RUN_DIR/static.json`` (or ``output``) and returns its content,
    with ``loss_history``: the mean loss of every ``fit_static.log_every`` steps.
    ``dataset`` replaces the config's training data (``fxgrad match --method spsa``)."""
    from tqdm import tqdm

    seeds.seed_everything(config.seed)
    chain = build_chain(config)
    lanes = config.fit_static.lanes or config.spsa.lanes
    run_dir = Path(output).parent if output else config.run_dir
    threads = plugin_threads(config)
    layer = checked_layer(  # before any data is generated
        run_dir,
        # Independent directions per lane whatever spsa.shared says: every lane holds the same
        # setting, so lanes that shared one direction would measure one derivative between them.
        lambda: spsa_layer(
            chain, config, lanes, threads, seeds.static_layer(config.seed), run_dir / PLUGIN_LOG, shared=False
        ),
    )
    train_set = dataset if dataset is not None else prepare_data(config, World(), progress).train
    streamer = FrameStreamer(
        train_set,
        lanes,
        config.frame_size,
        config.frame_size,
        seed=seeds.static_stream(config.seed),
        min_clip_frames=config.data.min_clip_frames,
    )
    defaults = torch.tensor(np.asarray(chain.get_learned(), np.float32))
    started = time.perf_counter()
    logits, history, loss = _optimise(
        config,
        FrameStep(layer, build_loss(config), config, torch.device("cpu")),
        streamer,
        logit(defaults),
        FaultLog(run_dir, tqdm.write),
        progress,
    )
    theta = torch.sigmoid(logits).detach().numpy().astype(np.float32)
    result = {
        "parameters": list(chain.learned),
        "units": parameter_units(chain),
        "normalised": [float(v) for v in theta],
        "plain": [float(v) for v in plain_values(chain, theta[None])[0]],
        "defaults": [float(v) for v in defaults],
        "loss": loss,
        "loss_history": history,
        "steps": config.fit_static.steps,
        "seconds": time.perf_counter() - started,
        "chain": config.chain_config(),
    }
    path = Path(output) if output else config.run_dir / STATIC
    atomic_write_bytes(path, json.dumps(result, indent=2).encode())
    result["path"] = path
    return result


def _optimise(
    config: Config, step: FrameStep, streamer: FrameStreamer, start: torch.Tensor, faults: FaultLog, progress: bool
) -> tuple:
    """Adam with a cosine schedule on the logits of one setting shared by every lane; returns
    the logits, the loss history and the mean loss over the last tenth of the steps."""
    from tqdm import tqdm

    section = config.fit_static
    logits = nn.Parameter(start)
    optimizer = torch.optim.Adam([logits], lr=section.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, section.steps, eta_min=section.lr * 0.02)
    recent: collections.deque = collections.deque(maxlen=max(10, section.steps // 10))
    history: List[Dict[str, float]] = []
    window: List[float] = []
    smoothed = None
    bar = tqdm(range(section.steps), desc="fit-static", unit="step", dynamic_ncols=True, disable=not progress)
    for index in bar:
        batch = next(streamer)
        result = step(batch, torch.sigmoid(logits).expand(streamer.lanes, -1), f"fit-static step {index + 1}")
        optimizer.zero_grad(set_to_none=True)
        result.loss.backward()
        faults.after_step(step.layer, "fit-static", index + 1, streamer, batch)
        clip_gradients([logits], config.train.grad_clip, config, f"fit-static step {index + 1}: the gradient")
        optimizer.step()
        schedule.step()
        value = float(result.loss.detach())
        recent.append(value)
        window.append(value)
        if len(window) >= section.log_every or index + 1 == section.steps:
            history.append({"step": index + 1, "loss": float(np.mean(window))})
            window = []
        smoothed = value if smoothed is None else 0.95 * smoothed + 0.05 * value
        bar.set_postfix_str(f"loss {smoothed:.4g}", refresh=False)
    return logits, history, float(np.mean(recent))
