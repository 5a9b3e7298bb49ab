"""``fxgrad scan``, ``info`` and ``check``: the installed plugins, one plugin's parameters, and
probing plugins before training with them."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

from ._output import fmt_number, native_chatter


def add_scan(commands) -> None:
    p = commands.add_parser("scan", help="list installed plugins (LV2, VST3, VST2, LADSPA and fxgrad's own)")
    p.add_argument("paths", nargs="*", help="extra folders or plugin files to scan")
    p.add_argument("--format", help="only this format (lv2, vst3, vst2, ladspa)")
    p.add_argument("--all", action="store_true", help="also the plugins fxgrad cannot host (MIDI/control only)")
    p.add_argument("--no-own", action="store_true", help="leave out fxgrad's own effects")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("-v", "--verbose", action="store_true", help="show the plugin libraries' own messages")
    p.set_defaults(run=cmd_scan)


def cmd_scan(args: argparse.Namespace) -> int:
    import fxgrad

    from ..base.text import format_table

    for path in args.paths:
        if not Path(path).exists():
            raise FileNotFoundError(f"no such file or folder: {path}")
    with native_chatter(args.verbose):
        infos = fxgrad.scan(args.paths, include_own=not args.no_own, include_unsupported=True)
    if args.format:
        infos = [i for i in infos if i.format.lower() == args.format.lower()]
    # Damaged files (a truncated library: fxgrad never opens it) are always listed, with why.
    unloadable = [i for i in infos if i.unsupported.startswith("unloadable")]
    hidden = [] if args.all else [i for i in infos if i.unsupported and i not in unloadable]
    infos = [i for i in infos if args.all or not i.unsupported or i in unloadable]
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
            i.unsupported if i in unloadable else f"not hostable: {i.unsupported}" if i.unsupported else "",
        ]
        for i in infos
    ]
    print(format_table(["format", "name", "vendor", "identifier", "ins/outs", "notes"], rows, align="llllll"))
    print(
        f"{len(infos) - len(unloadable)} plugin(s)"
        + (f"; {len(unloadable)} unloadable file(s), listed with the reason" if unloadable else "")
        + (
            f"; {len(hidden)} that fxgrad cannot host (no audio output or input) left out: --all lists them"
            if hidden
            else ""
        )
    )
    return 0


def add_info(commands) -> None:
    p = commands.add_parser("info", help="show a plugin's parameters")
    p.add_argument("plugin", help="LV2 URI, bundle, VST3, VST2 or LADSPA library, PATH#SELECTOR or fxgrad:NAME")
    p.add_argument("--select", help="which plugin of a bundle/library holding several")
    p.add_argument("--sample-rate", type=float, default=44100.0)
    p.add_argument("--block-size", type=int, default=1024)
    p.add_argument("--channels", type=int, default=2)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("-v", "--verbose", action="store_true", help="show the plugin library's own messages")
    p.set_defaults(run=cmd_info)


def cmd_info(args: argparse.Namespace) -> int:
    import fxgrad

    from ..base.text import format_table

    with native_chatter(args.verbose):
        plugin = fxgrad.load(
            args.plugin,
            sample_rate=args.sample_rate,
            block_size=args.block_size,
            channels=args.channels,
            plugin=args.select or "",
        )
    parameters = plugin.parameters
    if args.json:
        print(json.dumps(_info_json(plugin, parameters), indent=2))
        return 0
    print(f"{plugin.name} ({plugin.format}) by {plugin.vendor or 'unknown vendor'}")
    print(f"  identifier: {plugin.identifier}")
    print(
        f"  latency: {plugin.latency_samples} samples at {args.sample_rate:g} Hz; "
        f"DSP snapshot: {'yes' if plugin.has_dsp_snapshot else 'no'}"
    )
    rows = [_parameter_row(p) for p in parameters]
    print(
        format_table(
            ["id", "name", "unit", "min", "max", "default", "log", "steps/choices", "notes"], rows, align="lllrrrlll"
        )
    )
    print(f"{len(parameters)} parameter(s)")
    return 0


def _info_json(plugin, parameters) -> Dict[str, Any]:
    """What ``fxgrad info --json`` prints."""
    return {
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
    }


def _parameter_row(p) -> List[str]:
    """One parameter's row of the ``fxgrad info`` table."""
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
    return [
        p.id,
        p.name,
        p.unit,
        fmt_number(p.minimum),
        fmt_number(p.maximum),
        fmt_number(p.default),
        "yes" if p.logarithmic else "",
        steps,
        ", ".join(notes),
    ]


