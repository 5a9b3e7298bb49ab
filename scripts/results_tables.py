"""Write the tables of a task's results page from `fxgrad evaluate` JSON files and the runs' logs.

    python scripts/results_tables.py --section TITLE:TASK:RUNS_DIR:EVAL_DIR:MACHINE [...] --page docs/results/TASK.md

Each section is one task's runs: RUNS_DIR holds one folder per run, named TASK-ENCODER (log.csv,
config.yaml, and the trainer's output as train.log inside it or TASK-ENCODER.log beside it);
EVAL_DIR holds TASK-ENCODER.json from `fxgrad evaluate`. The page's text between
``<!-- tables:begin -->`` and ``<!-- tables:end -->`` is replaced; the rest is left as written.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

from fxgrad.base.files import atomic_write_bytes  # noqa: E402
from fxgrad.evaluation.evaluate import METRIC_TITLES, METRICS, margin  # noqa: E402
from fxgrad.train import LOG, read_log  # noqa: E402

ENCODERS = {"inception": "Inception", "mobilenetv2": "MobileNetV2"}
BEGIN, END = "<!-- tables:begin -->", "<!-- tables:end -->"


def training_row(run: Path, encoder: str, machine: str) -> str:
    rows = read_log(run / LOG)
    pretrain = [r for r in rows if r["phase"] == "pretrain"]
    train = [r for r in rows if r["phase"] == "train"]
    epochs = [r for r in rows if r["phase"] == "epoch" and r["valid_loss"]]
    pretrain_s = float(pretrain[-1]["elapsed_s"]) if pretrain else 0.0
    steps = int(train[-1]["step"])
    step_s = float(train[-1]["elapsed_s"]) - pretrain_s
    best = min(epochs, key=lambda r: float(r["valid_loss"]))
    logs = [p for p in (run / "train.log", run.parent / f"{run.name}.log") if p.is_file()]
    text = logs[0].read_text() if logs else ""
    weights = re.search(r"([\d,]+) encoder weights", text)
    return (
        f"| {encoder} | {weights.group(1) if weights else '?'} | "
        f"{len(pretrain) and int(pretrain[-1]['step'])} + {steps:,} "
        f"| {step_s / 60:.1f} min | {steps / step_s:.1f} | {1e3 * step_s / steps:.0f} ms "
        f"| {float(best['valid_loss']):.4g} (step {int(best['step']):,}) | {machine} |"
    )


def task_tables(title: str, task: str, runs: Path, evals: Path, machine: str) -> str:
    found = {
        enc: json.loads((evals / f"{task}-{enc}.json").read_text())
        for enc in ENCODERS
        if (evals / f"{task}-{enc}.json").is_file()
    }
    if not found:
        return f"### {title}\n\n(no evaluation yet)\n"
    first = next(iter(found.values()))
    systems = first["systems"]
    header = "| system | " + " | ".join(METRIC_TITLES[m] for m in METRICS) + " |"
    lines = [
        f"### {title}",
        "",
        f"{len(first['clips'])} held-out clips (`{first['data']}`), lower is better.",
        "",
        header,
        "|" + " --- |" * (len(METRICS) + 1),
    ]
    for system in ("unprocessed", "plugin defaults", "best static"):
        lines.append(f"| {system} | " + " | ".join(f"{systems[system][m]:.4f}" for m in METRICS) + " |")
    for enc, result in found.items():
        model = result["systems"]["model"]
        lines.append(f"| model, {ENCODERS[enc]} | " + " | ".join(f"{model[m]:.4f}" for m in METRICS) + " |")
    for enc, result in found.items():
        model, static = result["systems"]["model"], result["systems"]["best static"]
        lines.append(
            f"| model {ENCODERS[enc]} vs best static | "
            + " | ".join(f"{margin(model[m], static[m]):+.1f} %" for m in METRICS)
            + " |"
        )
    lines += [
        "",
        "Training (pretraining + training steps; time spent in training steps, validation excluded):",
        "",
        "| encoder | weights | steps | in steps | steps/s | per step | best valid loss | machine |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for enc in found:
        run = runs / f"{task}-{enc}"
        if (run / LOG).is_file():
            lines.append(training_row(run, ENCODERS[enc], machine))
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--section", action="append", required=True, metavar="TITLE:TASK:RUNS_DIR:EVAL_DIR:MACHINE")
    parser.add_argument("--page", type=Path, required=True, help="the task's page, docs/results/TASK.md")
    args = parser.parse_args(argv)
    sections = []
    for section in args.section:
        title, task, runs, evals, machine = section.split(":", 4)
        sections.append(task_tables(title, task, Path(runs), Path(evals), machine))
    tables = "\n".join(sections)
    page = args.page.read_text() if args.page.is_file() else f"# Results\n\n{BEGIN}\n{END}\n"
    if BEGIN not in page or END not in page:
        raise SystemExit(f"{args.page} has no {BEGIN} ... {END} section")
    head, rest = page.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    atomic_write_bytes(args.page, f"{head}{BEGIN}\n{tables}{END}{tail}".encode())
    print(f"wrote the tables of {args.page}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
