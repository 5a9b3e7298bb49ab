"""Training through real plugins: the DeepAFx loop, its checkpoints, and the static baseline.

One step of :class:`Trainer`::

    batch = next(streamer)                      # consecutive frames of one clip per lane
    layer.reset_lanes(batch.reset)              # lanes that start a new clip
    theta = encoder(batch.context)              # (M, P) in [0, 1]
    y = layer(batch.frame, theta)               # the real plugins; SPSA on backward
    loss = loss_fn(y, batch.target); loss.backward(); clip; optimiser.step()

around which the trainer adds an optional pretraining stage (regress the chain's default
parameters), optional progressive chain training (one plugin's parameters released at a time),
validation each epoch with reduce-on-plateau and early stopping, CSV (and TensorBoard) logs, a
progress bar, atomic checkpoints that resume where they stopped (Ctrl-C writes one first),
DistributedDataParallel under ``torchrun``, and a pipelined mode that runs the plugins of one step
in a background thread while the encoder computes the next step's parameters.

:func:`fit_static` fits one fixed parameter vector for the whole training set with the same SPSA
optimiser: the "best static settings" baseline.
"""

from __future__ import annotations

import collections
import concurrent.futures
import csv
import json
import math
import os
import random
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from . import _native
from ._device import usable_device
from ._files import FolderLock, FolderLocked
from .checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .config import Config, ConfigError, PairsSection
from .data import FrameStreamer, PairedAudioDataset
from .encoder import Encoder
from .host import Chain
from .losses import DelayInvariantLoss, MultiResolutionSTFTLoss
from .render import atomic_write_bytes, parameter_units, plain_values
from .torch import PluginLayer

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"
LOCK = "train.lock"
STATIC = "static.json"
LOG = "log.csv"


class TrainingError(RuntimeError):
    """Training cannot start or continue (the message says why and what to do)."""


class TrainingInterrupted(KeyboardInterrupt):
    """Raised by :meth:`Trainer.fit` after Ctrl-C/SIGTERM, once the checkpoint is written."""

    def __init__(self, message: str, checkpoint: Optional[Path]):
        super().__init__(message)
        self.checkpoint = checkpoint


# ---------------------------------------------------------------------------- processes


@dataclass
class World:
    """This process's place in a (possibly) distributed run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto") -> World:
    """Join the process group that ``torchrun`` describes in the environment (NCCL on CUDA,
    gloo on CPU); a plain single process when there is none."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size > 1 and not dist.is_initialized():
        use_cuda = device != "cpu" and torch.cuda.is_available()
        if use_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if use_cuda else "gloo")
    if dist.is_initialized():
        return World(
            dist.get_rank(),
            dist.get_world_size(),
            int(os.environ.get("LOCAL_RANK", dist.get_rank())),
            int(os.environ.get("LOCAL_WORLD_SIZE", dist.get_world_size())),
        )
    return World()


def resolve_device(preference: str, world: World) -> torch.device:
    try:
        return usable_device(preference, world.local_rank)
    except ValueError as error:
        raise TrainingError(str(error)) from None


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


# ---------------------------------------------------------------------------- data, chain, loss


@dataclass
class Splits:
    train: PairedAudioDataset
    valid: Optional[PairedAudioDataset]
    test: Optional[PairsSection]
    params: Dict[str, Path]
    """Folders of hidden parameter trajectories by split (synthetic data only)."""


def prepare_data(config: Config, world: Optional[World] = None, progress: bool = True) -> Splits:
    """Datasets of the config's data section; synthetic data is generated first (once, by rank 0)."""
    world = world or World()
    d = config.data
    params: Dict[str, Path] = {}
    if d.synthetic is not None:
        from .synth import generate

        s = d.synthetic
        folder = Path(s.folder) if s.folder else config.run_dir / "data"
        clips = {"train": s.train_clips, "valid": s.valid_clips, "test": s.test_clips}
        if world.is_main:
            generate(
                folder,
                config.chain_config(),
                s.hidden,
                config.frame_size,
                clips,
                s.seconds,
                s.seed,
                knot_seconds=s.knot_seconds,
                progress=progress,
            )
        if world.distributed:
            dist.barrier()
        split = {
            name: PairsSection(str(folder / name / "input"), str(folder / name / "target"))
            for name, count in clips.items()
            if count > 0
        }
        params = {name: folder / name / "params" for name in split}
        train, valid, test = split["train"], split.get("valid"), split.get("test")
    else:
        train, valid, test = d.train, d.valid, d.test

    def dataset(pairs: PairsSection, role: str) -> PairedAudioDataset:
        try:
            return PairedAudioDataset(
                pairs.input,
                pairs.target,
                config.sample_rate,
                config.channels,
                length_tolerance=d.length_tolerance,
                cache_size=d.cache_size,
            )
        except ValueError as error:
            raise TrainingError(f"data.{role}: {error}") from None

    train_set = dataset(train, "train")
    valid_set = dataset(valid, "valid") if valid is not None else None
    if valid_set is None and d.valid_split > 0 and len(train_set) >= 2:
        count = max(1, int(round(len(train_set) * d.valid_split)))
        pairs = list(train_set.pairs)
        options = dict(length_tolerance=d.length_tolerance, cache_size=d.cache_size)
        valid_set = PairedAudioDataset.from_pairs(pairs[-count:], config.sample_rate, config.channels, **options)
        train_set = PairedAudioDataset.from_pairs(pairs[:-count], config.sample_rate, config.channels, **options)
    return Splits(train_set, valid_set, test, params)


