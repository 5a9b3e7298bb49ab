"""``fxgrad train``, ``fit-static``, ``evaluate`` and ``demo``: training from a config, its
static baseline, evaluating a checkpoint, and the whole tour on generated audio."""

from __future__ import annotations

import argparse

from ._output import fmt_number, native_chatter


def _config_options(p) -> None:
    """The config argument and options that train and fit-static share."""
    p.add_argument("config", help="YAML/JSON/TOML training config (see configs/ and docs/training.md)")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set train.steps=2000 (repeatable)",
    )
    p.add_argument("--output", help="run folder (overrides output_dir)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _load_config(args: argparse.Namespace):
    from ..config import Config

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
    from .._text import format_table
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
        from ..identifiability import fit_static_identifiability, identifiability_table

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
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(run=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..evaluate import evaluate, report

    result = evaluate(
        args.checkpoint,
        args.data,
        static=args.static,
        max_clips=args.max_clips,
        output=args.out,
        progress=not args.no_progress,
        device=args.device,
    )
    print(report(result))
    print(f"saved to {result['path']}")
    return 0


def add_demo(commands) -> None:
    p = commands.add_parser("demo", help="generate audio, train, evaluate and render (a few minutes on 2 cores)")
    p.add_argument("--config", help="demo config (default configs/demo.yaml)")
    p.add_argument("--output", help="run folder (default runs/demo)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(run=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    return run_demo(
        config_path=args.config, output=args.output, overrides=args.set or (), progress=not args.no_progress
    )
