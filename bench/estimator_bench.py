#!/usr/bin/env python3
"""Learning per plugin render: validation loss against plugin DSP-seconds (and renders and wall
seconds) for SPSA estimators and settings, on a task's config, over seeds.

Every run trains the task's config through :class:`fxgrad.train.Trainer` with the same budget of
plugin renders (``--budget`` frames rendered by the training rack: forward and perturbed
renders alike), so an estimator that renders more per step takes fewer steps. The validation
loss is measured ``--evals`` times, at equal shares of the budget (the trainer's epochs), with
early stopping off; pretraining, data, encoder and learning rate are the same for every
estimator. Each run is a fresh process, and its curve is appended to ``--out`` (JSON lines), so
an interrupted bench keeps what it finished and a second call skips what is there.

``--report`` then reads those lines and prints, per task and estimator, mean +- std over seeds
of the final best validation loss and of the DSP-seconds, renders and wall seconds each run took
to reach the validation loss that DeepAFx's estimator (seed for seed) ended with, as a share of
what DeepAFx's estimator took to reach it; ``--plot`` draws the curves (validation loss against
DSP-seconds, mean over seeds).

    .venv/bin/python bench/estimator_bench.py --task demo --seeds 0,1,2 --out bench/out/estimators.jsonl
    .venv/bin/python bench/estimator_bench.py --task tube_amp --estimators deepafx,orthogonal-k4 --budget 96000
    .venv/bin/python bench/estimator_bench.py --report bench/out/estimators.jsonl --plot docs/results/estimators.png
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

#: DeepAFx's estimator in full: two-sided Rademacher SPSA, K = 1, eps 0.01, the perturbed
#: instances streaming along (lockstep), each lane its own directions, no weight average.
DEEPAFX = {
    "estimator": "two-sided",
    "perturbations": 1,
    "eps": 0.01,
    "directions": "rademacher",
    "strategy": "lockstep",
    "shared": False,
    "baseline": 0.0,
    "train": {"ema_decay": 0.0},
}
#: The estimators and settings compared: ``spsa`` overrides (``lanes`` as a factor of the
#: task's lanes; ``train``: overrides of the train section). ``default`` is the task's config as
#: shipped; the other candidates change only what they name from it.
ESTIMATORS: Dict[str, dict] = {
    "deepafx": DEEPAFX,
    "default": {},
    "orthogonal-k2": {"perturbations": 2, "directions": "orthogonal"},
    "orthogonal-k4": {"perturbations": 4, "directions": "orthogonal"},
    "rademacher-k4": {"perturbations": 4},
    "baseline-0.9": {"baseline": 0.9},
    "baseline-0.5": {"baseline": 0.5},
    "guided-4": {"directions": "guided", "subspace": 4, "guided_share": 0.5},
    "shared": {"shared": True},
    "eps-0.001": {"eps": 0.001},
    "half-lanes": {"lanes": 0.5},
    "one-sided-snapshot": {"estimator": "one-sided", "strategy": "snapshot"},
    "shared-eps-0.001": {"shared": True, "eps": 0.001},
    "shared-one-sided": {"shared": True, "estimator": "one-sided", "strategy": "snapshot"},
    # The same estimators, validated (and saved) with the weights' moving average (train.ema_decay).
    "deepafx-ema-0.99": {**DEEPAFX, "train": {"ema_decay": 0.99}},
    "deepafx-ema-0.995": {**DEEPAFX, "train": {"ema_decay": 0.995}},
}
ESTIMATORS["shared-one-sided-ema-0.99"] = {**ESTIMATORS["shared-one-sided"], "train": {"ema_decay": 0.99}}
#: What every task runs with here: an encoder and lane count sized for 2 CPU cores, training from
#: the chain's defaults (no fit-static), no early stopping; the same for every estimator.
COMMON = [
    "encoder.context=16384",
    "encoder.n_mels=48",
    "encoder.features=clip",
    "encoder.options={stem_channels: 16, block_channels: [16, 32, 64]}",
    "train.start_from=defaults",
    "train.early_stopping=0",
    "train.checkpoint_every=1000000",
    "train.tensorboard=false",
]
TASK_LANES = {"demo": 16, "tube_amp": 16, "breath_removal": 16, "mastering": 16}


def renders_per_step(spsa: dict, parameters: int) -> int:
    """Frames one lane renders per step: the forward and the perturbed evaluations."""
    K = spsa["perturbations"]
    evaluations = 2 * parameters if spsa["estimator"] == "fd" else K * (1 if spsa["estimator"] == "one-sided" else 2)
    return 1 + evaluations


def task_config(task: str, overrides: List[str]):
    """The task's config with :data:`COMMON` and ``overrides``; synthetic data (the demo's) in one
    folder shared by every run of the bench."""
    from fxgrad.config.schema import Config

    config = Config.load(task, COMMON + overrides)
    if config.data.synthetic is not None and not config.data.synthetic.folder:
        config.data.synthetic.folder = str(Path(tempfile.gettempdir()) / f"estimators_{task}_data")
    return config


def prepare(task: str, overrides: List[str]) -> None:
    """Generates a synthetic task's data once, before runs in parallel would each write it."""
    from fxgrad.train.build import prepare_data

    config = task_config(task, [f"output_dir={tempfile.mkdtemp(prefix='estimators_')}"] + overrides)
    if config.data.synthetic is not None:
        prepare_data(config, progress=False)


