"""``fxgrad train``, ``fit-static``, ``evaluate`` and ``demo``: training from a config, its
static baseline, evaluating a checkpoint, and the whole tour on generated audio."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._output import fmt_number, native_chatter


def _config_options(p) -> None:
    """The config argument and options that train and fit-static share."""
    p.add_argument(
        "config",
        help="YAML/JSON/TOML training config, or the name of a shipped one (demo, tube_amp, breath_removal, "
        "mastering, ...; see docs/training.md)",
    )
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set train.steps=2000 (repeatable)",
    )
    p.add_argument("--output", help="run folder (overrides output_dir)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _load_config(args: argparse.Namespace):
    from ..config.schema import Config

    config = Config.load(args.config, args.set or ())
    if getattr(args, "output", None):
        config.output_dir = str(args.output)
    return config


def add_train(commands) -> None:
    p = commands.add_parser("train", help="train a model (DDP under torchrun)")
    _config_options(p)
    p.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint")
    p.add_argument("--overwrite", action="store_true", help="start over even if the run folder holds a checkpoint")
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show what plugins print (isolated workers; by default it goes to RUN_DIR/plugins.log)",
    )
    p.set_defaults(run=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from ..train import Trainer

    config = _load_config(args)
    trainer = Trainer(
        config, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress, plugin_output=args.verbose
    )
    summary = trainer.fit()
    if trainer.world.is_main:
        best = summary["best_loss"]
        print(
            f"trained to step {summary['step']} in {summary['elapsed_s']:.0f} s"
            + (f"; best {summary['best_by']} {best:.5g}" if best is not None else "")
            + ("; stopped early" if summary["stopped_early"] else "")
            + ("; time limit reached (--resume continues)" if summary["out_of_time"] else "")
        )
        print(f"checkpoint: {summary['checkpoint']}")
        if summary["best_checkpoint"]:
            print(f"best:       {summary['best_checkpoint']}")
        print(f"log:        {trainer.run_dir / 'log.csv'}")
    return 0


def add_fit_static(commands) -> None:
    p = commands.add_parser("fit-static", help="fit the best single setting to the training set (baseline)")
    _config_options(p)
    p.add_argument("--out", help="where to write the settings (default RUN_DIR/static.json)")
    p.add_argument(
        "--identifiability-clips",
        type=int,
        default=4,
        help="training clips the identifiability report renders (default 4; 0: no report)",
    )
    p.set_defaults(run=cmd_fit_static)


def cmd_fit_static(args: argparse.Namespace) -> int:
    from ..base.text import format_table
    from ..train import fit_static

    config = _load_config(args)
    result = fit_static(config, progress=not args.no_progress, output=args.out)
    rows = [
        [n, f"{v:.4f}", fmt_number(p), u]
        for n, v, p, u in zip(result["parameters"], result["normalised"], result["plain"], result["units"])
    ]
    print(format_table(["parameter", "normalised", "value", "unit"], rows, align="lrrl"))
    print(
        f"mean loss of the last tenth {result['loss']:.5g} after {result['steps']} steps ({result['seconds']:.0f} s); "
        f"saved to {result['path']}"
    )
    if args.identifiability_clips > 0:
        from ..match.identifiability import fit_static_identifiability, identifiability_table

        with native_chatter(False):
            report = fit_static_identifiability(config, result, clips=args.identifiability_clips)
        print(
            f"how well the loss determines each setting ({args.identifiability_clips} training clip(s) at most, "
            f"whole; saved in {result['path']}):"
        )
        print(identifiability_table(report, result["plain"], result["units"]))
    return 0


def add_evaluate(commands) -> None:
    p = commands.add_parser("evaluate", help="evaluate a checkpoint against the baselines")
    p.add_argument("checkpoint")
    p.add_argument("data", help="folder with input/ and target/ (and optional params/)")
    p.add_argument("--static", help="static settings JSON (default: static.json beside the checkpoint)")
    p.add_argument("--max-clips", type=int)
    p.add_argument("--out", help="results JSON (default: evaluation.json beside the checkpoint)")
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--smooth",
        metavar="auto|none|KIND:MS",
        default="auto",
        help="also render the model's automation smoothed over time (system 'model, smoothed'): auto (default): "
        "the setting with the lowest MRSTFT error on the run's validation clips, chosen once and kept beside the "
        "checkpoint, as apply uses it; one-pole:MS (zero-phase, time constant) or median:MS (window); none",
    )
    p.add_argument("--valid", help="validation folder for --smooth auto (default: the run's validation split)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(run=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..evaluation.evaluate import evaluate, report

    result = evaluate(
        args.checkpoint,
        args.data,
        static=args.static,
        max_clips=args.max_clips,
        output=args.out,
        progress=not args.no_progress,
        device=args.device,
        smoothing=smoothing_argument(args),
    )
    print(report(result))
    print(f"saved to {result['path']}")
    return 0


def smoothing_argument(args: argparse.Namespace):
    """The ``--smooth`` of ``evaluate`` and ``apply`` (:func:`fxgrad.evaluation.evaluate.resolve_smoothing`)."""
    from ..evaluation.evaluate import resolve_smoothing

    return resolve_smoothing(
        args.checkpoint, args.smooth, args.valid, device=args.device, progress=not getattr(args, "no_progress", False)
    )


def add_oracle(commands) -> None:
    p = commands.add_parser("oracle", help="the chain's ceiling on clips: the best static and per-frame settings")
    p.add_argument("config", help="the training config (chain, loss, frame size)")
    p.add_argument("data", nargs="?", help="folder with input/ and target/ (default: the config's test split)")
    p.add_argument("--max-clips", type=int, help="the first N clips by name (default: all; each is one lane)")
    p.add_argument("--passes", type=int, default=15, help="passes over each clip per coarse-to-fine stage (15)")
    p.add_argument("--resolution-ms", type=float, default=100.0, help="finest control-point spacing (100 ms)")
    p.add_argument(
        "--lr",
        type=float,
        default=0.05,
        help="Adam's learning rate of the SPSA searches (0.05); smaller for chains with many parameters",
    )
    p.add_argument("--static", choices=("auto", "cma", "spsa"), default="auto", help="the per-clip static search")
    p.add_argument(
        "--start",
        help="a fit-static JSON both searches start from (default: the config's train.start_from, if a file)",
    )
    p.add_argument("--evaluation", help="an `fxgrad evaluate` JSON of the same clips: adds its rows and the share")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)")
    p.add_argument("--out", help="results JSON (default: RUN_DIR/oracle.json)")
    p.add_argument("--seed", type=int, help="default: the config's seed")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(run=cmd_oracle)


def cmd_oracle(args: argparse.Namespace) -> int:
    import json

    from ..config.schema import Config
    from ..evaluation.oracle import run_oracle
    from ..evaluation.oracle_report import report

    config = Config.load(args.config, args.set or ())
    start = args.start
    if start is None and config.train.start_from != "defaults" and Path(config.train.start_from).is_file():
        start = config.train.start_from
    result = run_oracle(
        config,
        args.data,
        max_clips=args.max_clips,
        passes=args.passes,
        resolution_ms=args.resolution_ms,
        lr=args.lr,
        static=args.static,
        start=start,
        out=args.out,
        seed=args.seed,
        progress=not args.no_progress,
    )
    evaluation = json.loads(open(args.evaluation).read()) if args.evaluation else None
    print(report(result, evaluation))
    print(f"saved to {result['path']}")
    return 0


def add_demo(commands) -> None:
    p = commands.add_parser("demo", help="generate audio, train, evaluate and render (a few minutes on 2 cores)")
    p.add_argument("--config", help="demo config (default: the shipped demo.yaml)")
    p.add_argument("--output", help="run folder (default runs/demo)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(run=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(
        config_path=args.config, output=args.output, overrides=args.set or (), progress=not args.no_progress
    )
