"""Where a training step's time goes, and what pipelining the plugins with the encoder saves.

Trains the demo chain (fxgrad's Compressor -> ParametricEQ on generated audio) with a
DeepAFx-sized encoder for a few hundred steps, twice: serial steps, then ``train.pipeline`` (the
plugins of step t run on native threads while the encoder computes step t+1's parameters).
Separately it times the encoder alone (forward + backward, on the training device) and the
plugins alone (the rack's forward + SPSA vjp on its threads), and prints steps/s and the split.
A pipelined step should cost about max(encoder, plugins) rather than their sum.

    python bench/overlap_bench.py --device cuda --lanes 64 --threads 16 --steps 200
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from fxgrad.config import Config
from fxgrad.train import Trainer, read_log

HERE = Path(__file__).resolve().parent


def _overrides(args, pipeline: bool, run_dir: Path):
    return [
        f"output_dir={run_dir}",
        f"device={args.device}",
        f"train.steps={args.steps}",
        f"train.steps_per_epoch={args.steps + 1}",
        f"train.checkpoint_every={args.steps + 1}",
        "train.pretrain_steps=0",
        "train.log_every=1",
        f"train.pipeline={'true' if pipeline else 'false'}",
        f"spsa.lanes={args.lanes}",
        f"spsa.threads={args.threads}",
        f"spsa.perturbations={args.perturbations}",
        f"spsa.strategy={args.strategy}",
        f"encoder.context={args.context}",
        f"encoder.n_mels={args.mels}",
        "encoder.options={}",
        f"data.synthetic.train_clips={args.clips}",
        "data.synthetic.valid_clips=2",
        "data.synthetic.test_clips=2",
    ]


def _median_after_warmup(rows, key, warmup):
    values = [float(r[key]) for r in rows if r.get("phase") == "train" and r.get(key) not in (None, "")]
    return statistics.median(values[warmup:]) if len(values) > warmup else float("nan")


def run_training(args, pipeline: bool, root: Path):
    run_dir = root / ("pipelined" if pipeline else "serial")
    config = Config.load(args.config, _overrides(args, pipeline, run_dir))
    trainer = Trainer(config, overwrite=True, progress=False)
    started = time.perf_counter()
    trainer.fit()
    wall = time.perf_counter() - started
    rows = read_log(config.run_dir / "log.csv")
    return trainer, {
        "step_s": _median_after_warmup(rows, "step_s", args.warmup),
        "plugins_s": _median_after_warmup(rows, "plugins_s", args.warmup),
        "wall_s": wall,
    }


def time_encoder(trainer: Trainer, args) -> float:
    """Median forward + backward of the encoder alone on one batch of contexts."""
    encoder = trainer.encoder
    device = trainer.device
    contexts = torch.randn(args.lanes, 1, args.context, device=device) * 0.1
    times = []
    for i in range(args.warmup + 20):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        theta = encoder(contexts)
        theta.sum().backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= args.warmup:
            times.append(time.perf_counter() - started)
        encoder.zero_grad(set_to_none=True)
    return statistics.median(times)


def time_plugins(trainer: Trainer, args) -> float:
    """Median rack forward + vjp of one frame per lane, on the rack's own threads."""
    layer = trainer.layer
    n = trainer.config.frame_size
    rng = np.random.default_rng(0)
    x = torch.from_numpy((rng.standard_normal((args.lanes, trainer.config.channels, n)) * 0.1).astype(np.float32))
    theta = torch.full((args.lanes, layer.num_parameters), 0.5, requires_grad=True)
    times = []
    for i in range(args.warmup + 20):
        started = time.perf_counter()
        y = layer(x, theta)
        y.sum().backward()
        if i >= args.warmup:
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(HERE.parent / "configs" / "demo.yaml"))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--lanes", type=int, default=64)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--perturbations", type=int, default=1)
    parser.add_argument("--strategy", default="lockstep")
    parser.add_argument("--context", type=int, default=40960, help="encoder context (DeepAFx: 40960)")
    parser.add_argument("--mels", type=int, default=128)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--output", help="run folder (default: a temporary one)")
    args = parser.parse_args()

    root = Path(args.output) if args.output else Path(tempfile.mkdtemp(prefix="fxgrad-overlap-"))
    print(
        f"device {args.device}"
        + (f" ({torch.cuda.get_device_name()})" if args.device.startswith("cuda") else "")
        + f", {os.cpu_count()} CPU cores, rack threads {args.threads}, lanes {args.lanes}, "
        f"encoder context {args.context}, {args.mels} mels, strategy {args.strategy}, K={args.perturbations}"
    )

    trainer, serial = run_training(args, pipeline=False, root=root)
    encoder_s = time_encoder(trainer, args)
    plugins_s = time_plugins(trainer, args)
    _, pipelined = run_training(args, pipeline=True, root=root)

    print()
    print(f"{'what':44s} {'ms':>9s}")
    print(f"{'encoder forward+backward alone (' + args.device + ')':44s} {encoder_s * 1e3:9.1f}")
    print(f"{'plugins forward+vjp alone (CPU threads)':44s} {plugins_s * 1e3:9.1f}")
    print(f"{'sum':44s} {(encoder_s + plugins_s) * 1e3:9.1f}")
    print(f"{'max':44s} {max(encoder_s, plugins_s) * 1e3:9.1f}")
    print(f"{'serial training step (median)':44s} {serial['step_s'] * 1e3:9.1f}")
    print(f"{'  of which in the plugins':44s} {serial['plugins_s'] * 1e3:9.1f}")
    print(f"{'pipelined training step (median)':44s} {pipelined['step_s'] * 1e3:9.1f}")
    print()
    print(
        f"steps/s: serial {1 / serial['step_s']:.2f}, pipelined {1 / pipelined['step_s']:.2f} "
        f"(x{serial['step_s'] / pipelined['step_s']:.2f}); pipelined step / max(encoder, plugins) = "
        f"{pipelined['step_s'] / max(encoder_s, plugins_s):.2f}, / sum = "
        f"{pipelined['step_s'] / (encoder_s + plugins_s):.2f}"
    )
    print(
        f"wall: serial run {serial['wall_s']:.0f} s, pipelined run {pipelined['wall_s']:.0f} s "
        f"({args.steps} steps each)"
    )


if __name__ == "__main__":
    main()
