"""A trainer's checkpoint state: what it holds, what a resumed run must match, and the lanes' warm-up.

Third-party plugins cannot hand over their DSP state, so a resumed run gets new plugin instances:
:func:`warm_lanes` renders each lane's recent input through them before training continues.

``trainer`` is the :class:`~fxgrad.train.trainer.Trainer` this works for; it is not imported
here, since the trainer imports this module (the import graph has no cycle).
"""

from __future__ import annotations

import math
from typing import Any, Dict, List

import numpy as np
import torch

from ..data.stream import contexts
from ..io.params import parameter_units
from .checkpoint import rng_state, set_rng_state
from .errors import TrainingError
from .files import CHECKPOINT

# Keys a resumed run may change; anything else must match the checkpoint's config.
RESUMABLE = {
    "name",
    "output_dir",
    "device",
    "train",
    "fit_static",
    "spsa.threads",
    # How faults are contained and budgeted (outputs are bit-identical for any worker count):
    # what the budget-stop message says to raise.
    "spsa.workers",
    "spsa.timeout_s",
    "spsa.max_faults",
    "spsa.max_faults_per_minute",
    # Pinning the culprit of a fault (the budget-stop message's advice) as long as the learned
    # parameters stay the same (checked by name in check_compatible).
    "chain.pinned",
    "data.cache_size",
    "data.synthetic.folder",
    "data.test",
}
# The train keys that shape the run (its epochs and phases): these may not change on resume.
STRUCTURAL_TRAIN = {"steps_per_epoch", "pretrain_steps", "progressive_steps", "pipeline"}


def state_dict(trainer: Any) -> Dict[str, Any]:
    """Everything a checkpoint holds (collective under DDP: every rank must call it)."""
    per_rank = trainer.world.gather(
        {
            "stream": trainer.stream_state(),
            "pretrain_stream": trainer.pretrain_streamer.state_dict() if trainer.pretrain_streamer else None,
            "layer_step": int(trainer.layer.step),
            "rng": rng_state(),
        }
    )
    optimisers = {
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "pretrain_optimizer": trainer.pretrain_optimizer.state_dict() if trainer.pretrain_optimizer else None,
    }
    counters = {key: getattr(trainer, key) for key in ("step", "pretrain_step", "epoch", "best", "bad_epochs")}
    return {
        "config": trainer.config.to_dict(),
        # The dict Chain.from_config() took (Chain.to_config() would lose "fxgrad:NAME" sources).
        "chain": trainer.config.chain_config(),
        "parameters": trainer.names,
        "units": parameter_units(trainer.chain),
        "defaults": trainer.defaults.tolist(),
        "active": trainer.active_mask().tolist(),
        "encoder": trainer.config.encoder_kwargs(trainer.num_parameters),
        # The weights validation measured (their average with train.ema_decay: see averaging.py).
        "model": trainer.average.module(trainer.encoder).state_dict(),
        "averaging": trainer.average.state(trainer.encoder),
        **optimisers,
        **counters,
        "stopped_early": trainer.stopped_early,
        "epoch_loss": list(trainer.epoch_loss),
        "history": trainer.history,
        "elapsed": trainer.elapsed,
        "world_size": trainer.world.world_size,
        "data": data_fingerprints(trainer),
        "ranks": per_rank,
    }


def data_fingerprints(trainer: Any) -> Dict[str, Any]:
    valid = trainer.splits.valid
    return {"train": trainer.splits.train.fingerprint(), "valid": valid.fingerprint() if valid is not None else None}


def check_compatible(trainer: Any, state: Dict[str, Any]) -> None:
    """Raise :class:`TrainingError` unless ``state`` can be resumed by this trainer: the same
    config where a run cannot change, the same clips (folders may move), the same process count."""
    differences = incompatible(state["config"], trainer.config.to_dict())
    moved = [d for d in differences if d.startswith(("data.train.", "data.valid."))]
    same_clips = state.get("data") == data_fingerprints(trainer)
    if "data" in state and not same_clips:
        differences.append("the clips in the data folders are not the run's (names or lengths differ)")
    elif moved and same_clips:
        trainer.note("data folders moved, same clips (names and lengths): resuming")
        differences = [d for d in differences if d not in moved]
    if list(state.get("parameters", trainer.names)) != list(trainer.names):
        old, new = list(state["parameters"]), list(trainer.names)
        gone, added = [n for n in old if n not in new], [n for n in new if n not in old]
        differences.append(
            "the learned parameters changed ("
            + "; ".join(
                part
                for part in (
                    f"no longer learned: {', '.join(gone)}" if gone else "",
                    f"new: {', '.join(added)}" if added else "",
                )
                if part
            )
            + (") " if gone or added else "their order) ")
            + "- pin only parameters the run does not learn, or set chain.learned to the run's list"
        )
    if differences:
        raise TrainingError(
            f"cannot resume {trainer.run_dir / CHECKPOINT}: the config changed where a run cannot: "
            + "; ".join(differences)
            + " (use --overwrite to start over, or another output_dir)"
        )
    if state["world_size"] != trainer.world.world_size:
        raise TrainingError(
            f"the checkpoint was written by {state['world_size']} processes, this run has "
            f"{trainer.world.world_size}: each rank resumes its own lanes; relaunch with the same process count"
        )


