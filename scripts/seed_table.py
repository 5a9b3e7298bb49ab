"""A task's results table over seeds: baselines, the oracle, and the model as mean ± std.

    python scripts/seed_table.py --eval runs/eval/demo-s0.json --eval runs/eval/demo-s1.json ... \
        --oracle runs/demo/oracle.json [--title "Demo"]

Each ``--eval`` is one seed's ``fxgrad evaluate`` JSON (the same clips, the same static
setting); ``--oracle`` an ``fxgrad oracle`` JSON of those clips. Prints a Markdown table: the
baselines (from the first evaluation; they do not depend on the model's seed), the oracle's two
rows, the model and the smoothed model as mean ± std over seeds, the model's margin over the best
static setting against twice the seeds' spread, and the share of the reachable improvement
(best static - model) / (best static - oracle per-frame).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

from fxgrad.evaluation.evaluate import METRIC_TITLES, METRICS, SMOOTHED  # noqa: E402
from fxgrad.evaluation.oracle_report import reachable_share  # noqa: E402

BASELINES = ("unprocessed", "plugin defaults", "best static")


def seed_rows(evaluations, system):
    """(mean, std) per metric of ``system`` over the seeds' evaluations (std with ddof=1)."""
    values = np.array([[e["systems"][system][m] for m in METRICS] for e in evaluations])
    spread = values.std(axis=0, ddof=1) if len(values) > 1 else np.full(len(METRICS), np.nan)
    return values.mean(axis=0), spread


def _share(value: float) -> str:
    """A share as text; past 100 % the model beat the oracle, which is then no ceiling (its search
    optimises the training loss on each clip alone, and can stop short of the chain's best)."""
    if np.isnan(value):
        return "n/a (no reachable gain)"
    return f"{value:.0%}" + (" (beyond the oracle)" if value > 1 else "")


def table(evaluations, oracle, title: str) -> str:
    first = evaluations[0]
    header = "| system | " + " | ".join(METRIC_TITLES[m] for m in METRICS) + " |"
    lines = [f"### {title}", "", f"{len(first['clips'])} clips, {len(evaluations)} seeds; lower is better.", ""]
    lines += [header, "| --- |" + " --- |" * len(METRICS)]
    for system in BASELINES:
        lines.append(f"| {system} | " + " | ".join(f"{first['systems'][system][m]:.4f}" for m in METRICS) + " |")
    for system in ("oracle static", "oracle per-frame"):
        lines.append(f"| {system} | " + " | ".join(f"{oracle['systems'][system][m]:.4f}" for m in METRICS) + " |")
    static = np.array([first["systems"]["best static"][m] for m in METRICS])
    ceiling = np.array([oracle["systems"]["oracle per-frame"][m] for m in METRICS])
    models = ["model"] + ([SMOOTHED] if all(SMOOTHED in e["systems"] for e in evaluations) else [])
    verdicts = []
    for system in models:
        mean, std = seed_rows(evaluations, system)
        # each seed's smoothing was chosen on the validation clips; name each choice once
        chosen = dict.fromkeys(e["smoothing"] for e in evaluations)
        name = system if system == "model" else f"{system} ({', '.join(chosen)})"
        lines.append(f"| {name} | " + " | ".join(f"{a:.4f} ± {s:.4f}" for a, s in zip(mean, std)) + " |")
        shares = [reachable_share(a, b, c) for a, b, c in zip(mean, static, ceiling)]
        lines.append(f"| {system}: share of the reachable improvement | " + " | ".join(map(_share, shares)) + " |")
        beats = [
            f"{METRIC_TITLES[m]} {'yes' if b - a > 2 * s else 'no'}" for m, a, s, b in zip(METRICS, mean, std, static)
        ]
        verdicts.append(f"{system} beats the best static setting by more than 2 std of its seeds: {', '.join(beats)}")
    return "\n".join(lines + [""] + [f"- {v}" for v in verdicts]) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval", action="append", required=True, type=Path, help="one seed's evaluate JSON")
    parser.add_argument("--oracle", required=True, type=Path, help="the oracle JSON of the same clips")
    parser.add_argument("--title", default="Results")
    args = parser.parse_args(argv)
    evaluations = [json.loads(path.read_text()) for path in args.eval]
    oracle = json.loads(args.oracle.read_text())
    if len({len(e["clips"]) for e in evaluations} | {len(oracle["clips"])}) != 1:
        raise SystemExit("the evaluations and the oracle must cover the same clips")
    print(table(evaluations, oracle, args.title), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