def build_chain(config: Config) -> Chain:
    try:
        chain = Chain.from_config(config.chain_config())
    except FileNotFoundError as error:
        raise TrainingError(f"chain: {error}") from None
    except (ValueError, KeyError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        raise ConfigError(f"{config.source or 'config'}: chain: {message}") from None
    if chain.num_parameters == 0:
        raise ConfigError(f"{config.source or 'config'}: chain: no learned parameters (check chain.learned)")
    return chain


class _PointwiseLoss(nn.Module):
    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        difference = output - target
        return difference.abs().mean() if self.kind == "l1" else difference.pow(2).mean()


def build_loss(config: Config) -> nn.Module:
    section = config.loss
    if section.type == "delay_invariant":
        return DelayInvariantLoss(section.max_lag, section.alpha_time, section.alpha_freq, section.n_fft)
    if section.type == "mrstft":
        return MultiResolutionSTFTLoss(section.fft_sizes, section.hop_sizes, section.win_lengths)
    return _PointwiseLoss(section.type)


FAULTS = "faults.jsonl"
PLUGIN_LOG = "plugins.log"


def spsa_layer(
    chain: Chain,
    config: Config,
    lanes: int,
    threads: int,
    seed: int,
    worker_log: Optional[Path] = None,
    render_only: bool = False,
) -> PluginLayer:
    """The one place a :class:`PluginLayer` is built from the ``spsa`` section. ``render_only``:
    a layer that only renders (validation), with no evaluator instances to feed."""
    s = config.spsa
    common = dict(
        threads=threads,
        isolation=s.isolation,
        workers=s.workers,
        timeout_s=s.timeout_s,
        worker_log=worker_log,
        max_faults=s.max_faults,
        max_faults_per_minute=s.max_faults_per_minute,
    )
    if render_only:
        # Replay with one-sided evaluation and no history: the fewest instances per lane.
        return PluginLayer(
            chain, lanes, strategy="replay", estimator="one-sided", replay_samples=0, seed=seed, **common
        )
    return PluginLayer(
        chain, lanes, s.eps, s.perturbations, s.strategy, s.estimator, s.replay_samples, seed=seed, **common
    )


def _checked_layer(run_dir: Path, build: Callable[[], PluginLayer]) -> PluginLayer:
    """``build()`` with the run folder present (isolated workers write their output there); a
    setting it refuses is a :class:`TrainingError`, and a folder made for it is removed again:
    nothing is written before the inputs are validated."""
    made = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        return build()
    except ValueError as error:
        if made:
            for leftover in (run_dir / PLUGIN_LOG,):
                leftover.unlink(missing_ok=True)
            run_dir.rmdir()
        raise TrainingError(f"spsa: {error}") from None


class FaultLog:
    """Plugin faults of a run: one JSON line each in ``RUN_DIR/faults.jsonl`` (the reproducer:
    plugin, kind, lane, step, normalised and plain parameter values) and a one-line note."""

    def __init__(self, folder: Path, note: Callable[[str], None]):
        self.path = folder / FAULTS
        self.note = note
        self.count = 0

    def record(self, reports: List[Dict[str, Any]], phase: str, step: int) -> None:
        if not reports:
            return
        with open(self.path, "a") as handle:
            for report in reports:
                handle.write(json.dumps({"phase": phase, "train_step": step, **report}) + "\n")
        for report in reports:
            self.count += 1
            values = ", ".join(f"{name}={value:.6g}" for name, value in report["plain"].items())
            where = (
                f"{report['plugin'] or 'a plugin'}: {report['kind']} ({report['detail']}) in lane {report['lane']}, "
                f"{report['phase']}"
                if report["lane"] >= 0
                else f"a worker: {report['kind']} ({report['detail']}) between renders"
            )
            self.note(
                f"fault {self.count} at step {step}: {where}; lanes {report['lanes']} restarted"
                + (f"; settings {values}" if values else "")
                + f"  [{self.path}]"
            )


def _mean_or_nan(values: Sequence[float]) -> float:
    """Mean of the finite values (steps whose every lane faulted log NaN); NaN if there are none."""
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def frame_loss(loss_fn: nn.Module, output: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``loss_fn`` on frames whose samples past ``valid`` (a clip's zero-padded end) are zeroed
    in both output and target, so padding neither counts nor pulls on the parameters."""
    frame = output.shape[-1]
    if bool((valid < frame).any()):
        keep = torch.arange(frame, device=output.device)[None, :] < valid.to(output.device)[:, None]
        keep = keep.unsqueeze(1).to(output.dtype)
        output, target = output * keep, target * keep
    return loss_fn(output, target)


def _spsa_settings(config: Config) -> str:
    """The settings that shape a training step's gradient, for error messages."""
    s, t = config.spsa, config.train
    return (
        f"spsa.eps={s.eps:g}, spsa.estimator={s.estimator}, spsa.strategy={s.strategy}, "
        f"spsa.perturbations={s.perturbations}, train.lr={t.lr:g}, train.grad_clip={t.grad_clip}, "
        f"loss.type={config.loss.type}"
    )


def require_finite_loss(
    loss: torch.Tensor, output: torch.Tensor, target: torch.Tensor, config: Config, where: str
) -> None:
    """Raise :class:`TrainingError` before a non-finite loss reaches the gradient, naming the
    loss and the peaks of what it compared (audio is expected within about +-1)."""
    if bool(torch.isfinite(loss)):
        return
    raise TrainingError(
        f"{where}: the loss is {float(loss.detach())} (loss.type={config.loss.type}); the target frames peak at "
        f"{float(target.detach().abs().max()):.3g} and the plugins' output at {float(output.detach().abs().max()):.3g} "
        "(audio is expected within about +-1: check the data); the optimiser step was not applied and nothing was "
        "saved"
    )


def _logit(p: torch.Tensor) -> torch.Tensor:
    p = p.clamp(0.01, 0.99)
    return torch.log(p) - torch.log1p(-p)


# ---------------------------------------------------------------------------- the log


class RunLog:
    """``log.csv`` (one row per logged step and per epoch) and TensorBoard scalars when the
    ``tensorboard`` package is installed. On resume, rows past the checkpoint are dropped."""

    FIELDS = [
        "phase",
        "step",
        "epoch",
        "loss",
        "valid_loss",
        "lr",
        "grad_norm",
        "step_s",
        "plugins_s",
        "elapsed_s",
        "faults",
    ]

    def __init__(self, folder: Path, keep: Optional[Callable[[Dict[str, str]], bool]] = None, tensorboard: bool = True):
        self.path = folder / LOG
        folder.mkdir(parents=True, exist_ok=True)
        rows = []
        if keep is not None and self.path.is_file():
            with open(self.path, newline="") as handle:
                rows = [row for row in csv.DictReader(handle) if keep(row)]
        text = _csv_text(self.FIELDS, rows)
        atomic_write_bytes(self.path, text.encode())
        self._handle = open(self.path, "a", newline="")
        self._writer = csv.DictWriter(self._handle, self.FIELDS)
        self._board = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._board = SummaryWriter(str(folder / "tensorboard"))
            except Exception:  # tensorboard not installed: CSV only
                self._board = None

    def row(self, **values: Any) -> None:
        self._writer.writerow({k: _format(values.get(k)) for k in self.FIELDS})
        self._handle.flush()
        if self._board is not None:
            step = int(values["step"])
            for key in ("loss", "valid_loss", "lr", "grad_norm", "step_s", "plugins_s", "faults"):
                if values.get(key) is not None:
                    self._board.add_scalar(f"{values['phase']}/{key}", float(values[key]), step)

    def close(self) -> None:
        self._handle.close()
        if self._board is not None:
            self._board.close()


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _csv_text(fields: Sequence[str], rows: Sequence[Dict[str, str]]) -> str:
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def read_log(path: Path) -> List[Dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


# ---------------------------------------------------------------------------- the trainer


class Trainer:
    """Trains an :class:`~fxgrad.encoder.Encoder` to drive a chain of real plugins.

    Args:
        config: a validated :class:`~fxgrad.config.Config`.
        resume: continue from ``RUN_DIR/checkpoint.pt`` (starting fresh, with a note, when there
            is none).
        overwrite: start over even though the run folder holds a checkpoint.
        progress: show progress bars (rank 0 only).
        callbacks: functions ``f(trainer, record)`` called after every training step with the
            step's record (``step``, ``loss``, ``faults``, ...); they may call :meth:`request_stop`.
        plugin_output: let what plugins print in isolated workers reach this process's stderr;
            by default it goes to ``RUN_DIR/plugins.log``.

    Files in ``config.run_dir``: ``checkpoint.pt`` (latest), ``best.pt`` (best validation
    loss; without validation clips, best mean training loss of an epoch: :attr:`best_by`),
    ``log.csv``, ``config.yaml`` (the resolved config), ``tensorboard/``, ``train.lock`` (held,
    with the PID, while a trainer writes the folder: a second one is refused), and with isolated
    plugins ``plugins.log`` (what they printed) and ``faults.jsonl`` (their faults).
    """

    def __init__(
        self,
        config: Config,
        resume: bool = False,
        overwrite: bool = False,
        progress: bool = True,
        callbacks: Sequence[Callable[["Trainer", Dict[str, Any]], None]] = (),
        plugin_output: bool = False,
    ):
        self._lock: Optional[FolderLock] = None
        self.log: Optional[RunLog] = None
        try:
            self._setup(config, resume, overwrite, progress, callbacks, plugin_output)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Close the log and release the run folder (:meth:`fit` does at its end)."""
        if self.log is not None:
            self.log.close()
            self.log = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _setup(
        self,
        config: Config,
        resume: bool,
        overwrite: bool,
        progress: bool,
        callbacks: Sequence[Callable[["Trainer", Dict[str, Any]], None]],
        plugin_output: bool,
    ) -> None:
        self.config = config
        self.world = init_distributed(config.device)
        self.device = resolve_device(config.device, self.world)
        self.run_dir = config.run_dir
        self.progress = progress and self.world.is_main
        self.callbacks = list(callbacks)
        self._stop_requested = False
        self._stop_reason = ""
        checkpoint = self.run_dir / CHECKPOINT
        if not resume and not overwrite and checkpoint.is_file():
            raise TrainingError(
                f"{self.run_dir} already holds a checkpoint; pass --resume to continue it or --overwrite to start over"
            )
        _seed_everything(config.seed)

        self.chain = build_chain(config)
        self.names = list(self.chain.learned)
        self.num_parameters = len(self.names)
        self.defaults = self._starting_settings(config.train.start_from)
        self.groups = [int(name.partition(".")[0]) for name in self.names]
        self.stages = sorted(set(self.groups))
        s = config.spsa
        self.threads = int(s.threads or max(1, (os.cpu_count() or 1) // self.world.local_world_size))
        self.plugin_log = None if plugin_output else self.run_dir / PLUGIN_LOG
        from tqdm import tqdm

        # A plain function, not self._note: the trainer must not hold itself in a cycle (it holds
        # the run folder's lock until it is freed or closed).
        self.faults = FaultLog(self.run_dir, tqdm.write if self.world.is_main else lambda message: None)
        # The plugins and the machine's limits are checked before any data is generated.
        self.layer = _checked_layer(
            self.run_dir,
            lambda: spsa_layer(
                self.chain, config, s.lanes, self.threads, config.seed * 1_000_003 + self.world.rank, self.plugin_log
            ),
        )
        if self.world.is_main:  # all that can be checked is checked: the run folder is written from here on
            try:
                self._lock = FolderLock(self.run_dir, LOCK)
            except FolderLocked as error:
                raise TrainingError(f"{error}; wait for it to finish, or train into another output_dir") from None

        self.splits = prepare_data(config, self.world, self.progress)
        try:
            self.encoder = Encoder(**config.encoder_kwargs(self.num_parameters)).to(self.device)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"{config.source or 'config'}: encoder: {error}") from None
        t = config.train
        self.pipeline = bool(t.pipeline)
        if self.world.distributed and not self.pipeline:
            from torch.nn.parallel import DistributedDataParallel

            self.model: nn.Module = DistributedDataParallel(
                self.encoder, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        else:
            self.model = self.encoder
            if self.world.distributed:  # pipelined: same start on every rank, gradients averaged by hand
                for tensor in self.encoder.state_dict().values():
                    dist.broadcast(tensor, 0)

        self.streamer = self._streamer(self.splits.train, offset=0)
        self.pretrain_streamer = self._streamer(self.splits.train, offset=1) if t.pretrain_steps else None
        self.loss_fn = build_loss(config).to(self.device)
        self.optimizer = torch.optim.Adam(self.encoder.parameters(), lr=t.lr, weight_decay=t.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, mode="min", factor=t.plateau_factor, patience=t.plateau_patience, min_lr=t.min_lr
        )
        self.pretrain_optimizer = (
            torch.optim.Adam(self.encoder.parameters(), lr=t.pretrain_lr) if t.pretrain_steps else None
        )
        self._valid_layer: Optional[PluginLayer] = None

        self.step = 0
        self.pretrain_step = 0
        self.epoch = 0
        self.best = math.inf
        self.bad_epochs = 0
        self.stopped_early = False
        self.out_of_time = False
        self._deadline: Optional[float] = None
        self.epoch_loss = [0.0, 0]
        self.history: List[Dict[str, Any]] = []
        self.elapsed = 0.0
        self._pending_stream: Optional[dict] = None  # pipelined: the stream before the prefetched batch

        if resume and checkpoint.is_file():
            self._restore(load_checkpoint(checkpoint))
        elif resume:
            self._note(f"no checkpoint in {self.run_dir} to resume; starting from scratch")
        elif overwrite and self.world.is_main:
            for name in (CHECKPOINT, BEST, LOG):
                (self.run_dir / name).unlink(missing_ok=True)
        if self.world.distributed:
            dist.barrier()
        if self.world.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            import yaml

            atomic_write_bytes(self.run_dir / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False).encode())
            resumed = self.step > 0 or self.pretrain_step > 0

            def keep(row: Dict[str, str]) -> bool:
                limit = self.pretrain_step if row.get("phase") == "pretrain" else self.step
                return resumed and row.get("step", "").isdigit() and int(row["step"]) <= limit

            self.log = RunLog(self.run_dir, keep, t.tensorboard)

    # ------------------------------------------------------------------ pieces

    def _streamer(self, dataset: PairedAudioDataset, offset: int) -> FrameStreamer:
        seed = self.config.seed + 7919 * self.world.rank + 104_729 * offset
        try:
            return FrameStreamer(
                dataset,
                self.config.spsa.lanes,
                self.config.frame_size,
                self.config.encoder.context,
                seed=seed,
                shuffle=True,
                min_clip_frames=self.config.data.min_clip_frames,
            )
        except ValueError as error:
            raise TrainingError(f"data: {error}") from None

    def active_mask(self, step: Optional[int] = None) -> torch.Tensor:
        """Which learned parameters the encoder drives at ``step`` (progressive training holds
        the parameters of plugins not yet released at their defaults)."""
        every = self.config.train.progressive_steps
        if not every:
            return torch.ones(self.num_parameters, dtype=torch.bool)
        step = self.step if step is None else step
        stage = min(step // every, len(self.stages) - 1)
        released = set(self.stages[: stage + 1])
        return torch.tensor([g in released for g in self.groups], dtype=torch.bool)

    def _starting_settings(self, start_from: str) -> torch.Tensor:
        """The normalised settings pretraining regresses and progressive training holds: the
        chain's defaults, or the settings of a ``fit-static`` JSON."""
        if start_from == "defaults":
            return torch.tensor(np.asarray(self.chain.get_learned(), np.float32))
        from .evaluate import load_static

        try:
            return torch.tensor(load_static(start_from, self.names))
        except (FileNotFoundError, ValueError) as error:
            raise TrainingError(f"train.start_from: {error}") from None

    def _masked(self, theta: torch.Tensor) -> torch.Tensor:
        mask = self.active_mask()
        if bool(mask.all()):
            return theta
        return torch.where(mask.to(theta.device), theta, self.defaults.to(theta.device, theta.dtype))

    def request_stop(self, reason: str = "stop requested") -> None:
        """Finish the current step, write a checkpoint and raise :class:`TrainingInterrupted`."""
        self._stop_requested = True
        self._stop_reason = reason

    def _note(self, message: str) -> None:
        if self.world.is_main:
            from tqdm import tqdm

            tqdm.write(message)

    # ------------------------------------------------------------------ state

    @property
    def best_by(self) -> str:
        """What ``best.pt``, the learning-rate schedule and early stopping follow: ``"validation
        loss"``, or without validation clips ``"epoch training loss"`` (the mean loss of an
        epoch's training steps; it measures fit to the training clips, not generalisation)."""
        return "validation loss" if self.splits.valid is not None else "epoch training loss"

    def _stream_state(self) -> dict:
        return self._pending_stream if self._pending_stream is not None else self.streamer.state_dict()

    def _gather(self, value: Any) -> List[Any]:
        if not self.world.distributed:
            return [value]
        out: List[Any] = [None] * self.world.world_size
        dist.all_gather_object(out, value)
        return out

    def state_dict(self) -> Dict[str, Any]:
        """Everything a checkpoint holds (collective under DDP: every rank must call it)."""
        per_rank = self._gather(
            {
                "stream": self._stream_state(),
                "pretrain_stream": self.pretrain_streamer.state_dict() if self.pretrain_streamer else None,
                "layer_step": int(self.layer.step),
                "rng": rng_state(),
            }
        )
        return {
            "config": self.config.to_dict(),
            # The dict Chain.from_config() took (Chain.to_config() would lose "fxgrad:NAME" sources).
            "chain": self.config.chain_config(),
            "parameters": self.names,
            "units": parameter_units(self.chain),
            "defaults": self.defaults.tolist(),
            "active": self.active_mask().tolist(),
            "encoder": self.config.encoder_kwargs(self.num_parameters),
            "model": self.encoder.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "pretrain_optimizer": self.pretrain_optimizer.state_dict() if self.pretrain_optimizer else None,
            "step": self.step,
            "pretrain_step": self.pretrain_step,
            "epoch": self.epoch,
            "best": self.best,
            "bad_epochs": self.bad_epochs,
            "stopped_early": self.stopped_early,
            "epoch_loss": list(self.epoch_loss),
            "history": self.history,
            "elapsed": self.elapsed,
            "world_size": self.world.world_size,
            "data": self._data_fingerprints(),
            "ranks": per_rank,
        }

    def _data_fingerprints(self) -> Dict[str, Optional[str]]:
        valid = self.splits.valid
        return {"train": self.splits.train.fingerprint(), "valid": valid.fingerprint() if valid is not None else None}

    def save(self, name: str = CHECKPOINT) -> Optional[Path]:
        """Write a checkpoint (rank 0; every rank must call this under DDP). Refuses encoder
        weights that are not finite: such a checkpoint could only be resumed into NaNs."""
        broken = [
            key
            for key, tensor in self.encoder.state_dict().items()
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())
        ]
        if broken:
            listed = ", ".join(broken[:3]) + (", ..." if len(broken) > 3 else "")
            raise TrainingError(
                f"not writing {self.run_dir / name}: {len(broken)} encoder tensors hold NaN or Inf "
                f"({listed}; {_spsa_settings(self.config)})"
            )
        state = self.state_dict()
        path = None
        if self.world.is_main:
            path = save_checkpoint(self.run_dir / name, state)
        if self.world.distributed:
            dist.barrier()
        return path

    def _restore(self, state: Dict[str, Any]) -> None:
        differences = _incompatible(state["config"], self.config.to_dict())
        # The data folders may move (another machine), the clips may not change.
        moved = [d for d in differences if d.startswith(("data.train.", "data.valid."))]
        same_clips = state.get("data") == self._data_fingerprints()
        if "data" in state and not same_clips:
            differences.append("the clips in the data folders are not the run's (names or lengths differ)")
        elif moved and same_clips:
            self._note("data folders moved, same clips (names and lengths): resuming")
            differences = [d for d in differences if d not in moved]
        if differences:
            raise TrainingError(
                f"cannot resume {self.run_dir / CHECKPOINT}: the config changed where a run cannot: "
                + "; ".join(differences)
                + " (use --overwrite to start over, or another output_dir)"
            )
        if state["world_size"] != self.world.world_size:
            raise TrainingError(
                f"the checkpoint was written by {state['world_size']} processes, this run has "
                f"{self.world.world_size}: each rank resumes its own lanes; relaunch with the same process count"
            )
        self.encoder.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.pretrain_optimizer is not None and state.get("pretrain_optimizer"):
            self.pretrain_optimizer.load_state_dict(state["pretrain_optimizer"])
        self.step = int(state["step"])
        self.pretrain_step = int(state["pretrain_step"])
        self.epoch = int(state["epoch"])
        self.best = float(state["best"])
        self.bad_epochs = int(state["bad_epochs"])
        self.stopped_early = bool(state["stopped_early"])
        self.epoch_loss = list(state["epoch_loss"])
        self.history = list(state["history"])
        self.elapsed = float(state["elapsed"])
        mine = state["ranks"][self.world.rank]
        self.streamer.load_state_dict(mine["stream"])
        if self.pretrain_streamer is not None and mine["pretrain_stream"] is not None:
            self.pretrain_streamer.load_state_dict(mine["pretrain_stream"])
        self.layer.step = int(mine["layer_step"])
        set_rng_state(mine["rng"])
        self.warm_lanes()

    def warm_lanes(self) -> None:
        """After a resume: the lanes' plugin instances are new (third-party plugins cannot hand
        over their DSP state), so every lane part-way through a clip is reset and warmed up on
        the ``train.resume_preroll`` seconds of that clip's input preceding its position (zeros
        before the clip's start; rounded up to a multiple of the chain's block size):

        1. ``layer.reset_lanes(mask, preroll)`` renders the preroll's head through all of the
           lane's chains at the chain's preset parameters;
        2. its last ``train.resume_warmup_frames`` frames then go through each lane's main chain
           frame by frame, with the parameters the restored encoder predicts for them, so that
           envelopes and filters end where the interrupted run's (approximately) were.

        The perturbed (lockstep) instances only get step 1. A resumed run therefore matches an
        uninterrupted one within a tolerance, not bit for bit."""
        block, frame = self.config.block_size, self.config.frame_size
        samples = int(math.ceil(self.config.train.resume_preroll * self.config.sample_rate / block)) * block
        tail = min(self.config.train.resume_warmup_frames, samples // frame)
        head = samples - tail * frame
        state = self._stream_state()
        lanes, channels = self.config.spsa.lanes, self.config.channels
        mask = np.zeros(lanes, bool)
        preroll = torch.zeros(lanes, channels, samples)
        clips: Dict[int, tuple] = {}
        dataset = self.splits.train
        for lane, (clip, position) in enumerate(zip(state["lane_clip"], state["lane_frame"])):
            if clip < 0 or position <= 0 or position * frame >= dataset.num_samples(clip):
                continue  # no clip yet, or a new clip (and a reset) comes next step
            mask[lane] = True
            audio = dataset[clip][0]
            clips[lane] = (audio, position)
            start = position * frame
            piece = audio[:, max(0, start - samples) : start]
            preroll[lane, :, samples - piece.shape[-1] :] = piece
        if not mask.any():
            return
        self.layer.reset_lanes(mask, preroll[:, :, :head] if head else None)
        if not tail:
            return
        from .render import contexts

        window = self.config.encoder.context
        saved = {n: b.clone() for n, b in self.encoder.named_buffers()}
        with torch.no_grad():
            for j in range(tail):
                context = torch.zeros(lanes, channels, window)
                for lane, (audio, position) in clips.items():
                    index = position - tail + j
                    context[lane] = contexts(audio, frame, window, index, index + 1)[0]
                theta = self._masked(self.encoder(context.to(self.device))).float().cpu().numpy()
                x = preroll[:, :, head + j * frame : head + (j + 1) * frame].contiguous().numpy()
                # Lanes outside the mask reset on the next step anyway.
                self.layer.rack.forward(np.ascontiguousarray(theta), x, False)
            for name, buffer in self.encoder.named_buffers():
                buffer.copy_(saved[name])

    # ------------------------------------------------------------------ steps

    def _clip_gradients(self, phase: str = "train") -> float:
        clip = self.config.train.grad_clip
        norm = float(torch.nn.utils.clip_grad_norm_(self.encoder.parameters(), clip if clip else math.inf))
        if not math.isfinite(norm):
            counter = self.pretrain_step if phase == "pretrain" else self.step
            raise TrainingError(
                f"{phase} step {counter + 1}: the encoder's gradient is {norm} "
                f"({_spsa_settings(self.config)}); the optimiser step was not applied and nothing "
                "was saved"
            )
        return norm

    def _pretrain_step(self) -> Dict[str, Any]:
        batch = next(self.pretrain_streamer)
        theta = self.model(batch.context.to(self.device))
        target = self.defaults.to(self.device).expand_as(theta)
        loss = torch.nn.functional.mse_loss(theta, target)
        self.pretrain_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.world.distributed and self.model is self.encoder:  # pipelined runs: no DDP wrapper
            _average_gradients(self.encoder.parameters(), self.world.world_size)
        norm = self._clip_gradients("pretrain")
        self.pretrain_optimizer.step()
        return {"loss": float(loss.detach()), "grad_norm": norm}

    def _train_step(self) -> Dict[str, Any]:
        self._stream_before = self.streamer.state_dict()
        self._in_update = False
        batch = next(self.streamer)
        if bool(batch.reset.any()):
            self.layer.reset_lanes(batch.reset)
        theta = self._masked(self.model(batch.context.to(self.device)))
        output = self.layer(batch.frame.to(self.device), theta)
        target = batch.target.to(self.device)
        loss = frame_loss(self.loss_fn, output, target, self._healthy(batch.valid_samples))
        require_finite_loss(loss, output, target, self.config, f"train step {self.step + 1}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        faults = self._faults_after_step()
        norm = self._clip_gradients()
        self._in_update = True
        self.optimizer.step()
        return {"loss": self._healthy_mean(loss), "grad_norm": norm, "faults": faults}

    def _healthy_mean(self, loss: torch.Tensor) -> float:
        """The step's loss as the mean over the lanes that did not fault in its forward (the
        loss itself counts their zeroed frames as zero); NaN when every lane faulted."""
        faulted = self.layer.faulted
        healthy = len(faulted) - int(faulted.sum())
        return float(loss.detach()) * len(faulted) / healthy if healthy else math.nan

    def _healthy(self, valid: torch.Tensor) -> torch.Tensor:
        """``valid`` samples with lanes whose plugins faulted in this forward left out of the loss."""
        faulted = self.layer.faulted
        return valid.masked_fill(faulted, 0) if bool(faulted.any()) else valid

    def _faults_after_step(self) -> int:
        """Logs the step's plugin faults and moves the lanes they restarted on to new clips."""
        faulted = self.layer.faulted
        self.faults.record(self.layer.take_faults(), "train", self.step + 1)
        if not bool(faulted.any()):
            return 0
        self.streamer.retire(faulted.nonzero().squeeze(1).tolist())
        return int(faulted.sum())

    # pipelined: the plugins of step t run in a worker thread while the encoder computes the
    # parameters of step t + 1 (from the weights before step t's update: one step of staleness).

    def _encode_detached(self, context: torch.Tensor):
        """theta from a snapshot of the weights, so the live weights can be updated while this
        graph waits for its gradient."""
        from torch.func import functional_call

        params = {n: p.detach().clone().requires_grad_(True) for n, p in self.encoder.named_parameters()}
        stats = {n: b.clone() for n, b in self.encoder.named_buffers() if n in self._persistent_buffers}
        theta = functional_call(self.encoder, {**params, **stats}, (context.to(self.device),))
        with torch.no_grad():
            live = dict(self.encoder.named_buffers())
            for n, b in stats.items():
                live[n].copy_(b)
        return self._masked(theta), params

    def _plugin_job(self, theta: torch.Tensor, batch, ready: Optional[Any]) -> tuple:
        """The worker thread's part of a pipelined step: plugins forward, loss, SPSA vjp. On
        CUDA it runs on its own stream (after ``ready``, the event marking theta computed), so
        its copies and synchronisations do not wait for the encoder's next forward."""
        if ready is None:
            return self._plugin_work(theta, batch) + (None,)
        stream = self._side_stream
        with torch.cuda.stream(stream):
            stream.wait_event(ready)
            theta.record_stream(stream)
            loss, grad = self._plugin_work(theta, batch)
            done = torch.cuda.Event()
            done.record(stream)
        return loss, grad, done

    def _plugin_work(self, theta: torch.Tensor, batch) -> tuple:
        leaf = theta.detach().requires_grad_(True)
        output = self.layer(batch.frame.to(self.device), leaf)
        target = batch.target.to(self.device)
        loss = frame_loss(self.loss_fn, output, target, self._healthy(batch.valid_samples))
        require_finite_loss(loss, output, target, self.config, f"train step {self.step + 1}")
        loss.backward()
        return self._healthy_mean(loss), leaf.grad

    def _pipelined_steps(self):
        """Yields one record per step; see ``train.pipeline`` in docs/training.md."""
        self._persistent_buffers = set(self.encoder.state_dict().keys())
        cuda = self.device.type == "cuda"
        if cuda:
            self._side_stream = torch.cuda.Stream(self.device)

        def ready_event():
            if not cuda:
                return None
            event = torch.cuda.Event()
            event.record(torch.cuda.current_stream(self.device))
            return event

        executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="fxgrad-plugins")
        future = None
        try:
            self._pending_stream = self.streamer.state_dict()
            batch = next(self.streamer)
            theta, snapshot = self._encode_detached(batch.context)
            while True:
                self._stream_before = self._pending_stream
                self._in_update = False
                if bool(batch.reset.any()):
                    self.layer.reset_lanes(batch.reset)
                future = executor.submit(self._plugin_job, theta, batch, ready_event())
                upcoming_stream = self.streamer.state_dict()
                upcoming = next(self.streamer)
                upcoming_theta, upcoming_snapshot = self._encode_detached(upcoming.context)
                loss, grad_theta, done = future.result()
                future = None
                faults = self._faults_after_step()
                if done is not None:
                    main = torch.cuda.current_stream(self.device)
                    main.wait_event(done)
                    grad_theta.record_stream(main)
                theta.backward(grad_theta)
                for name, parameter in self.encoder.named_parameters():
                    parameter.grad = snapshot[name].grad
                if self.world.distributed:
                    _average_gradients(self.encoder.parameters(), self.world.world_size)
                norm = self._clip_gradients()
                self._in_update = True
                self.optimizer.step()
                self._pending_stream = upcoming_stream
                batch, theta, snapshot = upcoming, upcoming_theta, upcoming_snapshot
                yield {"loss": loss, "grad_norm": norm, "faults": faults}
        finally:
            if future is not None:
                try:
                    future.result()
                except Exception:
                    pass
            executor.shutdown(wait=True)

    # ------------------------------------------------------------------ validation

    @torch.no_grad()
    def validate(self, max_frames: Optional[int] = None) -> Optional[float]:
        """Mean loss over the validation clips (streamed whole, one lane per clip, parameters
        from the encoder in eval mode, plugins only rendered); ``None`` without validation data."""
        dataset = self.splits.valid
        if dataset is None:
            return None
        lanes = min(self.config.spsa.lanes, len(dataset))
        if self._valid_layer is None:
            self._valid_layer = spsa_layer(
                self.chain, self.config, lanes, self.threads, 0, self.plugin_log, render_only=True
            )
        streamer = FrameStreamer(
            dataset,
            lanes,
            self.config.frame_size,
            self.config.encoder.context,
            shuffle=False,
            min_clip_frames=self.config.data.min_clip_frames,
        )
        was_training = self.encoder.training
        self.encoder.eval()
        total, count = 0.0, 0
        max_frames = max_frames if max_frames is not None else self.config.train.valid_frames
        try:
            for batch in streamer:
                if bool(batch.reset.any()):
                    self._valid_layer.reset_lanes(batch.reset)
                theta = self._masked(self.encoder(batch.context.to(self.device)))
                output = self._valid_layer(batch.frame.to(self.device), theta)
                active = batch.active
                n = int(active.sum())
                index = active.nonzero().squeeze(1)
                loss = frame_loss(
                    self.loss_fn,
                    output[index.to(output.device)],
                    batch.target.to(self.device)[index.to(self.device)],
                    batch.valid_samples[index],
                )
                total += float(loss) * n
                count += n
                if max_frames and count >= max_frames:
                    break
        finally:
            self.encoder.train(was_training)
        return total / max(count, 1)

    def _end_epoch(self) -> Dict[str, Any]:
        self.epoch += 1
        train_loss = self.epoch_loss[0] / max(self.epoch_loss[1], 1)
        if self.world.distributed:
            value = torch.tensor([train_loss], dtype=torch.float64)
            dist.all_reduce(value)
            train_loss = float(value) / self.world.world_size
        valid_loss = None
        if self.splits.valid is not None:
            result = [self.validate() if self.world.is_main else None]
            if self.world.distributed:
                dist.broadcast_object_list(result, 0)
            valid_loss = result[0]
        monitor = valid_loss if valid_loss is not None else train_loss  # see best_by
        self.scheduler.step(monitor)
        improved = monitor < self.best
        if improved:
            self.best = monitor
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
        patience = self.config.train.early_stopping
        if patience and self.bad_epochs >= patience:
            self.stopped_early = True
        record = {
            "epoch": self.epoch,
            "step": self.step,
            "train_loss": train_loss,
            "valid_loss": valid_loss,
            "lr": self.optimizer.param_groups[0]["lr"],
            "improved": improved,
        }
        self.history.append(record)
        self.epoch_loss = [0.0, 0]
        if self.log is not None:
            self.log.row(
                phase="epoch",
                step=self.step,
                epoch=self.epoch,
                loss=train_loss,
                valid_loss=valid_loss,
                lr=record["lr"],
                elapsed_s=self.elapsed,
            )
        if improved:
            self.save(BEST)
        return record

    # ------------------------------------------------------------------ the loop

    def _check_stop(self) -> bool:
        """Whether any rank was asked to stop; also sets :attr:`out_of_time` when any rank has
        passed ``train.max_seconds`` (one all-reduce for both, so every rank agrees)."""
        stop = self._stop_requested
        late = self._deadline is not None and time.monotonic() >= self._deadline
        if self.world.distributed:
            flags = torch.tensor([int(stop), int(late)], device=self.device if self.device.type == "cuda" else "cpu")
            dist.all_reduce(flags, op=dist.ReduceOp.MAX)
            stop, late = bool(flags[0].item()), bool(flags[1].item())
        self.out_of_time = self.out_of_time or late
        return stop

    def fit(self) -> Dict[str, Any]:
        """Run (or continue) training; returns a summary dict. Raises
        :class:`TrainingInterrupted` after Ctrl-C/SIGTERM once the checkpoint is written."""
        restore = self._install_signal_handlers()
        limit = self.config.train.max_seconds
        self._deadline = None if limit is None else time.monotonic() + limit
        self.out_of_time = False
        try:
            if self.pretrain_step < self.config.train.pretrain_steps:
                self._run_phase("pretrain")
            if self.step < self.config.train.steps and not self.stopped_early and not self.out_of_time:
                self._run_phase("train")
        finally:
            restore()
            self.close()
        if self.world.distributed:
            self.check_replicas()
        return self.summary()

    def check_replicas(self) -> bool:
        """Under DDP: are the encoder weights identical on every rank? (They must be: each
        rank applies the same averaged gradients.) Reports the result on rank 0."""
        with torch.no_grad():
            flat = torch.cat([p.detach().reshape(-1).double().cpu() for p in self.encoder.parameters()])
        checksums = self._gather(float(flat.sum()) + float((flat * flat).sum()))
        same = len(set(checksums)) == 1
        self._note(
            f"DDP: {self.world.world_size} ranks; encoder weights "
            + ("identical on every rank" if same else f"DIFFER between ranks: {checksums}")
        )
        return same

    def summary(self) -> Dict[str, Any]:
        best = self.run_dir / BEST
        return {
            "step": self.step,
            "epoch": self.epoch,
            "best_loss": None if math.isinf(self.best) else self.best,
            "best_by": self.best_by,
            "stopped_early": self.stopped_early,
            "out_of_time": self.out_of_time,
            "elapsed_s": self.elapsed,
            "checkpoint": self.run_dir / CHECKPOINT,
            "best_checkpoint": best if best.is_file() else None,
            "history": self.history,
        }

    def _run_phase(self, phase: str) -> None:
        t = self.config.train
        total = t.pretrain_steps if phase == "pretrain" else t.steps
        counter = "pretrain_step" if phase == "pretrain" else "step"
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(
                total=total, initial=getattr(self, counter), desc=phase, unit="step", dynamic_ncols=True, leave=True
            )
        if phase == "train" and self.world.is_main and self.step == 0:
            self._note(self.describe())
        steps = (
            self._pipelined_steps()
            if phase == "train" and self.pipeline
            else iter(lambda: self._pretrain_step() if phase == "pretrain" else self._train_step(), None)
        )
        window: List[Dict[str, Any]] = []
        smoothed = None
        last_saved = getattr(self, counter)
        self._in_update = False
        self._stream_before = None
        try:
            while getattr(self, counter) < total:
                started = time.perf_counter()
                plugins_before = self.layer.rack.stats()["wall_seconds"]
                try:
                    record = next(steps)
                except _native.PluginError as error:
                    raise self._stop_on_plugin_error(phase, counter, error) from None
                setattr(self, counter, getattr(self, counter) + 1)
                self._in_update = False
                self._stream_before = None  # the step is complete: the stream state is consistent
                duration = time.perf_counter() - started
                self.elapsed += duration
                record.update(
                    phase=phase,
                    step=getattr(self, counter),
                    step_s=duration,
                    plugins_s=self.layer.rack.stats()["wall_seconds"] - plugins_before,
                    lr=(self.pretrain_optimizer if phase == "pretrain" else self.optimizer).param_groups[0]["lr"],
                )
                if not math.isnan(record["loss"]):  # NaN: every lane's plugins faulted this step
                    smoothed = record["loss"] if smoothed is None else 0.95 * smoothed + 0.05 * record["loss"]
                window.append(record)
                if phase == "train" and not math.isnan(record["loss"]):
                    self.epoch_loss[0] += record["loss"]
                    self.epoch_loss[1] += 1
                for callback in self.callbacks:
                    callback(self, record)
                step = record["step"]
                if len(window) >= t.log_every or step == total:
                    self._log_window(window)
                    window = []
                if bar is not None:
                    bar.set_postfix_str(
                        f"loss {smoothed or math.nan:.4g}  lr {record['lr']:.2g}  {duration * 1e3:.0f} ms/step "
                        f"(plugins {record['plugins_s'] * 1e3:.0f} ms)"
                        + (f"  faults {self.faults.count}" if self.faults.count else ""),
                        refresh=False,
                    )
                    bar.update(1)
                epoch_done = phase == "train" and step % t.steps_per_epoch == 0
                if epoch_done:
                    info = self._end_epoch()
                    if bar is not None:
                        valid = "" if info["valid_loss"] is None else f", valid {info['valid_loss']:.4g}"
                        bar.write(
                            f"epoch {info['epoch']}: train {info['train_loss']:.4g}{valid}, "
                            f"lr {info['lr']:.2g}{'  (best)' if info['improved'] else ''}"
                        )
                if self._check_stop():
                    if window:
                        self._log_window(window)
                    path = self.save()
                    raise TrainingInterrupted(
                        f"{self._stop_reason or 'interrupted'} at {phase} step {step}; checkpoint written to "
                        f"{path or self.run_dir / CHECKPOINT}",
                        self.run_dir / CHECKPOINT,
                    )
                if self.stopped_early or self.out_of_time:
                    self._note(
                        f"early stopping: no improvement for {self.bad_epochs} epochs"
                        if self.stopped_early
                        else f"time limit: train.max_seconds={t.max_seconds:g} reached at {phase} step {step}"
                    )
                    self.save()
                    last_saved = step
                    break
                if epoch_done or step % t.checkpoint_every == 0 or step == total:
                    self.save()
                    last_saved = step
        except KeyboardInterrupt as interrupt:
            if isinstance(interrupt, TrainingInterrupted):
                raise
            # A KeyboardInterrupt outside our handler (second Ctrl-C, or not the main thread).
            self._interrupted_mid_step(phase, counter)
            raise
        finally:
            if bar is not None:
                bar.close()
            if hasattr(steps, "close"):
                steps.close()
        if getattr(self, counter) != last_saved:
            self.save()

    def _stop_on_plugin_error(self, phase: str, counter: str, error: Exception) -> "TrainingError":
        """A plugin past its fault budget: the checkpoint of the last complete step is written
        (the step in flight is redrawn on resume) and the run ends with one clear error."""
        self.faults.record(self.layer.take_faults(), phase, getattr(self, counter) + 1)
        if phase == "train" and self._stream_before is not None:
            self._pending_stream = self._stream_before
        path = self.save()
        return TrainingError(
            f"{error}\ncheckpoint of {phase} step {getattr(self, counter)} written to "
            f"{path or self.run_dir / CHECKPOINT}; fault reports in {self.faults.path}"
        )

    def _interrupted_mid_step(self, phase: str, counter: str) -> None:
        if self.world.distributed:
            return  # ranks may be at different points: keep the last periodic checkpoint
        if self._in_update:
            self._note(
                f"interrupted during the optimiser update; keeping the checkpoint of step {getattr(self, counter)}"
            )
            return
        if phase == "train" and self._stream_before is not None:
            # Interrupted inside a step: its batch was drawn but not learned from; save the
            # stream as it was before the batch, so a resume redraws it.
            self._pending_stream = self._stream_before
        path = self.save()
        self._note(f"interrupted at {phase} step {getattr(self, counter)}; checkpoint written to {path}")

    def _log_window(self, window: List[Dict[str, Any]]) -> None:
        if self.log is None or not window:
            return
        last = window[-1]
        self.log.row(
            phase=last["phase"],
            step=last["step"],
            epoch=self.epoch,
            loss=_mean_or_nan([r["loss"] for r in window]),
            lr=last["lr"],
            grad_norm=float(np.mean([r["grad_norm"] for r in window])),
            step_s=float(np.mean([r["step_s"] for r in window])),
            plugins_s=float(np.mean([r["plugins_s"] for r in window])),
            elapsed_s=self.elapsed,
            faults=sum(r.get("faults", 0) for r in window),
        )

    def _install_signal_handlers(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {}

        def handler(signum, frame):
            if self._stop_requested:  # second time: abort now
                for number, old in previous.items():
                    signal.signal(number, old)
                raise KeyboardInterrupt
            name = signal.Signals(signum).name
            self.request_stop(f"{name} received")
            self._note(
                f"\n{name}: finishing this step and writing a checkpoint (press Ctrl-C again to stop at "
                "once: the checkpoint then holds the last completed step)"
            )

        for number in (signal.SIGINT, signal.SIGTERM):
            try:
                previous[number] = signal.signal(number, handler)
            except (ValueError, OSError):
                pass

        def restore():
            for number, old in previous.items():
                signal.signal(number, old)

        return restore

    def describe(self) -> str:
        c = self.config
        chain = " -> ".join(p.name for p in self.chain.plugins)
        valid = self.splits.valid
        parts = [
            f"run folder {self.run_dir}",
            f"chain {chain}; learned {', '.join(self.names)}",
            f"{len(self.splits.train)} training clips, "
            + (
                f"{len(valid)} validation clips"
                if valid is not None
                else "no validation clips (no data.valid, and data.valid_split takes clips only from 2 or more): "
                "best.pt, "
                "the learning-rate schedule and early stopping follow each epoch's mean training loss"
            ),
            f"{c.spsa.lanes} lanes x {self.world.world_size} process(es), frames of {c.frame_size} samples with "
            f"{c.encoder.context}-sample context at {c.sample_rate} Hz; {c.spsa.strategy} SPSA, eps {c.spsa.eps}",
            f"{sum(p.numel() for p in self.encoder.parameters()):,} encoder weights ({c.encoder.backbone}) on "
            f"{self.device}; plugins on {self.threads} thread(s)"
            + (
                f" in {len(self.layer.rack.worker_pids)} isolated worker process(es)"
                if self.layer.isolation == "process"
                else " in this process"
            )
            + ("; pipelined" if self.pipeline else ""),
        ]
        return "\n".join("  " + p for p in parts)


def _average_gradients(parameters, world_size: int) -> None:
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


# Keys a resumed run may change; anything else must match the checkpoint's config.
_RESUMABLE = {
    "name",
    "output_dir",
    "device",
    "train",
    "fit_static",
    "spsa.threads",
    "data.cache_size",
    "data.synthetic.folder",
    "data.test",
}
_STRUCTURAL_TRAIN = {"steps_per_epoch", "pretrain_steps", "progressive_steps", "pipeline"}


def _incompatible(old: Dict[str, Any], new: Dict[str, Any], where: str = "") -> List[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        dotted = f"{where}.{key}" if where else key
        a, b = old.get(key), new.get(key)
        if dotted == "train":
            out += [
                f"train.{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(_STRUCTURAL_TRAIN) if a.get(k) != b.get(k)
            ]
            continue
        if dotted in _RESUMABLE:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            out += _incompatible(a, b, dotted)
        elif a != b:
            out.append(f"{dotted}: {a!r} -> {b!r}")
    return out


# ---------------------------------------------------------------------------- static baseline


def fit_static(
    config: Config, progress: bool = True, output: Optional[Path] = None, dataset: Optional[PairedAudioDataset] = None
) -> Dict[str, Any]:
    """The best single parameter setting for the whole training set, found by the trainer's own
    SPSA optimiser (same lanes, stream and loss; Adam on logits with a cosine schedule, from
    the chain's defaults). Writes ``RUN_DIR/static.json`` (or ``output``) and returns its content.
    ``dataset`` replaces the config's training data (``fxgrad match --method spsa``)."""
    from tqdm import tqdm

    _seed_everything(config.seed)
    chain = build_chain(config)
    section = config.fit_static
    lanes = section.lanes or config.spsa.lanes
    run_dir = Path(output).parent if output else config.run_dir
    layer = _checked_layer(
        run_dir,
        lambda: spsa_layer(  # before any data is generated
            chain,
            config,
            lanes,
            config.spsa.threads or os.cpu_count() or 1,
            config.seed * 1_000_003 + 99,
            run_dir / PLUGIN_LOG,
        ),
    )
    faults = FaultLog(run_dir, tqdm.write)
    train_set = dataset if dataset is not None else prepare_data(config, World(), progress).train
    streamer = FrameStreamer(
        train_set,
        lanes,
        config.frame_size,
        config.frame_size,
        seed=config.seed + 31,
        min_clip_frames=config.data.min_clip_frames,
    )
    loss_fn = build_loss(config)
    defaults = torch.tensor(np.asarray(chain.get_learned(), np.float32))
    logits = nn.Parameter(_logit(defaults))
    optimizer = torch.optim.Adam([logits], lr=section.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, section.steps, eta_min=section.lr * 0.02)
    clip = config.train.grad_clip
    smoothed = None
    recent: collections.deque = collections.deque(maxlen=max(10, section.steps // 10))  # the reported loss
    started = time.perf_counter()
    bar = tqdm(range(section.steps), desc="fit-static", unit="step", dynamic_ncols=True, disable=not progress)
    for step in bar:
        batch = next(streamer)
        if bool(batch.reset.any()):
            layer.reset_lanes(batch.reset)
        theta = torch.sigmoid(logits).expand(lanes, -1)
        output_audio = layer(batch.frame, theta)
        faulted = layer.faulted
        loss = frame_loss(loss_fn, output_audio, batch.target, batch.valid_samples.masked_fill(faulted, 0))
        require_finite_loss(loss, output_audio, batch.target, config, f"fit-static step {step + 1}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        faulted = layer.faulted
        faults.record(layer.take_faults(), "fit-static", step + 1)
        if bool(faulted.any()):
            streamer.retire(faulted.nonzero().squeeze(1).tolist())
        norm = float(torch.nn.utils.clip_grad_norm_([logits], clip if clip else math.inf))
        if not math.isfinite(norm):
            raise TrainingError(
                f"fit-static step {step + 1}: the gradient is {norm} ({_spsa_settings(config)}); nothing was saved"
            )
        optimizer.step()
        schedule.step()
        value = float(loss.detach())
        recent.append(value)
        smoothed = value if smoothed is None else 0.95 * smoothed + 0.05 * value
        bar.set_postfix_str(f"loss {smoothed:.4g}", refresh=False)
    theta = torch.sigmoid(logits).detach().numpy().astype(np.float32)
    result = {
        "parameters": list(chain.learned),
        "units": parameter_units(chain),
        "normalised": [float(v) for v in theta],
        "plain": [float(v) for v in plain_values(chain, theta[None])[0]],
        "defaults": [float(v) for v in defaults],
        "loss": float(np.mean(recent)),  # mean over the last tenth of the steps
        "steps": section.steps,
        "seconds": time.perf_counter() - started,
        "chain": config.chain_config(),
    }
    path = Path(output) if output else config.run_dir / STATIC
    atomic_write_bytes(path, json.dumps(result, indent=2).encode())
    result["path"] = path
    return result