def restore(trainer: Any, state: Dict[str, Any]) -> None:
    """Continue from ``state`` (checked first), then warm the new plugin instances up."""
    check_compatible(trainer, state)
    trainer.average.restore(trainer.encoder, state)
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.scheduler.load_state_dict(state["scheduler"])
    if trainer.pretrain_optimizer is not None and state.get("pretrain_optimizer"):
        trainer.pretrain_optimizer.load_state_dict(state["pretrain_optimizer"])
    for key in ("step", "pretrain_step", "epoch", "bad_epochs"):
        setattr(trainer, key, int(state[key]))
    trainer.best = float(state["best"])
    trainer.stopped_early = bool(state["stopped_early"])
    trainer.epoch_loss = list(state["epoch_loss"])
    trainer.history = list(state["history"])
    trainer.elapsed = float(state["elapsed"])
    mine = state["ranks"][trainer.world.rank]
    trainer.streamer.load_state_dict(mine["stream"])
    if trainer.pretrain_streamer is not None and mine["pretrain_stream"] is not None:
        trainer.pretrain_streamer.load_state_dict(mine["pretrain_stream"])
    trainer.layer.step = int(mine["layer_step"])
    set_rng_state(mine["rng"])
    warm_lanes(trainer)
    # Faults of the warm-up are the resumed run's first: logged with the clip each lane resumes.
    state, dataset, frame = trainer.stream_state(), trainer.splits.train, trainer.config.frame_size
    where = {
        lane: {"clip": str(dataset.pairs[clip][0]), "position_samples": position * frame}
        for lane, (clip, position) in enumerate(zip(state["lane_clip"], state["lane_frame"]))
        if clip >= 0
    }
    trainer.faults.record(trainer.layer.take_faults(), "resume warm-up", trainer.step, trainer.layer, where)


def incompatible(old: Dict[str, Any], new: Dict[str, Any], where: str = "") -> List[str]:
    """The dotted keys (with old -> new values) where two configs differ and a run cannot."""
    out = []
    for key in sorted(set(old) | set(new)):
        dotted = f"{where}.{key}" if where else key
        a, b = old.get(key), new.get(key)
        if dotted == "train":
            out += [
                f"train.{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(STRUCTURAL_TRAIN) if a.get(k) != b.get(k)
            ]
            continue
        if dotted in RESUMABLE:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            out += incompatible(a, b, dotted)
        elif a != b:
            out.append(f"{dotted}: {a!r} -> {b!r}")
    return out


def warm_lanes(trainer: Any) -> None:
    """After a resume: the lanes' plugin instances are new, so every lane part-way through a
    clip is reset and warmed up on the ``train.resume_preroll`` seconds of that clip's input
    preceding its position (zeros before the clip's start; rounded up to a multiple of the
    chain's block size):

    1. ``layer.reset_lanes(mask, preroll)`` renders the preroll's head through all of the
       lane's chains at the chain's preset parameters;
    2. its last ``train.resume_warmup_frames`` frames then go through each lane's main chain
       frame by frame, with the parameters the restored encoder predicts for them, so that
       envelopes and filters end where the interrupted run's (approximately) were.

    The perturbed (lockstep) instances only get step 1. A resumed run therefore matches an
    uninterrupted one within a tolerance, not bit for bit."""
    config = trainer.config
    block, frame = config.block_size, config.frame_size
    samples = int(math.ceil(config.train.resume_preroll * config.sample_rate / block)) * block
    tail = min(config.train.resume_warmup_frames, samples // frame)
    head = samples - tail * frame
    mask, preroll, clips = _prerolls(trainer, samples)
    if not mask.any():
        return
    trainer.layer.reset_lanes(mask, preroll[:, :, :head] if head else None)
    if not tail:
        return
    lanes, channels, window = config.spsa.lanes, config.channels, config.encoder.context
    encoder = trainer.encoder
    saved = {n: b.clone() for n, b in encoder.named_buffers()}
    with torch.no_grad():
        for j in range(tail):
            context = torch.zeros(lanes, channels, window)
            for lane, (audio, position) in clips.items():
                index = position - tail + j
                context[lane] = contexts(audio, frame, window, index, index + 1)[0]
            theta = trainer.masked(encoder(context.to(trainer.device))).float().cpu()
            # Lanes outside the mask reset on the next step anyway.
            trainer.frame_step.render(preroll[:, :, head + j * frame : head + (j + 1) * frame], theta)
        for name, buffer in encoder.named_buffers():
            buffer.copy_(saved[name])


def _prerolls(trainer: Any, samples: int) -> tuple:
    """Which lanes are part-way through a clip, the ``samples`` of input before each one's
    position (M, C, samples), and each such lane's clip audio and frame position."""
    config, dataset, state = trainer.config, trainer.splits.train, trainer.stream_state()
    lanes, frame = config.spsa.lanes, config.frame_size
    mask = np.zeros(lanes, bool)
    preroll = torch.zeros(lanes, config.channels, samples)
    clips: Dict[int, tuple] = {}
    for lane, (clip, position) in enumerate(zip(state["lane_clip"], state["lane_frame"])):
        if clip < 0 or position <= 0 or position * frame >= dataset.num_samples(clip):
            continue  # no clip yet, or a new clip (and a reset) comes next step
        mask[lane] = True
        audio = dataset[clip][0]
        clips[lane] = (audio, position)
        start = position * frame
        piece = audio[:, max(0, start - samples) : start]
        preroll[lane, :, samples - piece.shape[-1] :] = piece
    return mask, preroll, clips
