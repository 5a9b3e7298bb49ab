"""The ``fxgrad`` command (also ``python -m fxgrad``).

    fxgrad scan [PATHS...]                 installed plugins
    fxgrad info PLUGIN                     a plugin's parameters
    fxgrad check [PLUGIN...]               probe plugins in sandboxed processes before training
    fxgrad train CONFIG [--resume]         train (torchrun --nproc_per_node=G fxgrad train CONFIG for DDP)
    fxgrad fit-static CONFIG               best single setting for the training set (a baseline)
    fxgrad evaluate CHECKPOINT DATA        model vs unprocessed / defaults / best static
    fxgrad apply CHECKPOINT IN OUT         render a file with the model's automation
    fxgrad render IN OUT --chain CHAIN     render a file at given settings or a parameter CSV
    fxgrad match IN REFERENCE --chain C    find the settings that make IN sound like REFERENCE
    fxgrad presets SETTINGS OUT_DIR        DAW presets from match / fit-static settings
    fxgrad data pairs INPUTS OUT_DIR       a training folder from your own files
    fxgrad demo                            train, evaluate and render on generated audio

See docs/training.md and docs/matching.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
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
        print(
            json.dumps(
                [
                    {
                        "format": i.format,
                        "name": i.name,
                        "vendor": i.vendor,
                        "identifier": i.identifier,
                        "inputs": i.num_inputs,
                        "outputs": i.num_outputs,
                        "unsupported": i.unsupported,
                    }
                    for i in infos
                ],
                indent=2,
            )
        )
        return 0
    rows = [
        [
            i.format,
            i.name,
            i.vendor,
            i.identifier,
            f"{i.num_inputs}/{i.num_outputs}",
            f"not hostable: {i.unsupported}" if i.unsupported else "",
        ]
        for i in infos
    ]
    print(format_table(["format", "name", "vendor", "identifier", "ins/outs", "notes"], rows, align="llllll"))
    print(
        f"{len(infos)} plugin(s)"
        + (f"; {len(hidden)} that fxgrad cannot host (no audio output) left out: --all lists them" if hidden else "")
    )
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    import fxgrad

    from ._text import format_table

    with _native_chatter(args.verbose):
        plugin = fxgrad.load(
            args.plugin,
            sample_rate=args.sample_rate,
            block_size=args.block_size,
            channels=args.channels,
            plugin=args.select or "",
        )
    parameters = plugin.parameters
    if args.json:
        print(
            json.dumps(
                {
                    "name": plugin.name,
                    "vendor": plugin.vendor,
                    "format": plugin.format,
                    "identifier": plugin.identifier,
                    "latency_samples": plugin.latency_samples,
                    "dsp_snapshot": plugin.has_dsp_snapshot,
                    "parameters": [
                        {
                            "index": p.index,
                            "id": p.id,
                            "name": p.name,
                            "unit": p.unit,
                            "min": p.minimum,
                            "max": p.maximum,
                            "default": p.default,
                            "normalized_default": p.normalized_default,
                            "log": p.logarithmic,
                            "steps": p.steps,
                            "choices": [[v, label] for v, label in p.choices],
                            "automatable": p.automatable,
                            "bypass": p.is_bypass,
                        }
                        for p in parameters
                    ],
                },
                indent=2,
            )
        )
        return 0
    print(f"{plugin.name} ({plugin.format}) by {plugin.vendor or 'unknown vendor'}")
    print(f"  identifier: {plugin.identifier}")
    print(
        f"  latency: {plugin.latency_samples} samples at {args.sample_rate:g} Hz; "
        f"DSP snapshot: {'yes' if plugin.has_dsp_snapshot else 'no'}"
    )
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
        if p.is_trigger:
            notes.append("trigger")
        if not p.automatable:
            notes.append("not automatable")
        rows.append(
            [
                p.id,
                p.name,
                p.unit,
                _fmt_number(p.minimum),
                _fmt_number(p.maximum),
                _fmt_number(p.default),
                "yes" if p.logarithmic else "",
                steps,
                ", ".join(notes),
            ]
        )
    print(
        format_table(
            ["id", "name", "unit", "min", "max", "default", "log", "steps/choices", "notes"], rows, align="lllrrrlll"
        )
    )
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


def cmd_fit_static(args: argparse.Namespace) -> int:
    from ._text import format_table
    from .train import fit_static

    config = _load_config(args)
    result = fit_static(config, progress=not args.no_progress, output=args.out)
    rows = [
        [n, f"{v:.4f}", _fmt_number(p), u]
        for n, v, p, u in zip(result["parameters"], result["normalised"], result["plain"], result["units"])
    ]
    print(format_table(["parameter", "normalised", "value", "unit"], rows, align="lrrl"))
    print(
        f"mean loss of the last tenth {result['loss']:.5g} after {result['steps']} steps ({result['seconds']:.0f} s); "
        f"saved to {result['path']}"
    )
    if args.identifiability_clips > 0:
        from .identifiability import fit_static_identifiability, identifiability_table

        with _native_chatter(False):
            report = fit_static_identifiability(config, result, clips=args.identifiability_clips)
        print(
            f"how well the loss determines each setting ({args.identifiability_clips} training clip(s) at most, "
            f"whole; saved in {result['path']}):"
        )
        print(identifiability_table(report, result["plain"], result["units"]))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate, report

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


def cmd_apply(args: argparse.Namespace) -> int:
    from .apply import apply_file

    paths = apply_file(
        args.checkpoint,
        args.input,
        args.output,
        target_path=args.target,
        params_path=args.params,
        plot_path=args.plot,
        reference_params=args.reference_params,
        device=args.device,
        source_rate=args.source_rate,
    )
    for sentence in paths["conversions"]:
        print(f"input:      {sentence} (the model's format)")
    hint = f"; --source-rate writes {paths['input_rate']} Hz" if paths["input_rate"] != paths["sample_rate"] else ""
    print(f"audio:      {paths['audio']} ({paths['sample_rate']} Hz, {paths['channels']} channel(s){hint})")
    print(f"parameters: {paths['params']}")
    print(f"plot:       {paths['plot']}")
    return 0


def _csv_automation(path: str, sample_rate: float):
    """(names, thetas (rows, P), frame size in samples or None for one row) of a parameter CSV
    as ``apply`` writes it (``time_s``, then ``NAME [norm]`` columns)."""
    import csv

    from .params import read_parameter_csv

    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise ValueError(f"{path} holds no rows")
    names = [c[: -len(" [norm]")] for c in rows[0] if c.endswith(" [norm]")]
    if not names:
        raise ValueError(f"{path} has no 'NAME [norm]' columns (the parameter CSV that `fxgrad apply` writes)")
    thetas = read_parameter_csv(path, names)
    frame = None
    if len(rows) > 1:
        if "time_s" not in rows[0]:
            raise ValueError(f"{path} has several rows but no time_s column")
        frame = int(round(float(rows[1]["time_s"]) * sample_rate))
        if frame < 1:
            raise ValueError(f"{path}: rows must be one frame apart in time_s")
    return names, thetas, frame


def cmd_render(args: argparse.Namespace) -> int:
    import math

    import numpy as np

    from .audio import read_audio, write_audio
    from .chainfile import chain_config, load_chain, set_plain
    from .render import render_automation

    learned, thetas, frame = None, None, None
    if args.params:
        rate = float(chain_config(args.chain).get("sample_rate", 44100))
        learned, thetas, frame = _csv_automation(args.params, rate)
    with _native_chatter(args.verbose):
        chain, _ = load_chain(args.chain, learned)
    applied = set_plain(chain, args.set or ())
    clash = sorted(set(applied) & set(chain.learned)) if args.params else []
    if clash:
        raise ValueError(f"{', '.join(clash)} come from {args.params}; drop them from --set")
    rate = int(round(chain.sample_rate))
    audio = read_audio(args.input, rate, chain.channels)
    if thetas is None:
        output = chain.process(audio)
    else:
        frame = frame or audio.shape[-1]
        frames = math.ceil(audio.shape[-1] / frame)
        if len(thetas) < frames:  # the last row holds to the end
            thetas = np.concatenate([thetas, np.repeat(thetas[-1:], frames - len(thetas), axis=0)])
        output = render_automation(chain, audio, thetas[:frames], frame)
    write_audio(args.output, output, rate)
    print(
        f"{args.output}: {audio.shape[-1] / rate:.2f} s, {chain.channels} channel(s) at {rate} Hz through "
        + " -> ".join(p.name for p in chain.plugins)
        + (
            f"; automation from {args.params} ({len(chain.learned)} parameters, frames of {frame} samples)"
            if args.params
            else ""
        )
    )
    return 0


def cmd_match(args: argparse.Namespace) -> int:
    from .match import match_files, match_report

    with _native_chatter(args.verbose):
        result = match_files(
            args.input,
            args.reference,
            args.chain,
            out_dir=args.out,
            method=args.method,
            budget=args.budget,
            population=args.population,
            sigma=args.sigma,
            loss=args.loss,
            seed=args.seed,
            threads=args.threads,
            progress=not args.no_progress,
            presets=not args.no_presets,
        )
    print(match_report(result))
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    import numpy as np

    from .host import Chain
    from .presets import write_presets

    settings = json.loads(Path(args.settings).read_text())
    if not {"chain", "parameters", "normalised"} <= set(settings):
        raise ValueError(f"{args.settings} is not a settings file of `fxgrad match` or `fxgrad fit-static`")
    with _native_chatter(args.verbose):
        chain = Chain.from_config(settings["chain"])
        if list(chain.learned) != list(settings["parameters"]):
            raise ValueError(
                f"{args.settings}: its chain learns {chain.learned}, its settings are for {settings['parameters']}"
            )
        written = write_presets(
            chain, args.out_dir, args.name or Path(args.settings).stem, np.asarray(settings["normalised"])
        )
    for preset in written:
        print(f"{preset.plugin}. {preset.name} ({preset.format}): {preset.path or 'no preset: ' + preset.note}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(
        config_path=args.config, output=args.output, overrides=args.set or (), progress=not args.no_progress
    )


# ---------------------------------------------------------------------------- the parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fxgrad",
        description="Train neural networks end to end through real audio plugins (SPSA gradients).",
        epilog="Set FXGRAD_DEBUG=1 for tracebacks. Docs: docs/training.md",
    )
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
        p.add_argument(
            "--set",
            action="append",
            metavar="KEY=VALUE",
            help="override a config key, e.g. --set train.steps=2000 (repeatable)",
        )
        p.add_argument("--output", help=output_help)
        p.add_argument("--no-progress", action="store_true", help="no progress bars")

    p = commands.add_parser("train", help="train a model (DDP under torchrun)")
    config_options(p)
    p.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint")
    p.add_argument("--overwrite", action="store_true", help="start over even if the run folder holds a checkpoint")
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show what plugins print (isolated workers; by default it goes to RUN_DIR/plugins.log)",
    )
    p.set_defaults(run=cmd_train)

    p = commands.add_parser("fit-static", help="fit the best single setting to the training set (baseline)")
    config_options(p)
    p.add_argument("--out", help="where to write the settings (default RUN_DIR/static.json)")
    p.add_argument(
        "--identifiability-clips",
        type=int,
        default=4,
        help="training clips the identifiability report renders (default 4; 0: no report)",
    )
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
    p.add_argument("output", help="output audio (.wav or .flac), at the model's sample rate and channel count")
    p.add_argument(
        "--source-rate",
        action="store_true",
        help="write the output at the input's sample rate (resampled back from the model's)",
    )
    p.add_argument("--target", help="target audio, shown in the plot")
    p.add_argument(
        "--params", help="parameter CSV (default: OUTPUT with .params.csv for its extension, out.wav -> out.params.csv)"
    )
    p.add_argument("--plot", help="PNG (default: OUTPUT with .png for its extension)")
    p.add_argument("--reference-params", help="a parameter CSV to draw beside the predicted curves")
    p.add_argument("--device", default="cpu")
    p.set_defaults(run=cmd_apply)

    p = commands.add_parser("render", help="render a file through a chain at given settings or with a parameter CSV")
    p.add_argument("input")
    p.add_argument("output", help="output audio (.wav float or .flac), at the chain's sample rate")
    p.add_argument("--chain", required=True, help="chain file (plugins, learned, pinned, ...) or a training config")
    p.add_argument(
        "--set",
        action="append",
        metavar="NAME=VALUE",
        help="a parameter in plain units, e.g. 0.threshold_db=-20 (repeatable; `fxgrad info` lists them)",
    )
    p.add_argument("--params", help="per-frame automation: a parameter CSV as `fxgrad apply` and `fxgrad match` write")
    p.add_argument("-v", "--verbose", action="store_true", help="show the plugin libraries' own messages")
    p.set_defaults(run=cmd_render)

    from .match import DEFAULT_BUDGET, LOSSES, METHODS

    p = commands.add_parser(
        "match", help="find the chain settings that make INPUT sound like REFERENCE (docs/matching.md)"
    )
    p.add_argument("input", help="audio file, or a folder of them (one setting for all pairs)")
    p.add_argument("reference", help="audio file, or a folder paired with INPUT's by file name")
    p.add_argument("--chain", required=True, help="chain file (plugins, learned, pinned, ...) or a training config")
    p.add_argument("--method", choices=METHODS, default="cma", help="CMA-ES (default) or fit-static's SPSA")
    p.add_argument(
        "--budget",
        type=int,
        help="CMA-ES iterations (default %d) or SPSA steps (default %d)"
        % (DEFAULT_BUDGET["cma"], DEFAULT_BUDGET["spsa"]),
    )
    p.add_argument("--population", type=int, default=32, help="CMA-ES population (default 32)")
    p.add_argument("--sigma", type=float, default=0.1, help="CMA-ES initial step, normalised (default 0.1)")
    p.add_argument(
        "--loss",
        choices=LOSSES,
        default="auto",
        help="aligned (same material), style (other material) or auto (aligned when the lengths agree)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="rendering threads (default: all cores)")
    p.add_argument("--out", help="result folder (default runs/match/INPUT_NAME)")
    p.add_argument("--no-presets", action="store_true", help="write no DAW presets")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("-v", "--verbose", action="store_true", help="show the plugin libraries' own messages")
    p.set_defaults(run=cmd_match)

    p = commands.add_parser("presets", help="DAW presets (.vstpreset, LV2 bundles) from match or fit-static settings")
    p.add_argument("settings", help="settings.json of `fxgrad match` or static.json of `fxgrad fit-static`")
    p.add_argument("out_dir")
    p.add_argument("--name", help="preset name (default: the settings file's name)")
    p.add_argument("-v", "--verbose", action="store_true", help="show the plugin libraries' own messages")
    p.set_defaults(run=cmd_presets)

    p = commands.add_parser("demo", help="generate audio, train, evaluate and render (a few minutes on 2 cores)")
    p.add_argument("--config", help="demo config (default configs/demo.yaml)")
    p.add_argument("--output", help="run folder (default runs/demo)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(run=cmd_demo)

    from . import tasks

    p = commands.add_parser("data", help="build data sets: the DeepAFx tasks' (build) or from your own files (pairs)")
    data_commands = p.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)
    build = data_commands.add_parser("build", help="build TASK's data set in OUT_DIR (docs/tasks.md)")
    tasks.add_build_arguments(build)
    build.set_defaults(run=tasks.run_build)
    from . import pairs

    made = data_commands.add_parser("pairs", help="a training folder from your own files (paired, or rendered targets)")
    pairs.add_arguments(made)
    made.set_defaults(run=pairs.run)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USAGE
    debug = bool(os.environ.get("FXGRAD_DEBUG"))
    from .config import ConfigError  # not .checkpoint: scan and info need no torch

    # torch is imported only by the commands that need it: `fxgrad scan` and `fxgrad info` run
    # (and start quickly) without it.
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt as interrupt:
        train = sys.modules.get("fxgrad.train")
        if train is not None and isinstance(interrupt, train.TrainingInterrupted):
            print(f"fxgrad: {interrupt}", file=sys.stderr)
            if getattr(args, "config", None):
                print(f"resume with: fxgrad {args.command} {args.config} --resume", file=sys.stderr)
        else:
            print("fxgrad: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`fxgrad scan | head`): no traceback, nothing more to write.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
    except ConfigError as error:
        if debug:
            traceback.print_exc()
        print(f"fxgrad: config error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, RuntimeError, OSError, MemoryError) as error:  # CheckpointError is a ValueError
        if debug:
            traceback.print_exc()
        print(f"fxgrad: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        dist = sys.modules.get("torch.distributed")  # only a command that trained can have a group
        try:
            if dist is not None and dist.is_available() and dist.is_initialized():
                dist.destroy_process_group()
        except Exception:
            pass


if __name__ == "__main__":
    sys.exit(main())
