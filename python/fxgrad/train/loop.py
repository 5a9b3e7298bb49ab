"""One phase of a run (pretraining or training), step after step: records, log rows, the progress
bar, epochs, checkpoints and every way the phase can stop; and the lines that describe the run
when its training phase starts (:func:`describe`).

``trainer`` is the :class:`~fxgrad.train.trainer.Trainer` this works for; it is not imported
here, since the trainer imports this module (the import graph has no cycle).
"""

from __future__ import annotations

import math
import time
from typing import Any, Dict, List, Optional

from .. import _native
from .errors import TrainingError, TrainingInterrupted
from .faults import lane_positions
from .files import CHECKPOINT
from .pipelined import PipelinedSteps


class PhaseLoop:
    """Runs ``phase`` ("pretrain" or "train") of ``trainer`` to its step count, an early stop,
    the time budget or a requested stop (which raises :class:`TrainingInterrupted`)."""

    def __init__(self, trainer: Any, phase: str):
        self.trainer = trainer
        self.phase = phase
        t = trainer.config.train
        self.total = t.pretrain_steps if phase == "pretrain" else t.steps
        self.counter = "pretrain_step" if phase == "pretrain" else "step"
        self.window: List[Dict[str, Any]] = []
        self.smoothed: Optional[float] = None
        self.last_saved = self.position
        self.bar = None
        # This call's steps: their count and summed seconds (whole step, inside the plugins).
        self.timed = [0, 0.0, 0.0]

    @property
    def position(self) -> int:
        """The phase's step counter on the trainer."""
        return getattr(self.trainer, self.counter)

    def _steps(self):
        trainer = self.trainer
        if self.phase == "train" and trainer.pipeline:
            return PipelinedSteps(trainer)
        one = trainer.pretrain_step_once if self.phase == "pretrain" else trainer.train_step_once
        return iter(one, None)

    def run(self) -> None:
        trainer = self.trainer
        if trainer.progress:
            from tqdm import tqdm

            self.bar = tqdm(
                total=self.total, initial=self.position, desc=self.phase, unit="step", dynamic_ncols=True, leave=True
            )
        if self.phase == "train" and trainer.world.is_main and trainer.step == 0:
            trainer.note(describe(trainer))
        steps = self._steps()
        trainer.in_update = False
        trainer.stream_before = None
        try:
            while self.position < self.total:
                if self._one(steps):
                    break
        except KeyboardInterrupt as interrupt:
            if isinstance(interrupt, TrainingInterrupted):
                raise
            # A second Ctrl-C, a KeyboardInterrupt outside our handler (not the main thread), or a
            # step abandoned by the plugin layers after a stop was requested (a hung plugin).
            path = self._interrupted_mid_step()
            if trainer._stop_requested and path is not None:
                raise TrainingInterrupted(
                    f"{trainer.stop_reason} at {self.phase} step {self.position} (the step in flight was abandoned); "
                    f"checkpoint written to {path}",
                    path,
                ) from None
            raise
        finally:
            if self.bar is not None:
                self.bar.close()
            if hasattr(steps, "close"):
                steps.close()
        if self.position != self.last_saved:
            trainer.save()

    def _one(self, steps) -> bool:
        """One step and what follows it; True when the phase stops here."""
        trainer = self.trainer
        started = time.perf_counter()
        before = trainer.layer.rack.stats()
        try:
            record = next(steps)
        except _native.PluginError as error:
            raise self._stop_on_plugin_error(error) from None
        setattr(trainer, self.counter, self.position + 1)
        trainer.in_update = False
        trainer.stream_before = None  # the step is complete: the stream state is consistent
        duration = time.perf_counter() - started
        trainer.elapsed += duration
        optimiser = trainer.pretrain_optimizer if self.phase == "pretrain" else trainer.optimizer
        after = trainer.layer.rack.stats()
        record.update(
            phase=self.phase,
            step=self.position,
            step_s=duration,
            plugins_s=after["wall_seconds"] - before["wall_seconds"],
            dsp_s=after["dsp_seconds"] - before["dsp_seconds"],
            renders=after["evaluations"] - before["evaluations"],
            lr=optimiser.param_groups[0]["lr"],
        )
        self._account(record)
        epoch_done = self.phase == "train" and record["step"] % trainer.config.train.steps_per_epoch == 0
        if epoch_done:
            try:
                self._end_epoch()
            except _native.PluginError as error:  # past the budget in validation
                raise self._stop_on_plugin_error(error) from None
        return self._after(record["step"], epoch_done)

    def _account(self, record: Dict[str, Any]) -> None:
        """The record into the epoch's loss, the callbacks, the log window and the bar."""
        trainer = self.trainer
        loss = record["loss"]
        if not math.isnan(loss):  # NaN: every lane's plugins faulted this step
            self.smoothed = loss if self.smoothed is None else 0.95 * self.smoothed + 0.05 * loss
            if self.phase == "train":
                trainer.epoch_loss[0] += loss
                trainer.epoch_loss[1] += 1
        self.window.append(record)
        for callback in trainer.callbacks:
            callback(trainer, record)
        if len(self.window) >= trainer.config.train.log_every or record["step"] == self.total:
            self._flush()
        self.timed[0] += 1
        self.timed[1] += record["step_s"]
        self.timed[2] += record["plugins_s"]
        if self.phase == "train":
            trainer.budget.mean_step_s = self.timed[1] / self.timed[0]
        if self.bar is not None:
            self.bar.set_postfix_str(self.postfix(record), refresh=False)
            self.bar.update(1)

    def postfix(self, record: Dict[str, Any]) -> str:
        """The bar's figures: the smoothed loss, the learning rate, the last step's time and the
        mean step time of this call, and how the mean step splits between the plugins (the
        rack's calls) and everything else (encoder, loss, optimiser, data)."""
        count, step_s, plugins_s = self.timed
        mean_ms, plugins_ms = 1e3 * step_s / count, 1e3 * plugins_s / count
        return (
            f"loss {self.smoothed or math.nan:.4g}  lr {record['lr']:.2g}  step: last {record['step_s'] * 1e3:.0f} ms, "
            f"mean {mean_ms:.0f} ms = plugins {plugins_ms:.0f} + encoder & rest {mean_ms - plugins_ms:.0f} ms"
            + (f"  faults {self.trainer.faults.count}" if self.trainer.faults.count else "")
        )

    def _flush(self) -> None:
        if self.trainer.log is not None:
            self.trainer.log.steps(self.window, self.trainer.epoch, self.trainer.elapsed)
        self.window = []

    def _end_epoch(self) -> None:
        info = self.trainer.end_epoch()
        if self.bar is not None:
            valid = "" if info["valid_loss"] is None else f", valid {info['valid_loss']:.4g}"
            self.bar.write(
                f"epoch {info['epoch']}: train {info['train_loss']:.4g}{valid}, "
                f"lr {info['lr']:.2g}{'  (best)' if info['improved'] else ''}"
            )

    def _after(self, step: int, epoch_done: bool) -> bool:
        """Stops (requested, early, out of time) and periodic checkpoints after ``step``."""
        trainer = self.trainer
        if trainer.check_stop():
            self._flush()
            path = trainer.save()
            raise TrainingInterrupted(
                f"{trainer.stop_reason or 'interrupted'} at {self.phase} step {step}; checkpoint written to "
                f"{path or trainer.run_dir / CHECKPOINT}",
                trainer.run_dir / CHECKPOINT,
            )
        if trainer.stopped_early or trainer.out_of_time:
            trainer.note(self._stop_note(step))
            if trainer.out_of_time and self.phase == "train" and trainer.epoch_loss[1] and not epoch_done:
                self._end_epoch()  # the steps since the last epoch are validated too: best.pt
            trainer.save()
            self.last_saved = step
            return True
        if epoch_done or step % trainer.config.train.checkpoint_every == 0 or step == self.total:
            trainer.save()
            self.last_saved = step
        return False

    def _stop_note(self, step: int) -> str:
        trainer, t = self.trainer, self.trainer.config.train
        if trainer.stopped_early:
            return f"early stopping: no improvement for {trainer.bad_epochs} epochs"
        if self.phase == "pretrain":
            return f"pretraining stopped at step {step}: its share of train.max_seconds ({t.pretrain_share:g}) is used"
        return f"time limit: train.max_seconds={t.max_seconds:g} reached at {self.phase} step {step}"

    def _stop_on_plugin_error(self, error: _native.PluginError) -> TrainingError:
        """A plugin past its fault budget: the checkpoint of the last complete step is written
        (the step in flight is redrawn on resume) and the run ends with one clear error."""
        trainer, step = self.trainer, self.position

        def where(stage):
            return lane_positions(*trainer.in_flight[stage]) if stage in trainer.in_flight else None

        trainer.faults.record(trainer.layer.take_faults(), self.phase, step + 1, trainer.layer, where("train"))
        if trainer._valid_step is not None:
            layer = trainer._valid_step.layer
            trainer.faults.record(layer.take_faults(), "validation", step, layer, where("validation"))
        if self.phase == "train" and trainer.stream_before is not None:
            trainer.pending_stream = trainer.stream_before
        path = trainer.save()
        return TrainingError(
            f"{error}\ncheckpoint of {self.phase} step {step} written to "
            f"{path or trainer.run_dir / CHECKPOINT}; fault reports in {trainer.faults.path}"
        )

    def _interrupted_mid_step(self):
        """A KeyboardInterrupt inside a step: keep what can be kept; returns the checkpoint
        written (None when the last one stays)."""
        trainer, step = self.trainer, self.position
        if trainer.world.distributed:
            return None  # ranks may be at different points: keep the last periodic checkpoint
        if trainer.in_update:
            trainer.note(f"interrupted during the optimiser update; keeping the checkpoint of step {step}")
            return None
        if self.phase == "train" and trainer.stream_before is not None:
            # Interrupted inside a step: its batch was drawn but not learned from; save the
            # stream as it was before the batch, so a resume redraws it.
            trainer.pending_stream = trainer.stream_before
        path = trainer.save()
        if not trainer._stop_requested:
            trainer.note(f"interrupted at {self.phase} step {step}; checkpoint written to {path}")
        return path


