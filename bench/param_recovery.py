"""Parameter recovery through a third-party plugin: can the trained model find a known,
time-varying automation from audio alone?

Targets are synthetic clips rendered through the Calf Compressor (LV2) while a hidden hand moves
its threshold with the material's level and its ratio with its tone, frame by frame
(configs/param_recovery_calf.yaml). The encoder is trained through the real plugin with SPSA;
on held-out clips its per-frame predictions are compared with the hidden trajectory (mean
absolute error, normalised units), next to the best static setting and the plugin's defaults.

    .venv/bin/python bench/param_recovery.py                 # the full run (a few minutes)
    .venv/bin/python bench/param_recovery.py --steps 1000    # shorter
    .venv/bin/python bench/param_recovery.py --set spsa.lanes=8 --set data.synthetic.train_clips=20

Exit status 0 when the model's mean error is at most --max-mae (default 0.05).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "param_recovery_calf.yaml"))
    parser.add_argument("--output", default=None, help="run folder (default runs/param_recovery_calf)")
    parser.add_argument("--steps", type=int, help="training steps (default: the config's)")
    parser.add_argument("--lanes", type=int, help="SPSA lanes (batch size)")
    parser.add_argument("--clips", type=int, help="training clips")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any config override")
    parser.add_argument("--max-mae", type=float, default=0.05)
    parser.add_argument("--no-static", action="store_true", help="skip the static baseline")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    import torch

    from fxgrad.base.text import format_table
    from fxgrad.config import Config
    from fxgrad.evaluation.evaluate import evaluate, report
    from fxgrad.train import BEST, CHECKPOINT, Trainer, fit_static

    torch.set_num_threads(1)
    overrides = list(args.set)
    if args.steps:
        overrides.append(f"train.steps={args.steps}")
    if args.lanes:
        overrides.append(f"spsa.lanes={args.lanes}")
    if args.clips:
        overrides.append(f"data.synthetic.train_clips={args.clips}")
    config = Config.load(args.config, overrides)
    if args.output:
        config.output_dir = args.output
    progress = not args.no_progress
    started = time.perf_counter()

    summary = Trainer(config, overwrite=True, progress=progress).fit()
    train_time = time.perf_counter() - started
    static_path = None
    if not args.no_static:
        static_path = fit_static(config, progress=progress)["path"]
    run = config.run_dir
    checkpoint = run / BEST if (run / BEST).is_file() else run / CHECKPOINT
    folder = Path(config.data.synthetic.folder) if config.data.synthetic.folder else run / "data"
    result = evaluate(checkpoint, folder / "test", static=static_path, progress=progress)

    names = result["parameters"]
    errors = result["parameter_mae"]
    print()
    print(
        f"parameter recovery: {' -> '.join(config.chain.plugins)}, {len(result['clips'])} held-out clips, "
        f"{summary['step']} steps x {config.spsa.lanes} lanes, {train_time:.0f} s of training"
    )
    rows = [[system, *[f"{v:.4f}" for v in values], f"{np.mean(values):.4f}"] for system, values in errors.items()]
    print(format_table(["system (MAE, normalised)", *names, "mean"], rows))
    print()
    print(report(result))
    model_mae = float(np.mean(errors["model"]))
    verdict = "PASS" if model_mae <= args.max_mae else "FAIL"
    print(
        f"\n{verdict}: model mean absolute error {model_mae:.4f} (limit {args.max_mae}); "
        f"total {time.perf_counter() - started:.0f} s; results in {result['path']}"
    )
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
