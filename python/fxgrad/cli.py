"""The ``fxgrad`` command (also ``python -m fxgrad``).

    fxgrad scan [PATHS...]                 installed plugins
    fxgrad info PLUGIN                     a plugin's parameters
    fxgrad check [PLUGIN...]               probe plugins in sandboxed processes before training
    fxgrad train CONFIG [--resume]         train (torchrun --nproc_per_node=G fxgrad train CONFIG for DDP)
    fxgrad fit-static CONFIG               best single setting for the training set (a baseline)
    fxgrad evaluate CHECKPOINT DATA        model vs unprocessed / defaults / best static
    fxgrad apply CHECKPOINT IN OUT         render a file with the model's automation
    fxgrad demo                            train, evaluate and render on generated audio

See docs/training.md.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
import sys
import traceback
from pathlib import Path
from typing import Optional, Sequence

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _fmt_number(value: float) -> str:
    return f"{value:.6g}"


@contextlib.contextmanager
def _native_chatter(show: bool):
    """Plugin libraries (lilv, LADSPA modules, JUCE) write diagnostics straight to the stderr
    file descriptor while scanning/loading; hide them unless asked (--verbose)."""
    if show:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


# ---------------------------------------------------------------------------- scan / info


def cmd_scan(args: argparse.Namespace) -> int:
    import fxgrad
    from ._text import format_table

    for path in args.paths:
        if not Path(path).exists():
            raise FileNotFoundError(f"no such file or folder: {path}")
    with _native_chatter(args.verbose):
        infos = fxgrad.scan(args.paths, include_own=not args.no_own, include_unsupported=True)
    if args.format:
        infos = [i for i in infos if i.format.lower() == args.format.lower()]
    hidden = [] if args.all else [i for i in infos if i.unsupported]
    infos = [i for i in infos if args.all or not i.unsupported]
    if args.json:
        print(json.dumps([{"format": i.format, "name": i.name, "vendor": i.vendor, "identifier": i.identifier,
                           "inputs": i.num_inputs, "outputs": i.num_outputs, "unsupported": i.unsupported}
                          for i in infos], indent=2))
        return 0
    rows = [[i.format, i.name, i.vendor, i.identifier, f"{i.num_inputs}/{i.num_outputs}",
             f"not hostable: {i.unsupported}" if i.unsupported else ""] for i in infos]
    print(format_table(["format", "name", "vendor", "identifier", "ins/outs", "notes"], rows, align="llllll"))
    print(f"{len(infos)} plugin(s)" + (f"; {len(hidden)} that fxgrad cannot host (no audio output) left out: "
                                       "--all lists them" if hidden else ""))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    import fxgrad
    from ._text import format_table

    with _native_chatter(args.verbose):
        plugin = fxgrad.load(args.plugin, sample_rate=args.sample_rate, block_size=args.block_size,
                             channels=args.channels, plugin=args.select or "")
    parameters = plugin.parameters
    if args.json:
        print(json.dumps({
            "name": plugin.name, "vendor": plugin.vendor, "format": plugin.format, "identifier": plugin.identifier,
            "latency_samples": plugin.latency_samples, "dsp_snapshot": plugin.has_dsp_snapshot,
            "parameters": [{"index": p.index, "id": p.id, "name": p.name, "unit": p.unit, "min": p.minimum,
                            "max": p.maximum, "default": p.default, "normalized_default": p.normalized_default,
                            "log": p.logarithmic, "steps": p.steps, "choices": [[v, label] for v, label in p.choices],
                            "automatable": p.automatable, "bypass": p.is_bypass} for p in parameters],
        }, indent=2))
        return 0
    print(f"{plugin.name} ({plugin.format}) by {plugin.vendor or 'unknown vendor'}")
    print(f"  identifier: {plugin.identifier}")
    print(f"  latency: {plugin.latency_samples} samples at {args.sample_rate:g} Hz; "
          f"DSP snapshot: {'yes' if plugin.has_dsp_snapshot else 'no'}")
    rows = []
    for p in parameters:
        if p.choices:
            steps = " | ".join(f"{value:g}={label.strip() or repr(label)}" for value, label in p.choices)
        elif p.is_toggle:
            steps = "toggle"
        elif p.steps:
            steps = str(p.steps)
        else:
            steps = ""
        notes = []
        if p.is_bypass:
            notes.append("bypass")
        if not p.automatable:
            notes.append("not automatable")
        rows.append([p.id, p.name, p.unit, _fmt_number(p.minimum), _fmt_number(p.maximum), _fmt_number(p.default),
                     "yes" if p.logarithmic else "", steps, ", ".join(notes)])
    print(format_table(["id", "name", "unit", "min", "max", "default", "log", "steps/choices", "notes"], rows,
                       align="lllrrrlll"))
    print(f"{len(parameters)} parameter(s)")
    return 0


# ---------------------------------------------------------------------------- training


def _load_config(args: argparse.Namespace):
    from .config import Config

    config = Config.load(args.config, args.set or ())
    if getattr(args, "output", None):
        config.output_dir = str(args.output)
    return config


def cmd_train(args: argparse.Namespace) -> int:
    from .train import Trainer

    config = _load_config(args)
    trainer = Trainer(config, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress)
    summary = trainer.fit()
    if trainer.world.is_main:
        best = summary["best_loss"]
        print(f"trained to step {summary['step']} in {summary['elapsed_s']:.0f} s"
              + (f"; best validation loss {best:.5g}" if best is not None else "")
              + ("; stopped early" if summary["stopped_early"] else "")
              + ("; time limit reached (--resume continues)" if summary["out_of_time"] else ""))
        print(f"checkpoint: {summary['checkpoint']}")
        if summary["best_checkpoint"]:
            print(f"best:       {summary['best_checkpoint']}")
        print(f"log:        {trainer.run_dir / 'log.csv'}")
    return 0


def cmd_fit_static(args: argparse.Namespace) -> int:
    from ._text import format_table
    from .train import fit_static

    config = _load_config(args)
    result = fit_static(config, progress=not args.no_progress, output=args.out)
    rows = [[n, f"{v:.4f}", _fmt_number(p), u] for n, v, p, u in
            zip(result["parameters"], result["normalised"], result["plain"], result["units"])]
    print(format_table(["parameter", "normalised", "value", "unit"], rows, align="lrrl"))
    print(f"mean loss of the last tenth {result['loss']:.5g} after {result['steps']} steps ({result['seconds']:.0f} s); "
          f"saved to {result['path']}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate, report

    result = evaluate(args.checkpoint, args.data, static=args.static, max_clips=args.max_clips, output=args.out,
                      progress=not args.no_progress, device=args.device)
    print(report(result))
    print(f"saved to {result['path']}")
    return 0


def cmd_apply(args: argparse.Namespace) -> int:
    from .render import apply_file

    paths = apply_file(args.checkpoint, args.input, args.output, target_path=args.target, params_path=args.params,
                       plot_path=args.plot, reference_params=args.reference_params, device=args.device)
    print(f"audio:      {paths['audio']}")
    print(f"parameters: {paths['params']}")
    print(f"plot:       {paths['plot']}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(config_path=args.config, output=args.output, overrides=args.set or (),
                    progress=not args.no_progress)


# ---------------------------------------------------------------------------- the parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fxgrad", description="Train neural networks end to end through real audio plugins (SPSA gradients).",
        epilog="Set FXGRAD_DEBUG=1 for tracebacks. Docs: docs/training.md")
    parser.add_argument("--version", action="version", version="fxgrad 0.1.0")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = commands.add_parser("scan", help="list installed plugins (LV2, VST3, VST2, LADSPA and fxgrad's own)")
    p.add_argument("paths", nargs="*", help="extra folders or plugin files to scan")
    p.add_argument("--format", help="only this format (lv2, vst3, vst2, ladspa)")
    p.add_argument("--all", action="store_true", help="also the plugins fxgrad cannot host (MIDI/control only)")
    p.add_argument("--no-own", action="store_true", help="leave out fxgrad's own effects")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("-v", "--verbose", action="store_true", help="show the plugin libraries' own messages")
    p.set_defaults(run=cmd_scan)

    p = commands.add_parser("info", help="show a plugin's parameters")
    p.add_argument("plugin", help="LV2 URI, bundle, VST3, VST2 or LADSPA library, PATH#SELECTOR or fxgrad:NAME")
    p.add_argument("--select", help="which plugin of a bundle/library holding several")
    p.add_argument("--sample-rate", type=float, default=44100.0)
    p.add_argument("--block-size", type=int, default=1024)
    p.add_argument("--channels", type=int, default=2)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("-v", "--verbose", action="store_true", help="show the plugin library's own messages")
    p.set_defaults(run=cmd_info)

    from . import check

    p = commands.add_parser("check", help="probe plugins in sandboxed processes: load, render, state, determinism")
    check.add_arguments(p)
    p.set_defaults(run=check.run_command)

    def config_options(p, output_help="run folder (overrides output_dir)"):
        p.add_argument("config", help="YAML/JSON/TOML training config (see configs/ and docs/training.md)")
        p.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override a config key, e.g. --set train.steps=2000 (repeatable)")
        p.add_argument("--output", help=output_help)
        p.add_argument("--no-progress", action="store_true", help="no progress bars")

    p = commands.add_parser("train", help="train a model (DDP under torchrun)")
    config_options(p)
    p.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint")
    p.add_argument("--overwrite", action="store_true", help="start over even if the run folder holds a checkpoint")
    p.set_defaults(run=cmd_train)

    p = commands.add_parser("fit-static", help="fit the best single setting to the training set (baseline)")
    config_options(p)
    p.add_argument("--out", help="where to write the settings (default RUN_DIR/static.json)")
    p.set_defaults(run=cmd_fit_static)

    p = commands.add_parser("evaluate", help="evaluate a checkpoint against the baselines")
    p.add_argument("checkpoint")
    p.add_argument("data", help="folder with input/ and target/ (and optional params/)")
    p.add_argument("--static", help="static settings JSON (default: static.json beside the checkpoint)")
    p.add_argument("--max-clips", type=int)
    p.add_argument("--out", help="results JSON (default: evaluation.json beside the checkpoint)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(run=cmd_evaluate)

    p = commands.add_parser("apply", help="render a file through the plugins with the model's automation")
    p.add_argument("checkpoint")
    p.add_argument("input")
    p.add_argument("output", help="output audio (.wav or .flac), at the model's sample rate")
    p.add_argument("--target", help="target audio, shown in the plot")
    p.add_argument("--params", help="parameter CSV (default OUTPUT.params.csv)")
    p.add_argument("--plot", help="PNG (default OUTPUT.png)")
    p.add_argument("--reference-params", help="a parameter CSV to draw beside the predicted curves")
    p.add_argument("--device", default="cpu")
    p.set_defaults(run=cmd_apply)

    p = commands.add_parser("demo", help="generate audio, train, evaluate and render (a few minutes on 2 cores)")
    p.add_argument("--config", help="demo config (default configs/demo.yaml)")
    p.add_argument("--output", help="run folder (default runs/demo)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(run=cmd_demo)

    from . import tasks

    p = commands.add_parser("data", help="build the data sets of the DeepAFx tasks from real audio")
    data_commands = p.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)
    build = data_commands.add_parser("build", help="build TASK's data set in OUT_DIR (docs/tasks.md)")
    tasks.add_build_arguments(build)
    build.set_defaults(run=tasks.run_build)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USAGE
    debug = bool(os.environ.get("FXGRAD_DEBUG"))
    from .checkpoint import CheckpointError
    from .config import ConfigError

    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt as interrupt:
        from .train import TrainingInterrupted

        if isinstance(interrupt, TrainingInterrupted):
            print(f"fxgrad: {interrupt}", file=sys.stderr)
            if getattr(args, "config", None):
                print(f"resume with: fxgrad {args.command} {args.config} --resume", file=sys.stderr)
        else:
            print("fxgrad: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except ConfigError as error:
        if debug:
            traceback.print_exc()
        print(f"fxgrad: config error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (FileNotFoundError, CheckpointError, ValueError, RuntimeError, OSError) as error:
        if debug:
            traceback.print_exc()
        print(f"fxgrad: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        try:
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized():
                dist.destroy_process_group()
        except Exception:
            pass


if __name__ == "__main__":
    sys.exit(main())
