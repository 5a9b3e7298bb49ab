#!/usr/bin/env python3
"""Where a training step's time goes: the data stream, the encoder's forward, the plugins
(forward + SPSA renders), the loss, the backward pass (encoder and loss, the rack's share taken
out), and gradient clipping + Adam, for several encoders on the same config, side by side.

Each variant is a :class:`fxgrad.train.Trainer` of the config; after a warm-up they take turns
in blocks of ``--block`` steps for ``--rounds`` rounds, so slow drifts of a shared machine hit
all of them. The "no encoder" variant replaces the encoder by the mean of its input -> one
linear layer -> sigmoid: the floor of everything a step does besides the encoder.

    .venv/bin/python bench/step_split.py --rounds 6            # configs/demo.yaml
    .venv/bin/python bench/step_split.py --config tube_amp --set encoder.context=16384
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import torch

INCEPTION = ["encoder.backbone=inception", "encoder.options={stem_channels: 16, block_channels: [16, 32, 64]}"]
VARIANTS = {
    "inception, log-mel per window": INCEPTION + ["encoder.features=window"],
    "inception, log-mel per clip": INCEPTION + ["encoder.features=clip"],
    "temporal, log-mel per clip": ["encoder.backbone=temporal", "encoder.options={}", "encoder.features=clip"],
    "no encoder (the floor)": INCEPTION + ["encoder.features=clip"],
}
KEYS = ("stream", "encoder", "plugins", "loss", "backward", "optimiser", "step")


class NoEncoder(torch.nn.Module):
    """theta from the mean of the encoder's input alone: no network to speak of."""

    def __init__(self, parameters: int):
        super().__init__()
        self.head = torch.nn.Linear(1, parameters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.head(x.flatten(1).mean(dim=1, keepdim=True)))


def steps(trainer, times, count: int) -> None:
    """``count`` training steps as ``Trainer.train_step_once`` takes them, each part timed."""
    from fxgrad.nn.losses import frame_loss

    rack = trainer.layer.rack
    # On a GPU each part's kernels are waited for before its clock stops (they run asynchronously).
    sync = torch.cuda.synchronize if trainer.device.type == "cuda" else lambda: None

    def now() -> float:
        sync()
        return time.perf_counter()

    for _ in range(count):
        a = now()
        batch = next(trainer.streamer)
        b = now()
        theta = trainer.masked(trainer.model(batch.context.to(trainer.device)))
        c = now()
        output = trainer.frame_step.render(batch.frame, theta, batch.reset)
        d = now()
        loss = frame_loss(trainer.frame_step.loss_fn, output, batch.target.to(trainer.device), batch.valid_samples)
        e = now()
        before = rack.stats()["wall_seconds"]
        trainer.optimizer.zero_grad()
        loss.backward()
        f = now()
        vjp = rack.stats()["wall_seconds"] - before
        torch.nn.utils.clip_grad_norm_(trainer.model.parameters(), 4.0)
        trainer.optimizer.step()
        g = now()
        for key, value in zip(KEYS, (b - a, c - b, d - c + vjp, e - d, f - e - vjp, g - f, g - a)):
            times[key].append(value)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="demo")
    p.add_argument("--set", action="append", default=[], help="config override KEY=VALUE (every variant)")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--block", type=int, default=50)
    args = p.parse_args(argv)
    from fxgrad.config.schema import Config
    from fxgrad.train import Trainer

    folder = tempfile.mkdtemp(prefix="step_split_")
    trainers, times = {}, {}
    for index, (name, overrides) in enumerate(VARIANTS.items()):
        config = Config.load(args.config, [f"output_dir={folder}/{index}"] + args.set + overrides)
        if config.data.synthetic is not None and not config.data.synthetic.folder:
            config.data.synthetic.folder = f"{folder}/data"  # one data set for all variants
        trainer = Trainer(config, overwrite=True, progress=False)
        if name.startswith("no encoder"):
            trainer.model = NoEncoder(trainer.num_parameters)
            trainer.optimizer = torch.optim.Adam(trainer.model.parameters(), lr=1e-3)
        trainers[name], times[name] = trainer, {key: [] for key in KEYS}
    print(f"step_split: {args.config}, torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}")
    for trainer in trainers.values():
        steps(trainer, {key: [] for key in KEYS}, 20)  # warm-up
    for _ in range(args.rounds):
        for name, trainer in trainers.items():
            steps(trainer, times[name], args.block)
    print(f"{'encoder':>30} " + " ".join(f"{k:>9}" for k in KEYS) + "  non-plugin / plugin (ms per step, means)")
    for name, recorded in times.items():
        mean = {key: 1e3 * statistics.mean(values) for key, values in recorded.items()}
        ratio = (mean["step"] - mean["plugins"]) / mean["plugins"]
        print(f"{name:>30} " + " ".join(f"{mean[k]:9.2f}" for k in KEYS) + f"  {ratio:.2f}")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
