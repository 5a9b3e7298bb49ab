"""Training and validation loss curves of runs, side by side, as one PNG.

    python scripts/curves.py runs/i15/mastering_medium_mrstft-k4-s0 runs/i15/mastering_medium_mrstft-k4-s1 ... \
        --static runs/i15/mastering_medium_mrstft/static.json --out curves.png [--title "..."] [--window 250]

Each RUN is a run folder of ``fxgrad train`` (its ``log.csv``). Left: the training loss (the
``train`` rows, a moving mean over ``--window`` steps, so that SPSA's per-step noise does not
hide the trend); right: the validation loss of each epoch. ``--static`` draws the static
setting's training loss (``fxgrad fit-static``'s mean over its last tenth) on the left, the level
a model starting from that setting has to go below. Pretraining rows are left out: their loss
is the regression to the start setting, another quantity.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

from fxgrad.io.plot import _pyplot, _save  # noqa: E402
from fxgrad.train import LOG, read_log  # noqa: E402


def curves(run: Path):
    """(steps, training losses), (epoch-end steps, validation losses) of ``run``'s log."""
    path = run / LOG
    if not path.is_file():
        raise SystemExit(f"curves: {path} does not exist (is {run} an fxgrad train run folder?)")
    train, valid = [], []
    for row in read_log(path):
        if row["phase"] == "train" and row["loss"]:
            train.append((int(row["step"]), float(row["loss"])))
        elif row["phase"] == "epoch" and row["valid_loss"]:
            valid.append((int(row["step"]), float(row["valid_loss"])))
    if not train:
        raise SystemExit(f"curves: {path} has no training rows yet")
    return np.array(train).T, (np.array(valid).T if valid else np.empty((2, 0)))


def moving_mean(steps: np.ndarray, values: np.ndarray, window: int):
    """The mean of ``values`` over the last ``window`` steps, at each logged step from the first
    full window on (the log holds every n-th step, so the window is counted in steps)."""
    ends = steps[steps - steps[0] + 1 >= window]
    means = [values[(steps > end - window) & (steps <= end)].mean() for end in ends]
    return ends, np.array(means)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="fxgrad train run folders")
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--static", type=Path, help="an fxgrad fit-static JSON: its training loss as a line")
    parser.add_argument("--window", type=int, default=250, help="moving-mean window of the training loss, in steps")
    parser.add_argument("--title", default="")
    args = parser.parse_args(argv)
    if args.window < 1:
        parser.error("--window must be at least 1")

    figure, (left, right) = _pyplot().subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for run in args.runs:
        (steps, losses), (epochs, valid) = curves(run)
        line = left.plot(*moving_mean(steps, losses, args.window), label=run.name, linewidth=1.2)[0]
        right.plot(epochs, valid, marker="o", markersize=3, linewidth=1, color=line.get_color(), label=run.name)
    if args.static is not None:
        level = json.loads(args.static.read_text())["loss"]
        left.axhline(level, color="black", linestyle="--", linewidth=1, label=f"static setting ({level:.3f})")
    left.set_title(f"training loss (mean over {args.window} steps)", fontsize=9)
    right.set_title("validation loss (each epoch)", fontsize=9)
    for axis in (left, right):
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
    left.set_ylabel("loss")
    left.legend(fontsize=7)
    _save(figure, args.out, dpi=100, title=args.title, palette=False)
    print(f"saved to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
