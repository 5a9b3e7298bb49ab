"""The trainer: the DeepAFx loop of an encoder driving real plugins, its epochs and its stops.

One step of :class:`Trainer` (:class:`~fxgrad.train.step.FrameStep`)::

    batch = next(streamer)                      # consecutive frames of one clip per lane
    theta = encoder(batch.context)              # (M, P) in [0, 1]
    y = layer(batch.frame, theta)               # reset lanes that start a clip; the real plugins
    loss = loss_fn(y, batch.target); loss.backward(); clip; optimiser.step()   # SPSA on backward

around which the trainer adds an optional pretraining stage (regress the chain's default
parameters), optional progressive chain training (one plugin's parameters released at a time),
validation each epoch with reduce-on-plateau and early stopping, the run log, a progress bar,
atomic checkpoints that resume where they stopped (Ctrl-C writes one first),
DistributedDataParallel under ``torchrun`` and pipelined steps; each of these lives in its own
module of :mod:`fxgrad.train`.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import nn

from ..base.files import FolderLock, FolderLocked, atomic_write_bytes
from ..config.schema import Config, ConfigError
from ..data.stream import FrameStreamer, PairedAudioDataset
from ..nn.encoder import Encoder
from . import resume, seeds
from .averaging import WeightAverage
from .budget import TimeBudget
from .build import (
    build_chain,
    build_loss,
    checked_layer,
    encoder_threads,
    plugin_threads,
    prepare_data,
    render_layer,
    spsa_layer,
)
from .checkpoint import load_checkpoint, save_checkpoint
from .distributed import (
    average_gradients,
    broadcast_module,
    check_replicas,
    init_distributed,
    mean_over_ranks,
    resolve_device,
    stop_flags,
)
from .errors import TrainingError
from .faults import FaultLog
from .files import BEST, CHECKPOINT, CONFIG, LOCK, PLUGIN_LOG
from .loop import PhaseLoop
from .runfolder import RunFolder
from .runlog import RunLog
from .signals import install_stop_handlers
from .static import load_static
from .step import FrameStep, clip_gradients, spsa_settings

Callback = Callable[["Trainer", Dict[str, Any]], None]


class Trainer:
    """Trains an :class:`~fxgrad.nn.encoder.Encoder` to drive a chain of real plugins.

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
        callbacks: Sequence[Callback] = (),
        plugin_output: bool = False,
    ):
        self._lock: Optional[FolderLock] = None
        self.log: Optional[RunLog] = None
        self.folder = RunFolder(config.run_dir)
        try:
            self.folder.check(resume, overwrite)
            self._setup(config, progress, callbacks, plugin_output)
            self._start(resume, overwrite)
        except BaseException as error:
            self.close()
            in_use = isinstance(error, TrainingError) and isinstance(error.__cause__, FolderLocked)
            if not in_use and (getattr(self, "world", None) is None or self.world.is_main):
                self.folder.discard()  # nothing of a start that failed stays (another run's files do)
            raise

    def close(self) -> None:
        """Close the log and release the run folder (:meth:`fit` does at its end)."""
        if self.log is not None:
            self.log.close()
            self.log = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    # ------------------------------------------------------------------ set-up

    def _setup(self, config: Config, progress: bool, callbacks: Sequence[Callback], plugin_output: bool) -> None:
        self.config = config
        self.world = init_distributed(config.device)
        self.device = resolve_device(config.device, self.world)
        self.run_dir = config.run_dir
        self.progress = progress and self.world.is_main
        self.callbacks = list(callbacks)
        self._stop_requested = False
        self.stop_reason = ""
        seeds.seed_everything(config.seed)
        if self.device.type == "cpu":
            torch.set_num_threads(encoder_threads(config))
        self.chain = build_chain(config)
        self.names = list(self.chain.learned)
        self.num_parameters = len(self.names)
        self.defaults = self._starting_settings(config.train.start_from)
        self.groups = [int(name.partition(".")[0]) for name in self.names]
        self.stages = sorted(set(self.groups))
        self.threads = plugin_threads(config, self.world)
        self.plugin_log = None if plugin_output else self.run_dir / PLUGIN_LOG
        from tqdm import tqdm

        # A plain function, not self.note: the trainer must not hold itself in a cycle (it holds
        # the run folder's lock until it is freed or closed).
        self.faults = FaultLog(self.run_dir, tqdm.write if self.world.is_main else lambda message: None)
        # The plugins and the machine's limits are checked before any data is generated.
        seed = seeds.training_layer(config.seed, self.world.rank)
        self.layer = checked_layer(
            self.run_dir, lambda: spsa_layer(self.chain, config, config.spsa.lanes, self.threads, seed, self.plugin_log)
        )
        if self.world.is_main:  # all that can be checked is checked: the run folder is written from here on
            try:
                self._lock = FolderLock(self.run_dir, LOCK)
            except FolderLocked as error:
                raise TrainingError(f"{error}; wait for it to finish, or train into another output_dir") from error
            self.folder.clear_stale()
        self.splits = prepare_data(config, self.world, self.progress)
        self._build_model()
        self.frame_step = FrameStep(self.layer, build_loss(config).to(self.device), config, self.device)
        self._valid_step: Optional[FrameStep] = None
        self.streamer = self.make_streamer(self.splits.train, stream=0)
        t = config.train
        self.pretrain_streamer = self.make_streamer(self.splits.train, stream=1) if t.pretrain_steps else None
        self._build_optimisers()
        self._reset_counters()

    def _build_model(self) -> None:
        """The encoder on its device, wrapped in DDP under torchrun (pipelined runs average
        gradients themselves, from the same start on every rank)."""
        try:
            self.encoder = Encoder(**self.config.encoder_kwargs(self.num_parameters)).to(self.device)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"{self.config.source or 'config'}: encoder: {error}") from None
        self.pipeline = bool(self.config.train.pipeline)
        self.model: nn.Module = self.encoder
        if self.world.distributed and not self.pipeline:
            from torch.nn.parallel import DistributedDataParallel

            self.model = DistributedDataParallel(
                self.encoder, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        elif self.world.distributed:
            broadcast_module(self.encoder)

    def _build_optimisers(self) -> None:
        t = self.config.train
        fused = self.device.type in ("cpu", "cuda")  # one kernel for all weights: 0.35 -> 0.08 ms (demo, CPU)
        self.optimizer = torch.optim.Adam(self.encoder.parameters(), lr=t.lr, weight_decay=t.weight_decay, fused=fused)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, mode="min", factor=t.plateau_factor, patience=t.plateau_patience, min_lr=t.min_lr
        )
        self.pretrain_optimizer = (
            torch.optim.Adam(self.encoder.parameters(), lr=t.pretrain_lr, fused=fused) if t.pretrain_steps else None
        )
        self.average = WeightAverage(self.encoder, t.ema_decay)

    def _reset_counters(self) -> None:
        self.step = 0
        self.pretrain_step = 0
        self.epoch = 0
        self.best = math.inf
        self.bad_epochs = 0
        self.valid_faults = 0  # lanes that faulted in the last validation
        self.stopped_early = False
        self.out_of_time = False
        self.budget = TimeBudget(self)
        self.epoch_loss = [0.0, 0]
        self.history: List[Dict[str, Any]] = []
        self.elapsed = 0.0
        self.pending_stream: Optional[dict] = None  # pipelined: the stream before the prefetched batch
        self.stream_before: Optional[dict] = None  # the stream before the step in flight
        self.in_update = False  # inside the optimiser's update
        self.in_flight: Dict[str, Any] = {}  # stage -> (batch, dataset) being rendered, for fault reports

    def _start(self, resume_run: bool, overwrite: bool) -> None:
        """Resume, start over or refuse; then the resolved config and the log in the run folder."""
        checkpoint = self.run_dir / CHECKPOINT
        if resume_run and checkpoint.is_file():
            resume.restore(self, load_checkpoint(checkpoint))
        elif resume_run:
            self.note(f"no checkpoint in {self.run_dir} to resume; starting from scratch")
        elif overwrite and self.world.is_main:
            self.folder.overwrite()
        self.world.barrier()
        if not self.world.is_main:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        import yaml

        atomic_write_bytes(self.run_dir / CONFIG, yaml.safe_dump(self.config.to_dict(), sort_keys=False).encode())
        resumed = self.step > 0 or self.pretrain_step > 0

        def keep(row: Dict[str, str]) -> bool:
            limit = self.pretrain_step if row.get("phase") == "pretrain" else self.step
            return resumed and row.get("step", "").isdigit() and int(row["step"]) <= limit

        self.log = RunLog(self.run_dir, keep, self.config.train.tensorboard)

    def make_streamer(self, dataset: PairedAudioDataset, stream: int) -> FrameStreamer:
        """A shuffled stream of ``dataset`` for this rank's lanes (``stream`` 0: training, 1:
        pretraining; each deals its own clip order)."""
        try:
            return FrameStreamer(
                dataset,
                self.config.spsa.lanes,
                self.config.frame_size,
                self.config.encoder.context,
                seed=seeds.training_stream(self.config.seed, self.world.rank, stream),
                shuffle=True,
                min_clip_frames=self.config.data.min_clip_frames,
                features=self.encoder.stream_features(),
            )
        except ValueError as error:
            raise TrainingError(f"data: {error}") from None

    def _starting_settings(self, start_from: str) -> torch.Tensor:
        """The normalised settings pretraining regresses and progressive training holds: the
        chain's defaults, or the settings of a ``fit-static`` JSON."""
        if start_from == "defaults":
            return torch.tensor(np.asarray(self.chain.get_learned(), np.float32))
        try:
            return torch.tensor(load_static(start_from, self.names))
        except (FileNotFoundError, ValueError) as error:
            raise TrainingError(f"train.start_from: {error}") from None

    # ------------------------------------------------------------------ parameters

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

    def masked(self, theta: torch.Tensor) -> torch.Tensor:
        """``theta`` with the parameters not yet released held at the starting settings."""
        mask = self.active_mask()
        if bool(mask.all()):
            return theta
        return torch.where(mask.to(theta.device), theta, self.defaults.to(theta.device, theta.dtype))

    def request_stop(self, reason: str = "stop requested") -> None:
        """Finish the current step, write a checkpoint and raise :class:`TrainingInterrupted`."""
        self._stop_requested = True
        self.stop_reason = reason

    def _interrupt_plugins(self) -> None:
        """A signal asked for a stop: the plugin layers give up on a call still waiting half a
        second from now (a hung plugin), and the loop keeps the last completed step."""
        self.layer.interrupt()
        if self._valid_step is not None:
            self._valid_step.layer.interrupt()

    def note(self, message: str) -> None:
        """A line for the user (rank 0), printed above the progress bar."""
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

    def stream_state(self) -> dict:
        """The training stream's state as of the last completed step."""
        return self.pending_stream if self.pending_stream is not None else self.streamer.state_dict()

    def state_dict(self) -> Dict[str, Any]:
        """Everything a checkpoint holds (collective under DDP: every rank must call it)."""
        return resume.state_dict(self)

    def save(self, name: str = CHECKPOINT):
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
                f"({listed}; {spsa_settings(self.config)})"
            )
        state = self.state_dict()
        path = save_checkpoint(self.run_dir / name, state) if self.world.is_main else None
        self.world.barrier()
        return path

    def warm_lanes(self) -> None:
        """After a resume: warm the new plugin instances up (:func:`fxgrad.train.resume.warm_lanes`)."""
        resume.warm_lanes(self)

    # ------------------------------------------------------------------ steps

    def clip_gradients(self, phase: str = "train") -> float:
        counter = self.pretrain_step if phase == "pretrain" else self.step
        what = f"{phase} step {counter + 1}: the encoder's gradient"
        return clip_gradients(self.encoder.parameters(), self.config.train.grad_clip, self.config, what)

    def pretrain_step_once(self) -> Dict[str, Any]:
        """One pretraining step: the encoder regresses the starting settings."""
        batch = next(self.pretrain_streamer)
        theta = self.model(batch.context.to(self.device))
        target = self.defaults.to(self.device).expand_as(theta)
        loss = torch.nn.functional.mse_loss(theta, target)
        self.pretrain_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.world.distributed and self.model is self.encoder:  # pipelined runs: no DDP wrapper
            average_gradients(self.encoder.parameters(), self.world.world_size)
        norm = self.clip_gradients("pretrain")
        self.pretrain_optimizer.step()
        return {"loss": float(loss.detach()), "grad_norm": norm}

    def train_step_once(self) -> Dict[str, Any]:
        """One training step through the plugins."""
        self.stream_before = self.streamer.state_dict()
        self.in_update = False
        batch = next(self.streamer)
        self.in_flight["train"] = (batch, self.splits.train)
        theta = self.masked(self.model(batch.context.to(self.device)))
        result = self.frame_step(batch, theta, f"train step {self.step + 1}")
        self.optimizer.zero_grad(set_to_none=True)
        result.loss.backward()
        faults = self.faults.after_step(self.layer, "train", self.step + 1, self.streamer, batch)
        norm = self.clip_gradients()
        self.in_update = True
        self.optimizer.step()
        self.average.update(self.encoder)
        return {"loss": result.healthy_loss, "grad_norm": norm, "faults": faults}

    # ------------------------------------------------------------------ validation and epochs

    @torch.no_grad()
    def validate(self, max_frames: Optional[int] = None) -> Optional[float]:
        """Mean loss over the validation clips (streamed whole, one lane per clip, parameters
        from the encoder in eval mode, plugins only rendered); ``None`` without validation data."""
        dataset = self.splits.valid
        if dataset is None:
            return None
        lanes = min(self.config.spsa.lanes, len(dataset))
        if self._valid_step is None:
            layer = render_layer(self.chain, self.config, lanes, self.threads, self.plugin_log)
            self._valid_step = FrameStep(layer, self.frame_step.loss_fn, self.config, self.device)
        streamer = FrameStreamer(
            dataset,
            lanes,
            self.config.frame_size,
            self.config.encoder.context,
            shuffle=False,
            min_clip_frames=self.config.data.min_clip_frames,
            features=self.encoder.stream_features(),
        )
        total, count = 0.0, 0
        self.valid_faults = 0
        max_frames = max_frames if max_frames is not None else self.config.train.valid_frames
        with self.average.evaluating(self.encoder) as encoder:  # the weights' average with train.ema_decay
            for batch in streamer:
                self.in_flight["validation"] = (batch, dataset)
                theta = self.masked(encoder(batch.context.to(self.device)))
                index = batch.active.nonzero().squeeze(1)
                result = self._valid_step(batch, theta, f"validation after step {self.step}", lanes=index)
                self.valid_faults += self.faults.after_step(
                    self._valid_step.layer, "validation", self.step, batch=batch, dataset=dataset
                )
                total += result.healthy_loss * len(index)
                count += len(index)
                if max_frames and count >= max_frames:
                    break
        return total / max(count, 1)

    def end_epoch(self) -> Dict[str, Any]:
        """Validation, the schedule, early stopping, the epoch's log row and ``best.pt``."""
        train_loss = mean_over_ranks(self.epoch_loss[0] / max(self.epoch_loss[1], 1), self.world)
        valid_loss = None
        if self.splits.valid is not None:
            started = time.monotonic()
            valid_loss = self.world.from_main(self.validate() if self.world.is_main else None)
            self.budget.validation_s = time.monotonic() - started
        self.epoch += 1  # after validation: an interrupted one leaves the epoch to be ended on resume
        monitor = valid_loss if valid_loss is not None else train_loss  # see best_by
        self.scheduler.step(monitor)
        # A validation in which plugins faulted leaves those lanes' frames out: its loss is not
        # comparable, so it neither becomes best.pt nor counts against early stopping.
        untrusted = valid_loss is not None and self.valid_faults > 0 and monitor < self.best
        improved = monitor < self.best and not untrusted
        if untrusted:
            self.note(
                f"validation after step {self.step}: {self.valid_faults} lane(s) faulted; {BEST} is not chosen on it"
            )
        if improved:
            self.best = monitor
            self.bad_epochs = 0
        elif not untrusted:
            self.bad_epochs += 1
        patience = self.config.train.early_stopping
        if patience and self.bad_epochs >= patience:
            self.stopped_early = True
        lr = self.optimizer.param_groups[0]["lr"]
        record = {"epoch": self.epoch, "step": self.step, "train_loss": train_loss, "valid_loss": valid_loss}
        record.update(lr=lr, improved=improved)
        self.history.append(record)
        self.epoch_loss = [0.0, 0]
        if self.log is not None:
            self.log.row(
                phase="epoch",
                step=self.step,
                epoch=self.epoch,
                loss=train_loss,
                valid_loss=valid_loss,
                lr=lr,
                elapsed_s=self.elapsed,
                faults=self.valid_faults if valid_loss is not None else None,
            )
        if improved:
            self.save(BEST)
        return record

    # ------------------------------------------------------------------ the run

    def check_stop(self) -> bool:
        """Whether any rank was asked to stop; also sets :attr:`out_of_time` when any rank has used
        its phase's time (:class:`~fxgrad.train.budget.TimeBudget`; one all-reduce for both, so
        every rank agrees)."""
        stop, late = stop_flags(self._stop_requested, self.budget.late(), self.device, self.world)
        self.out_of_time = self.out_of_time or late
        return stop

    def fit(self) -> Dict[str, Any]:
        """Run (or continue) training; returns a summary dict. Raises
        :class:`TrainingInterrupted` after Ctrl-C/SIGTERM once the checkpoint is written."""
        restore = install_stop_handlers(
            self.request_stop, lambda: self._stop_requested, self.note, self._interrupt_plugins
        )
        self.budget.restart()
        self.out_of_time = False
        try:
            if self.pretrain_step < self.config.train.pretrain_steps and self.step == 0:
                PhaseLoop(self, "pretrain").run()  # until its steps or its share of the time budget
                self.out_of_time = False
            self.budget.phase = "train"
            if self.step < self.config.train.steps and not self.stopped_early and not self.out_of_time:
                PhaseLoop(self, "train").run()
        finally:
            restore()
            self.close()
        if self.world.distributed:
            check_replicas(self.encoder, self.world, self.note)
        return self.summary()

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