def add_check(commands) -> None:
    p = commands.add_parser("check", help="probe plugins in sandboxed processes: load, render, state, determinism")
    _check_arguments(p)
    p.set_defaults(run=cmd_check)


def _check_arguments(parser) -> None:
    """The options of ``fxgrad check``."""
    from ..host.check import DEFAULT_TIMEOUT_S

    parser.add_argument(
        "plugins",
        nargs="*",
        metavar="PLUGIN",
        help="what `fxgrad.load` takes (a URI, a path, PATH#SELECTOR, fxgrad:NAME); "
        "default: every plugin `fxgrad scan --all` lists",
    )
    parser.add_argument("--format", help="only plugins of this format (lv2, vst3, vst2, ladspa)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="S",
        help=f"seconds a plugin may take before it counts as hung (default {DEFAULT_TIMEOUT_S:g})",
    )
    parser.add_argument("--jobs", type=int, help="worker processes (default: the CPU count, at most 4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise and the random settings")
    parser.add_argument("--sample-rate", type=float, default=44100.0)
    parser.add_argument("--block-size", type=int, default=512)
    parser.add_argument("--channels", type=int, default=2)
    parser.add_argument(
        "--no-presets",
        action="store_true",
        help="skip the state and preset round trip through another process (and the reset check)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output (results and summary)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def cmd_check(args: argparse.Namespace) -> int:
    """``fxgrad check``: one line per plugin as it finishes, then a summary per format. Exit status
    0 when every plugin is ok, 1 otherwise."""
    from ..base.text import format_table
    from ..host.check import (
        ROUND_TRIPS,
        STATUSES,
        Target,
        check,
        describe,
        scan_targets,
        summarize,
        summarize_round_trips,
    )

    started = time.monotonic()
    if args.timeout <= 0:
        raise ValueError(f"--timeout must be positive, got {args.timeout:g}")
    if args.plugins:
        targets = [Target(p) for p in args.plugins]
    else:
        targets = scan_targets()
    if args.format:
        wanted = args.format.upper()
        targets = [t for t in targets if not t.format or t.format == wanted]
    bar = None
    if not args.no_progress and sys.stderr.isatty() and len(targets) > 1:
        from tqdm import tqdm

        bar = tqdm(total=len(targets), unit="plugin", file=sys.stderr, dynamic_ncols=True)

    def progress(result: Dict[str, Any]) -> None:
        if not args.json:
            (bar.write if bar is not None else print)(describe(result))
        if bar is not None:
            bar.set_postfix_str(result.get("name") or result["identifier"], refresh=False)
            bar.update()

    try:
        results = check(
            targets,
            jobs=args.jobs,
            timeout_s=args.timeout,
            seed=args.seed,
            sample_rate=args.sample_rate,
            block_size=args.block_size,
            channels=args.channels,
            progress=progress,
            worker="fxgrad.host.check_worker" if args.no_presets else "fxgrad.io.check_presets",
        )
    finally:
        if bar is not None:
            bar.close()
    summary, round_trips = summarize(results), summarize_round_trips(results)
    seconds = time.monotonic() - started
    if args.json:
        output = {"results": results, "summary": summary, "round_trips": round_trips, "seconds": round(seconds, 1)}
        print(json.dumps(output, indent=2))
    else:
        rows = [[fmt, row["total"], *(row[s] for s in STATUSES)] for fmt, row in summary.items()]
        print()
        print(format_table(["format", "plugins", *STATUSES], rows, align="lrrrrr"))
        if round_trips:
            print()
            rows = [[fmt, *(row[k] for k in ROUND_TRIPS)] for fmt, row in round_trips.items()]
            headers = ["format", "state, other process", "preset, other process", "lilv reads preset", "reset = fresh"]
            print(format_table(headers, rows, align="lrrrr"))
        print(f"{len(results)} plugin(s) checked in {seconds:.0f} s")
    return 0 if all(r["status"] == "ok" for r in results) else 1