def run_one(task: str, estimator: str, seed: int, budget: int, evals: int, overrides: List[str]) -> dict:
    """One training run (in this process); returns its curve."""
    import torch

    from fxgrad.train import Trainer, build_chain

    folder = tempfile.mkdtemp(prefix=f"estimators_{task}_")
    base = task_config(task, [f"output_dir={folder}/run", f"seed={seed}"] + overrides)
    lanes = TASK_LANES.get(task, base.spsa.lanes)
    spsa = dict(ESTIMATORS[estimator])
    lanes = max(1, int(round(lanes * spsa.pop("lanes", 1.0))))
    train = spsa.pop("train", {})
    settings = [f"spsa.lanes={lanes}"] + [f"spsa.{key}={json.dumps(value)}" for key, value in spsa.items()]
    settings += [f"train.{key}={json.dumps(value)}" for key, value in train.items()]
    config = task_config(task, [f"output_dir={folder}/run", f"seed={seed}"] + overrides + settings)
    parameters = build_chain(config).num_parameters
    s = config.spsa
    per_step = lanes * renders_per_step({"perturbations": s.perturbations, "estimator": s.estimator}, parameters)
    config.train.steps_per_epoch = max(1, budget // per_step // evals)
    steps = config.train.steps = config.train.steps_per_epoch * evals
    cumulative = {"dsp": [0.0], "renders": [0], "wall": [0.0]}

    def record(trainer, entry):
        if entry["phase"] != "train":
            return
        cumulative["dsp"].append(cumulative["dsp"][-1] + entry["dsp_s"])
        cumulative["renders"].append(cumulative["renders"][-1] + entry["renders"])
        cumulative["wall"].append(cumulative["wall"][-1] + entry["step_s"])

    started = time.time()
    trainer = Trainer(config, overwrite=True, progress=False, callbacks=[record])
    summary = trainer.fit()
    curve = [
        {
            "step": h["step"],
            "valid_loss": h["valid_loss"],
            "dsp_s": cumulative["dsp"][h["step"]],
            "renders": cumulative["renders"][h["step"]],
            "wall_s": cumulative["wall"][h["step"]],
        }
        for h in summary["history"]
    ]
    return {
        "task": task,
        "estimator": estimator,
        "seed": seed,
        "budget": budget,
        "lanes": lanes,
        "parameters": parameters,
        "spsa": {
            k: getattr(s, k)
            for k in (
                "eps",
                "perturbations",
                "estimator",
                "strategy",
                "directions",
                "shared",
                "baseline",
                "subspace",
                "guided_share",
            )
        },
        "ema_decay": config.train.ema_decay,
        "steps": steps,
        "curve": curve,
        "seconds": time.time() - started,
        "load_average": os.getloadavg()[0],
        "torch_threads": torch.get_num_threads(),
    }


def done_runs(path: Path) -> List[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def best_so_far(curve: List[dict]) -> List[float]:
    best, out = math.inf, []
    for point in curve:
        best = min(best, point["valid_loss"])
        out.append(best)
    return out


def cost_to_reach(curve: List[dict], target: float, key: str) -> float:
    """The ``key`` (dsp_s, renders, wall_s) spent when the best validation loss first reached
    ``target``; inf if it never did."""
    for point, best in zip(curve, best_so_far(curve)):
        if best <= target:
            return point[key]
    return math.inf


def mean_std(values: List[float]) -> str:
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) < len(values):
        return f"not reached by {len(values) - len(finite)} of {len(values)}" + (
            f" (others {statistics.mean(finite):.3g})" if finite else ""
        )
    if len(finite) == 1:
        return f"{finite[0]:.3g}"
    return f"{statistics.mean(finite):.3g} ± {statistics.stdev(finite):.2g}"


def report(runs: List[dict]) -> str:
    """Per task and estimator: the final best validation loss and the costs to reach DeepAFx's
    (seed for seed), absolute and as a share of DeepAFx's own cost to reach it."""
    lines = []
    for task in sorted({r["task"] for r in runs}):
        mine = [r for r in runs if r["task"] == task]
        reference = {r["seed"]: r for r in mine if r["estimator"] == "deepafx"}
        lines.append(f"\n{task} (budget {mine[0]['budget']:,} renders; seeds paired with deepafx's)")
        lines.append(
            "| estimator | seeds | final best valid loss | DSP s to reach deepafx's final | share of deepafx's DSP s "
            "| renders, share | wall s to reach | wall, share |"
        )
        lines.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for estimator in ESTIMATORS:
            rows = sorted((r for r in mine if r["estimator"] == estimator), key=lambda r: r["seed"])
            if not rows:
                continue
            finals = [best_so_far(r["curve"])[-1] for r in rows]
            cells = {"dsp_s": [], "renders": [], "wall_s": []}
            shares = {"dsp_s": [], "renders": [], "wall_s": []}
            for r in rows:
                ref = reference.get(r["seed"])
                if ref is None:
                    continue
                target = best_so_far(ref["curve"])[-1]
                for key in cells:
                    cost = cost_to_reach(r["curve"], target, key)
                    cells[key].append(cost)
                    shares[key].append(cost / cost_to_reach(ref["curve"], target, key))
            lines.append(
                f"| {estimator} | {len(rows)} | {mean_std(finals)} | {mean_std(cells['dsp_s'])} | "
                f"{mean_std(shares['dsp_s'])} | {mean_std(shares['renders'])} | {mean_std(cells['wall_s'])} | "
                f"{mean_std(shares['wall_s'])} |"
            )
    return "\n".join(lines)


def plot(runs: List[dict], path: str) -> None:
    """Validation loss (best so far, mean over seeds) against DSP-seconds, one panel per task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    tasks = sorted({r["task"] for r in runs})
    colours = plt.get_cmap("tab20")
    figure, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4.2), squeeze=False)
    for axis, task in zip(axes[0], tasks):
        for index, estimator in enumerate(ESTIMATORS):
            rows = [r for r in runs if r["task"] == task and r["estimator"] == estimator]
            if not rows:
                continue
            length = min(len(r["curve"]) for r in rows)
            dsp = np.mean([[p["dsp_s"] for p in r["curve"][:length]] for r in rows], axis=0)
            loss = np.array([best_so_far(r["curve"])[:length] for r in rows])
            style = dict(color="black", linewidth=2.5) if estimator == "deepafx" else dict(color=colours(index))
            axis.plot(dsp, loss.mean(axis=0), marker=".", label=f"{estimator} ({len(rows)})", **style)
        axis.set_title(f"{task}")
        axis.set_xlabel("plugin DSP-seconds (training rack)")
        axis.set_ylabel("best validation loss so far (mean over seeds)")
        axis.set_yscale("log")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def run_child(job: dict):
    """:func:`run_one` in a fresh interpreter: (its result, None) or (None, the end of its stderr)."""
    command = [sys.executable, os.path.abspath(__file__), "--child", json.dumps(job)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return None, done.stderr[-1500:]
    return json.loads(done.stdout.strip().splitlines()[-1]), None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="demo", help="comma list of shipped config names (demo, tube_amp, ...) or files")
    p.add_argument("--jobs", type=int, default=1, help="runs at a time, each in its own process")
    p.add_argument("--estimators", default=",".join(ESTIMATORS), help=f"comma list of {', '.join(ESTIMATORS)}")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--budget", type=int, default=144_000, help="plugin renders per run (demo: 3000 steps x 48)")
    p.add_argument("--evals", type=int, default=20, help="validations per run, at equal shares of the budget")
    p.add_argument("--set", action="append", default=[], help="config override KEY=VALUE for every run")
    p.add_argument("--out", default="bench/out/estimators.jsonl")
    p.add_argument("--report", help="print the tables of this JSON-lines file (no runs)")
    p.add_argument("--plot", help="with --report: draw the curves into this PNG")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(run_one(**json.loads(args.child))))
        return 0
    if args.report:
        runs = done_runs(Path(args.report))
        print(report(runs))
        if args.plot:
            plot(runs, args.plot)
            print(f"\nplot: {args.plot}")
        return 0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    have = {(r["task"], r["estimator"], r["seed"], r["budget"]) for r in done_runs(out)}
    jobs = []
    for seed in [int(s) for s in args.seeds.split(",")]:  # seed by seed: a bench cut short has whole seeds
        for task in args.task.split(","):
            for estimator in args.estimators.split(","):
                if estimator not in ESTIMATORS:
                    p.error(f"unknown estimator {estimator!r}")
                if (task, estimator, seed, args.budget) not in have:
                    jobs.append(
                        dict(
                            task=task,
                            estimator=estimator,
                            seed=seed,
                            budget=args.budget,
                            evals=args.evals,
                            overrides=args.set,
                        )
                    )
    for task in sorted({job["task"] for job in jobs}):
        prepare(task, args.set)
    # Runs in parallel (--jobs) each take their own core: pass --set spsa.threads=1 and
    # --set train.torch_threads=1 so that they do not share one.
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {pool.submit(run_child, job): job for job in jobs}
        for future in concurrent.futures.as_completed(futures):
            job, (result, error) = futures[future], future.result()
            name = f"{job['task']} {job['estimator']} seed {job['seed']}"
            if result is None:
                print(f"{name}: FAILED\n{error}", flush=True)
                continue
            with open(out, "a") as handle:
                handle.write(json.dumps(result) + "\n")
            final = best_so_far(result["curve"])[-1]
            print(
                f"{name}: {result['steps']} steps of {result['lanes']} lanes, best valid {final:.5g}, "
                f"DSP {result['curve'][-1]['dsp_s']:.1f} s, {result['seconds']:.0f} s "
                f"(load {result['load_average']:.1f})",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
