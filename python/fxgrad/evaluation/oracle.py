"""The chain's own ceiling on each clip: its best static setting and its best per-frame automation.

A model drives the chain from the input audio alone; the oracle looks at the target too. For every
clip (no encoder, no generalisation) it finds:

- ``oracle static``: the one setting that brings this clip closest to its target, by CMA-ES on the
  whole clip's frame loss (``cma`` package; up to :data:`CMA_MAX_PARAMETERS` parameters) or by
  the trainer's SPSA through the rack (``static="spsa"``, and beyond that many parameters);
- ``oracle per-frame``: an automation of the clip, started from its static setting and optimised
  directly by SPSA through the same rack the trainer uses: lanes = clips, each lane streamed its
  clip's frames in order from a reset (one frame per rack step, as the trainer does), the config's
  training loss on each frame (zero-padded ends masked), Adam on per-clip logits at control points
  (frames between two blend them linearly), a cosine learning rate over ``passes`` passes over
  every clip; coarse to fine, the points' spacing halved stage by stage from about 1.6 s down to
  ``resolution_ms``. A pass renders each clip continuously with the values it then updates, so
  its loss is the loss of a whole trajectory; each clip keeps its best pass of all stages.

Both are then rendered through fresh plugins and scored like ``fxgrad evaluate`` (MFCC cosine
distance, MRSTFT error, loudness error), with the cost in seconds, rack steps and frame renders.
The model's share of the reachable improvement is ``(best static - model) / (best static -
oracle per-frame)`` per metric (:func:`reachable_share`); see ``docs/oracle.md``.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
import torch
from torch import nn

from ..base.files import PathLike, atomic_write_bytes
from ..base.folders import split_folders
from ..config.schema import Config
from ..data.stream import FrameStreamer, PairedAudioDataset, contexts
from ..host.render import render_automation
from ..io.params import plain_values, read_parameter_csv
from ..nn.losses import frame_loss
from ..train import build_chain, build_loss, prepare_data, spsa_layer
from ..train.build import plugin_threads
from ..train.static import load_static
from ..train.step import FrameStep
from .evaluate import METRICS, metrics

SYSTEMS = ("oracle static", "oracle per-frame")
STATIC_METHODS = ("auto", "cma", "spsa")
#: The oracle's gradient whatever the training estimator: two-sided differences with each lane's
#: own directions, the most accurate SPSA estimate per step, since the oracle seeks each clip's
#: optimum (a one-sided difference carries an O(eps) bias that a training run averages away).
ORACLE_SPSA = {"estimator": "two-sided", "shared": False}
#: ``static="auto"`` uses CMA-ES for 2 to this many parameters: it needs no gradient and finds
#: the optimum of a few parameters reliably, but its evaluations grow with the dimension.
CMA_MAX_PARAMETERS = 8
#: Settings per parameter screened for CMA-ES's starting point.
CMA_SCREEN_PER_PARAMETER = 30
#: CMA-ES generations, settings per generation (each renders the whole clip once) and initial
#: step in normalised units (a fifth of each parameter's range).
CMA_ITERATIONS, CMA_POPULATION, CMA_SIGMA = 12, 16, 0.2
#: The per-frame search starts with control points at most this far apart and halves their
#: spacing stage by stage down to ``resolution_ms``: SPSA finds slow moves far more reliably on a
#: coarse grid, and a finer stage only keeps what lowers a clip's loss.
COARSEST_MS = 1600.0
#: The cosine schedule ends at this fraction of the learning rate (as ``fit_static``'s).
FINAL_LR_FRACTION = 0.02


def run_oracle(
    config: Union[Config, PathLike],
    data_folder: Optional[PathLike] = None,
    max_clips: Optional[int] = None,
    passes: int = 15,
    lr: float = 0.05,
    resolution_ms: float = 100.0,
    static: str = "auto",
    start: Optional[PathLike] = None,
    out: Optional[PathLike] = None,
    seed: Optional[int] = None,
    progress: bool = True,
) -> Dict[str, Any]:
    """The oracle static setting and per-frame automation of each clip, rendered and scored.

    Args:
        config: a :class:`~fxgrad.config.Config` or the path of one: the chain, frame size,
            training loss and ``spsa`` settings (lanes are the clips, whatever ``spsa.lanes`` says).
        data_folder: a folder with ``input/`` and ``target/`` (and ``params/`` with the hidden
            trajectories of synthetic data); default: the config's test split (synthetic data
            generated first when needed).
        max_clips: the first clips by name (default: all); each is one lane.
        passes: passes over every clip in each stage of the per-frame optimisation (and of the
            static one with ``static="spsa"``); each control point gets an update from each frame
            it shapes.
        lr: Adam's learning rate on the logits, decayed by a cosine to ``FINAL_LR_FRACTION`` of it.
        resolution_ms: the finest spacing of the per-frame automation's control points (frames
            between two blend them linearly; rounded to whole frames; 0: every frame its own).
            The search runs coarse to fine, from about ``COARSEST_MS`` down to this, each stage
            from the best trajectory so far: SPSA on every frame alone oscillates, as a frame's
            gradient misses its effect on later frames through the plugins' state
            (``docs/oracle.md`` has the figures).
        static: ``"cma"``, ``"spsa"`` or ``"auto"`` (CMA-ES for 2 to ``CMA_MAX_PARAMETERS``).
        start: a ``fit-static`` JSON (the training set's best static setting) both searches
            start from instead of the chain's defaults; with many parameters a clip's own search
            from the defaults may not even reach the training set's setting in its budget.
        out: the JSON written (atomically); default ``RUN_DIR/oracle.json``.
        seed: seeds the SPSA perturbations and CMA-ES (default: the config's seed); the result
            is the same for the same seed, whatever the thread or worker count.
        progress: show progress bars.

    Returns the JSON's content (shaped as ``fxgrad evaluate``'s): ``systems`` (system -> metric
    means, and ``loss``), ``clips`` (per-clip metrics, settings and parameter errors),
    ``parameter_mae`` (with hidden trajectories), ``settings``, ``cost``; and ``path``.
    """
    started = time.perf_counter()
    config = config if isinstance(config, Config) else Config.load(config)
    settings = _settings(config, max_clips, passes, lr, resolution_ms, static, seed)
    dataset, params, data_text = _clips(config, data_folder, max_clips, progress)
    chain = build_chain(config)
    if static == "auto":
        settings["static"] = "cma" if 2 <= chain.num_parameters <= CMA_MAX_PARAMETERS else "spsa"
    loss_fn = build_loss(config)
    first = np.asarray(chain.get_learned(), np.float32) if start is None else load_static(start, list(chain.learned))
    settings["start"] = None if start is None else str(start)
    static_thetas, trajectories, frames, cost = _optimise(config, chain, loss_fn, dataset, settings, first, progress)

    clock = time.perf_counter()
    rows, errors = _score(config, loss_fn, dataset, params, static_thetas, trajectories, frames, first, progress)
    cost["render"] = {"frame_renders": 4 * sum(frames), "seconds": time.perf_counter() - clock}
    cost["total"]["seconds"] = time.perf_counter() - started
    for row in rows:
        row["static_plain"] = [
            float(v) for v in plain_values(chain, np.asarray([row["static_normalised"]], np.float32))[0]
        ]
    result: Dict[str, Any] = {
        "config": config.source,
        "data": data_text,
        "clips": rows,
        "systems": {s: {m: float(np.nanmean([r[s][m] for r in rows])) for m in (*METRICS, "loss")} for s in SYSTEMS},
        "parameters": list(chain.learned),
        "settings": settings,
        "cost": cost,
    }
    if errors:
        result["parameter_mae"] = {s: np.mean(errors[s], axis=0).tolist() for s in SYSTEMS}
    path = Path(out) if out else config.run_dir / "oracle.json"
    atomic_write_bytes(path, json.dumps(result, indent=2).encode())
    result["path"] = path
    return result


def _settings(config: Config, max_clips, passes, lr, resolution_ms, static, seed) -> Dict[str, Any]:
    """The oracle's settings, checked, as its JSON records them."""
    if static not in STATIC_METHODS:
        raise ValueError(f"static must be one of {STATIC_METHODS}, got {static!r}")
    if int(passes) < 1 or not lr > 0 or not resolution_ms >= 0:
        raise ValueError(
            f"passes must be >= 1, lr > 0 and resolution_ms >= 0, got {passes!r}, {lr!r}, {resolution_ms!r}"
        )
    frame_ms = config.frame_size / config.sample_rate * 1e3
    stages = [max(1, round(resolution_ms / frame_ms))]
    while stages[0] * 2 * frame_ms <= COARSEST_MS:
        stages.insert(0, stages[0] * 2)
    return {
        "max_clips": max_clips,
        "passes": int(passes),
        "lr": float(lr),
        "resolution_ms": float(resolution_ms),
        "stages_frames": stages,
        "static": static,
        "seed": config.seed if seed is None else int(seed),
        "loss": config.loss.type,
        "frame_size": config.frame_size,
        "spsa": {**{k: getattr(config.spsa, k) for k in ("eps", "perturbations", "strategy")}, **ORACLE_SPSA},
    }


def _optimise(
    config: Config,
    chain,
    loss_fn: nn.Module,
    dataset: PairedAudioDataset,
    settings: Dict[str, Any],
    defaults: np.ndarray,
    progress: bool,
) -> Tuple[np.ndarray, np.ndarray, List[int], Dict[str, Dict[str, float]]]:
    """Both oracles of every clip, from the setting ``defaults``: (clips, P) static settings,
    (clips, frames, P) trajectories (each from its clip's static setting), the clips' frame
    counts and the cost of each stage."""
    seed, passes, lr = settings["seed"], settings["passes"], settings["lr"]
    threads = plugin_threads(config)
    stream = _Stream(
        spsa_layer(chain, config, len(dataset), threads, seed, **ORACLE_SPSA), dataset, loss_fn, config, progress
    )
    cost: Dict[str, Dict[str, float]] = {}
    clock = time.perf_counter()
    if settings["static"] == "cma":
        static_thetas, renders = _static_cma(config, loss_fn, dataset, defaults, seed, progress)
        cost["static"] = {"rack_steps": 0, "frame_renders": renders}
    else:
        static_thetas = stream.optimise(np.tile(defaults, (len(dataset), 1)), passes, lr, "oracle static")[0]
        cost["static"] = stream.take_cost()
    cost["static"]["seconds"] = time.perf_counter() - clock
    clock = time.perf_counter()
    # A clip whose plugins faulted in every pass keeps its static setting.
    trajectories = np.repeat(static_thetas[:, None, :], max(stream.frames), axis=1)
    losses = np.full(len(dataset), math.inf)
    for spacing in settings["stages_frames"]:  # coarse to fine, each stage from the best so far
        ms = spacing * config.frame_size / config.sample_rate * 1e3
        found, found_losses = stream.optimise(trajectories, passes, lr, f"oracle per-frame ({ms:.0f} ms)", spacing)
        better = found_losses < losses
        trajectories[better], losses[better] = found[better], found_losses[better]
    cost["per-frame"] = {**stream.take_cost(), "seconds": time.perf_counter() - clock}
    cost["total"] = {"faults": stream.faults}
    return static_thetas, trajectories, stream.frames, cost


def _clips(
    config: Config, data_folder: Optional[PathLike], max_clips: Optional[int], progress: bool
) -> Tuple[PairedAudioDataset, Optional[Path], str]:
    """The clips (the first ``max_clips`` by name), their ``params/`` folder if any, and where
    they come from as text."""
    if data_folder is None:
        splits = prepare_data(config, progress=progress)
        if splits.test is None:
            raise ValueError(f"{config.source or 'config'} has no test split: give the oracle a data folder")
        inputs, targets, params = Path(splits.test.input), Path(splits.test.target), splits.params.get("test")
        text = str(inputs.parent)
    else:
        inputs, targets, params = split_folders(data_folder)
        text = str(data_folder)
    options = dict(length_tolerance=config.data.length_tolerance, cache_size=0)
    every = PairedAudioDataset(inputs, targets, config.sample_rate, config.channels, **options)
    if max_clips is not None and int(max_clips) < 1:
        raise ValueError(f"max_clips must be >= 1, got {max_clips!r}")
    pairs = every.pairs[: int(max_clips)] if max_clips is not None else every.pairs
    options["cache_size"] = len(pairs)  # every pass reads every clip
    dataset = PairedAudioDataset.from_pairs(pairs, config.sample_rate, config.channels, **options)
    return dataset, (params if params is not None and Path(params).is_dir() else None), text


class _Stream:
    """Per-clip settings optimised by SPSA through the rack: one lane per clip, each pass a
    reset and the clip's frames in order, one frame per rack step.

    A per-frame trajectory is held as logits at control points every ``spacing`` frames (frame
    ``k`` takes the linear blend of the two around it; ``spacing = 1``: every frame its own), a
    static setting as one logit vector per clip."""

    def __init__(self, layer, dataset: PairedAudioDataset, loss_fn: nn.Module, config: Config, progress: bool):
        self.layer, self.dataset, self.loss_fn, self.config, self.progress = layer, dataset, loss_fn, config, progress
        self.step = FrameStep(layer, loss_fn, config, torch.device("cpu"))
        size = config.frame_size
        self.frames = [math.ceil(dataset.num_samples(i) / size) for i in range(len(dataset))]
        self.faults = 0
        self._steps = 0
        self._blend: Optional[Tuple[np.ndarray, np.ndarray, np.ndarray]] = None
        self._evaluations = int(layer.rack.stats()["evaluations"])

    def take_cost(self) -> Dict[str, float]:
        """Rack steps and frame renders (every frame a chain of the rack rendered: centres,
        perturbed and replayed) since the last call."""
        evaluations = int(self.layer.rack.stats()["evaluations"])
        cost = {"rack_steps": self._steps, "frame_renders": evaluations - self._evaluations}
        self._steps, self._evaluations = 0, evaluations
        return cost

    def optimise(
        self, start: np.ndarray, passes: int, lr: float, desc: str, spacing: int = 0
    ) -> Tuple[np.ndarray, np.ndarray]:
        """Optimise from ``start``: one static setting per clip (``spacing = 0``; ``start``
        (clips, P)), or a trajectory per clip with control points every ``spacing`` frames,
        starting from ``start`` (clips, P) or (clips, frames, P) at the points' frames.

        Returns ``(settings, losses)``: static, the (clips, P) settings after the last pass and
        that pass's mean frame loss per clip; per frame, the (clips, frames, P) trajectory of each
        clip's best pass (the values it rendered) and its mean frame loss."""
        from tqdm import tqdm

        lanes, frames = len(self.dataset), max(self.frames)
        logit = torch.logit(torch.from_numpy(np.asarray(start, np.float32)).clamp(0.01, 0.99))
        self._blend = _control_points(frames, spacing) if spacing else None  # see _pass
        if spacing:  # one tensor per control point: Adam leaves a tensor alone while it has no gradient
            pieces = [logit[:, int(k)] if logit.dim() == 3 else logit for k in self._blend[0]]
        else:  # one per clip: a clip that has ended gets no update from Adam's momentum
            pieces = list(logit)
        tensors = [nn.Parameter(piece.clone()) for piece in pieces]
        optimizer = torch.optim.Adam(tensors, lr=lr)
        best = np.zeros((lanes, frames, start.shape[-1]), np.float32)
        best_loss = np.full(lanes, math.inf)
        bar = tqdm(total=passes * frames, desc=desc, unit="step", disable=not self.progress, leave=False)
        for index in range(passes):
            cosine = 0.5 * (1 + math.cos(math.pi * index / passes))
            for group in optimizer.param_groups:
                group["lr"] = lr * (FINAL_LR_FRACTION + (1 - FINAL_LR_FRACTION) * cosine)
            used, losses = self._pass(tensors, optimizer, f"{desc} pass {index + 1}", bar)
            better = losses < best_loss
            best[better], best_loss[better] = used[better], losses[better]
            bar.set_postfix_str(f"loss {np.nanmean(np.where(np.isfinite(losses), losses, np.nan)):.4g}", refresh=False)
        bar.close()
        if spacing:
            return best, best_loss
        return torch.sigmoid(torch.stack([t.detach() for t in tensors])).numpy(), losses

    def _pass(self, tensors, optimizer, where: str, bar) -> Tuple[np.ndarray, np.ndarray]:
        """One pass over every clip; returns the (clips, frames, P) values rendered and each
        clip's mean frame loss (inf for a clip whose plugins faulted: its render broke off)."""
        lanes, frames = len(self.dataset), max(self.frames)
        used = np.zeros((lanes, frames, tensors[0].shape[-1]), np.float32)
        totals = np.zeros(lanes)
        streamer = FrameStreamer(self.dataset, lanes, self.config.frame_size, self.config.frame_size, shuffle=False)
        for k, batch in enumerate(streamer):  # every lane starts its clip at step 0
            if self._blend is not None:
                point, blend = int(self._blend[1][k]), float(self._blend[2][k])
                mixed = tensors[point] * (1 - blend) + tensors[point + 1] * blend if blend else tensors[point]
                theta = torch.sigmoid(mixed)
            else:
                theta = torch.sigmoid(torch.stack(tensors))
            # Each clip's own loss, summed: each lane's gradient is its clip's alone.
            loss, per_lane = self.step.per_lane(batch, theta, f"{where}, frame {k + 1}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self._blend is None:
                for m in set(range(lanes)) - set(per_lane):
                    tensors[m].grad = None
            optimizer.step()
            self._steps += 1
            used[:, k] = theta.detach().numpy()
            for m, value in per_lane.items():
                totals[m] += float(value.detach())
            totals[self.layer.faulted.numpy()] = math.inf
            self.faults += len(self.layer.take_faults())
            bar.update(1)
        return used, totals / np.asarray(self.frames)


def _control_points(frames: int, spacing: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Control points at every ``spacing``-th of ``frames`` frames and at the last: their frames,
    and for each frame the point before it and its blend (0 to 1) towards the next one."""
    positions = np.unique(np.minimum(np.arange(0, frames + spacing, spacing), frames - 1))
    k = np.arange(frames)
    point = np.clip(np.searchsorted(positions, k, side="right") - 1, 0, max(len(positions) - 2, 0))
    span = np.maximum(positions[np.minimum(point + 1, len(positions) - 1)] - positions[point], 1)
    return positions, point, np.clip((k - positions[point]) / span, 0.0, 1.0)


def _frames_loss(loss_fn: nn.Module, output: np.ndarray, target: np.ndarray, frame_size: int) -> float:
    """The config's loss over a clip's frames, (C, samples) each, as the trainer cuts them (the
    zero-padded end masked): the mean frame loss for losses that average over items."""
    count = math.ceil(output.shape[-1] / frame_size)
    cut = [
        contexts(torch.from_numpy(np.ascontiguousarray(a)), frame_size, frame_size, 0, count) for a in (output, target)
    ]
    valid = (output.shape[-1] - torch.arange(count) * frame_size).clamp(0, frame_size)
    with torch.no_grad():
        return float(frame_loss(loss_fn, cut[0], cut[1], valid))


def _population_loss(chain, threads: int, loss_fn: nn.Module, audio, target, size: int, thetas) -> np.ndarray:
    """(K,) frame losses of a clip rendered at each of K static settings (K, P), in parallel
    from fresh plugin state (:func:`fxgrad.render_batch`; the clip zero-padded to whole frames
    as the rack and :func:`~fxgrad.host.render.render_automation` render it)."""
    from ..host.batch import render_batch

    samples = audio.shape[-1]
    padded = np.zeros((audio.shape[0], math.ceil(samples / size) * size), np.float32)
    padded[:, :samples] = audio
    rendered = render_batch(chain, np.asarray(thetas, np.float32), padded, threads)
    return np.array([_frames_loss(loss_fn, out[:, :samples], target, size) for out in rendered])


def _static_cma(
    config: Config, loss_fn: nn.Module, dataset: PairedAudioDataset, start: np.ndarray, seed: int, progress: bool
) -> Tuple[np.ndarray, int]:
    """Each clip's best static setting within [0, 1] by CMA-ES (:func:`fxgrad.match.optimise.optimise_cma`),
    started from the best of ``start`` (the chain's defaults) and ``CMA_SCREEN_PER_PARAMETER * P``
    settings spread over the range (a Latin hypercube): a compressor whose threshold sits above
    the material is a flat plateau that CMA-ES started there often does not leave. Returns the
    (clips, P) settings and the frame renders it took."""
    from functools import partial

    from tqdm import tqdm

    from ..match.optimise import latin_hypercube, optimise_cma

    chain, threads = build_chain(config), plugin_threads(config)
    size, count = config.frame_size, len(start)
    settings, renders = [], 0
    for index in tqdm(range(len(dataset)), desc="oracle static (CMA-ES)", unit="clip", disable=not progress):
        audio, target = (t.numpy() for t in dataset[index])
        evaluate = partial(_population_loss, chain, threads, loss_fn, audio, target, size)
        spread = latin_hypercube(np.random.default_rng([seed, index]), CMA_SCREEN_PER_PARAMETER * count, count)
        screen = np.concatenate([np.asarray(start, np.float64)[None], spread])
        screened = evaluate(screen)
        first = screen[int(np.argmin(screened))]
        found = optimise_cma(evaluate, first, CMA_ITERATIONS, CMA_POPULATION, CMA_SIGMA, seed + index, progress=False)
        settings.append(found.theta if found.loss < screened.min() else first.astype(np.float32))
        renders += (found.evaluations + len(screen)) * math.ceil(audio.shape[-1] / size)
    return np.stack(settings), int(renders)


def _score(config, loss_fn, dataset, params, static_thetas, trajectories, frames, start, progress):
    """Render both systems of every clip through fresh plugins (``fxgrad evaluate``'s way) and
    score them; returns the clip rows and, with hidden trajectories, the parameter errors.

    An oracle is never worse than where it started, by the rendered loss: a clip's static
    setting falls back to ``start`` and its automation to its static setting when the search
    ended worse (SPSA's noise on one clip can carry it away)."""
    from tqdm import tqdm

    chain = build_chain(config)
    names = list(chain.learned)
    rows: List[Dict[str, Any]] = []
    errors: Dict[str, List[np.ndarray]] = {s: [] for s in SYSTEMS}
    for index in tqdm(range(len(dataset)), desc="oracle render", unit="clip", disable=not progress, leave=False):
        audio, target = (t.numpy() for t in dataset[index])
        count = frames[index]
        static, output, loss = _best_render(
            config,
            loss_fn,
            chain,
            audio,
            target,
            [np.tile(static_thetas[index], (count, 1)), np.tile(start, (count, 1))],
        )
        automation, automated, automated_loss = _best_render(
            config, loss_fn, chain, audio, target, [trajectories[index, :count], static]
        )
        thetas = {"oracle static": static, "oracle per-frame": automation}
        row: Dict[str, Any] = {"clip": dataset.names[index], "frames": count}
        row["oracle static"] = {**metrics(output, target, config.sample_rate), "loss": loss}
        row["oracle per-frame"] = {**metrics(automated, target, config.sample_rate), "loss": automated_loss}
        row["fell_back"] = {
            "static": not np.array_equal(static[0], static_thetas[index]),
            "per-frame": automation is static,
        }
        row["static_normalised"] = [float(v) for v in static[0]]
        hidden_path = params / f"{dataset.names[index]}.csv" if params is not None else None
        if hidden_path is not None and hidden_path.is_file():
            hidden = read_parameter_csv(hidden_path, names)
            row["parameter_mae"] = {}
            for system, values in thetas.items():
                count = min(len(hidden), len(values))
                error = np.abs(values[:count] - hidden[:count]).mean(axis=0)
                row["parameter_mae"][system] = error.tolist()
                errors[system].append(error)
        rows.append(row)
    return rows, {s: v for s, v in errors.items() if v}


def _best_render(config, loss_fn, chain, audio, target, candidates) -> tuple:
    """The first candidate trajectory (frames, P) of those with the lowest rendered loss, with its
    output and loss."""
    best = None
    for values in candidates:
        chain.reset()
        output = render_automation(chain, audio, values, config.frame_size)
        loss = _frames_loss(loss_fn, output, target, config.frame_size)
        if best is None or loss < best[2]:
            best = (values, output, loss)
    return best