def describe(trainer: Any) -> str:
    """The run in a few lines: folder, chain, data, lanes, encoder, where the plugins run."""
    c = trainer.config
    valid = trainer.splits.valid
    if valid is not None:
        clips = f"{len(valid)} validation clips"
    else:
        clips = (
            "no validation clips (no data.valid, and data.valid_split takes clips only from 2 or more): "
            "best.pt, the learning-rate schedule and early stopping follow each epoch's mean training loss"
        )
    where = (
        f" in {len(trainer.layer.rack.worker_pids)} isolated worker process(es)"
        if trainer.layer.isolation != "none"
        else " in this process"
    )
    parts = [
        f"run folder {trainer.run_dir}",
        f"chain {' -> '.join(p.name for p in trainer.chain.plugins)}; learned {', '.join(trainer.names)}",
        f"{len(trainer.splits.train)} training clips, {clips}",
        f"{c.spsa.lanes} lanes x {trainer.world.world_size} process(es), frames of {c.frame_size} samples with "
        f"{c.encoder.context}-sample context at {c.sample_rate} Hz; {c.spsa.strategy} SPSA, eps {c.spsa.eps}",
        f"{sum(p.numel() for p in trainer.encoder.parameters()):,} encoder weights ({c.encoder.backbone}) on "
        f"{trainer.device}; plugins on {trainer.threads} thread(s){where}"
        + ("; pipelined" if trainer.pipeline else ""),
    ]
    return "\n".join("  " + p for p in parts)
