"""``fxgrad apply``, ``render``, ``match`` and ``presets``: audio files through a chain, with a
model's automation, given settings or settings found by search, and those settings as DAW
presets."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ._output import native_chatter


def add_apply(commands) -> None:
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
    p.add_argument(
        "--smooth",
        metavar="auto|none|KIND:MS",
        default="auto",
        help="smooth the predicted parameters over time: auto (default): the setting the run's validation clips "
        "prefer, as fxgrad evaluate chooses it (kept beside the checkpoint); one-pole:MS, median:MS or none",
    )
    p.add_argument("--valid", help="validation folder for --smooth auto (default: the run's validation split)")
    p.add_argument("--device", default="cpu")
    p.set_defaults(run=cmd_apply)


def cmd_apply(args: argparse.Namespace) -> int:
    from ..evaluation.apply import apply_file
    from .training import smoothing_argument

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
        smoothing=smoothing_argument(args),
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

    from ..io.params import read_parameter_csv

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


def add_render(commands) -> None:
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


def cmd_render(args: argparse.Namespace) -> int:
    import math

    import numpy as np

    from ..config.chainfile import chain_config, load_chain, set_plain
    from ..data.audio import read_audio, write_audio
    from ..host.render import render_automation

    learned, thetas, frame = None, None, None
    if args.params:
        rate = float(chain_config(args.chain).get("sample_rate", 44100))
        learned, thetas, frame = _csv_automation(args.params, rate)
    with native_chatter(args.verbose):
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


def add_match(commands) -> None:
    from ..match.search import DEFAULT_BUDGET, LOSSES, METHODS

    p = commands.add_parser(
        "match", help="find the chain settings that make INPUT sound like REFERENCE (docs/matching.md)"
    )
    p.add_argument("input", help="audio file, or a folder of them (one setting for all pairs)")
    p.add_argument("reference", help="audio file, or a folder paired with INPUT's by file name")
    p.add_argument("--chain", required=True, help="chain file (plugins, learned, pinned, ...) or a training config")
    p.add_argument(
        "--method",
        choices=METHODS,
        default="auto",
        help="auto (default: the strategy bench/match_cases.py found best, docs/matching.md), plain CMA-ES "
        "from the chain's settings, or fit-static's SPSA",
    )
    p.add_argument(
        "--budget",
        type=int,
        help="the most renders (default %d for auto, %d for cma) or SPSA steps (default %d)"
        % (DEFAULT_BUDGET["auto"], DEFAULT_BUDGET["cma"], DEFAULT_BUDGET["spsa"]),
    )
    p.add_argument("--population", type=int, help="CMA-ES population (auto: its own; cma: 32)")
    p.add_argument("--sigma", type=float, help="CMA-ES initial step, normalised (auto: its own; cma: 0.1)")
    p.add_argument("--start", type=float, metavar="SECONDS", help="match from this time of INPUT and REFERENCE on")
    p.add_argument("--duration", type=float, metavar="SECONDS", help="match this much of them (from --start)")
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


def cmd_match(args: argparse.Namespace) -> int:
    from ..match.search import match_files, match_report

    with native_chatter(args.verbose):
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
            start=args.start,
            duration=args.duration,
        )
    print(match_report(result))
    return 0


def add_presets(commands) -> None:
    p = commands.add_parser(
        "presets", help="DAW presets (.vstpreset, .fxp, LV2 bundles) from match or fit-static settings"
    )
    p.add_argument("settings", help="settings.json of `fxgrad match` or static.json of `fxgrad fit-static`")
    p.add_argument("out_dir")
    p.add_argument("--name", help="preset name (default: the settings file's name)")
    p.add_argument("-v", "--verbose", action="store_true", help="show the plugin libraries' own messages")
    p.set_defaults(run=cmd_presets)


def cmd_presets(args: argparse.Namespace) -> int:
    import numpy as np

    from ..host.plugins import Chain
    from ..io.presets import write_presets

    settings = json.loads(Path(args.settings).read_text())
    if not {"chain", "parameters", "normalised"} <= set(settings):
        raise ValueError(f"{args.settings} is not a settings file of `fxgrad match` or `fxgrad fit-static`")
    with native_chatter(args.verbose):
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
