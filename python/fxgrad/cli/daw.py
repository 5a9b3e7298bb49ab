"""``fxgrad session``: an Ardour 7 session of a file through a chain, at a static or matched
setting or with a trained model's automation (see :mod:`fxgrad.io.session` and docs/daw.md)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ._output import native_chatter


def add_session(commands) -> None:
    from ..io.session_spec import AUTOMATION_MODES

    p = commands.add_parser(
        "session", help="an Ardour 7 session: the input on a track through the chain, with a model's automation"
    )
    p.add_argument("out_dir", help="the session folder to create (it must not exist)")
    p.add_argument("--input", required=True, help="audio file for the track (read at the chain's rate and channels)")
    source = p.add_argument_group("the chain and its setting (--model, or --chain and/or --settings)")
    source.add_argument("--chain", help="chain file (plugins, learned, pinned, ...) or a training config")
    source.add_argument("--settings", help="settings.json of `fxgrad match` or static.json of `fxgrad fit-static`")
    source.add_argument(
        "--set",
        action="append",
        metavar="NAME=VALUE",
        help="a parameter in plain units, e.g. 0.threshold_db=-20 (repeatable; after --settings)",
    )
    source.add_argument("--model", metavar="CHECKPOINT", help="a trained model: its chain, automated per frame")
    p.add_argument("--smooth", metavar="KIND:MS", help="with --model: smooth the automation (see fxgrad apply)")
    p.add_argument("--device", default="cpu", help="with --model: where the encoder runs")
    p.add_argument(
        "--automation",
        choices=AUTOMATION_MODES,
        default="steps",
        help="steps: the frames' values as steps, as fxgrad renders them (default); "
        "linear: one point per frame, ramps between (docs/daw.md measures both)",
    )
    p.add_argument("--name", help="session name (default: the folder's name)")
    p.add_argument("--track", default="fxgrad", help="track name (default fxgrad)")
    p.add_argument(
        "--check", action="store_true", help="export the session headless and compare it with fxgrad's own render"
    )
    p.add_argument("-v", "--verbose", action="store_true", help="show the plugin libraries' own messages")
    p.set_defaults(run=cmd_session)


def _static_chain(args: argparse.Namespace):
    """``(chain, audio)`` for --chain/--settings/--set: the chain at its setting, the input read."""
    import numpy as np

    from ..config.chainfile import load_chain, set_plain
    from ..data.audio import read_audio
    from ..host.plugins import Chain

    settings = None
    if args.settings:
        settings = json.loads(Path(args.settings).read_text())
        if not {"chain", "parameters", "normalised"} <= set(settings):
            raise ValueError(f"{args.settings} is not a settings file of `fxgrad match` or `fxgrad fit-static`")
    if args.chain:
        chain, _ = load_chain(args.chain, settings["parameters"] if settings else None)
    else:
        chain = Chain.from_config(settings["chain"])
    if settings:
        if list(chain.learned) != list(settings["parameters"]):
            raise ValueError(
                f"{args.settings}: the chain learns {chain.learned}, its settings are for {settings['parameters']}"
            )
        chain.set_learned(np.asarray(settings["normalised"], np.float32))
    set_plain(chain, args.set or ())
    return chain, read_audio(args.input, int(round(chain.sample_rate)), chain.channels)


def cmd_session(args: argparse.Namespace) -> int:
    from ..io.session import write_session

    if args.model and (args.chain or args.settings or args.set):
        raise ValueError("--model brings its own chain: give it without --chain, --settings or --set")
    if not (args.model or args.chain or args.settings):
        raise ValueError("give --model CHECKPOINT, or --chain CHAIN and/or --settings SETTINGS.json")
    if (args.smooth or args.device != "cpu") and not args.model:
        raise ValueError("--smooth and --device go with --model")
    thetas = frame_size = model = None
    with native_chatter(args.verbose):
        if args.model:
            from ..data.audio import read_audio
            from ..nn.smoothing import Smoothing
            from ..train.model import TrainedModel

            model = TrainedModel.from_checkpoint(args.model, args.device)
            audio = read_audio(args.input, model.sample_rate, model.channels)
            chain, frame_size = model.new_chain(), model.frame_size
            thetas = model.predict(audio, smoothing=Smoothing.parse(args.smooth) if args.smooth else None)
        else:
            chain, audio = _static_chain(args)
        session = write_session(
            args.out_dir,
            audio,
            chain,
            thetas=thetas,
            frame_size=frame_size,
            name=args.name,
            track=args.track,
            automation=args.automation,
        )
        _report(session, chain, thetas, frame_size, args.automation)
        if args.check:
            _check(session, chain, audio, thetas, frame_size, model)
    return 0


def _report(session, chain, thetas, frame_size, automation: str) -> None:
    from ..io.session import opening_command

    rate = int(round(chain.sample_rate))
    print(f"session:    {session.file}")
    print(f"track:      {session.track}: the input, {chain.channels} channel(s) at {rate} Hz")
    print("plugins:    " + " -> ".join(f"{p.name} ({p.format})" for p in chain.plugins))
    if thetas is not None:
        print(
            f"automation: {len(chain.learned)} lane(s) ({', '.join(chain.learned)}), {len(thetas)} frames of "
            f"{frame_size} samples, as {automation}"
        )
    for skipped in session.skipped:
        print(f"not set:    {skipped} (Ardour has no control for it; the plugin keeps its own value)")
    for note in session.notes:
        print(f"note:       {note}")
    print(f"open with:  {opening_command(session)}")
    if rate < 44100:
        print(
            "            (below 44.1 kHz, Ardour 7.3 plays a track only with its disk buffering set to small: "
            "preference Disk I/O Buffering, Small sessions; fxgrad's own runs of Ardour set it)"
        )


def _check(session, chain, audio, thetas, frame_size, model) -> None:
    """Export the session with ardour7-export and compare it with fxgrad's render of the same."""
    from ..host.render import render_automation
    from ..io.session import compare_renders, export_to_array

    if thetas is None:
        reference = chain.clone().process(audio)
    else:
        reference = render_automation(model.new_chain(), audio, thetas, frame_size)
    exported = export_to_array(session)
    figures = compare_renders(reference, exported[: chain.channels], chain.latency_samples)
    if figures["max_abs"] == 0:
        verdict = "identical, sample for sample"
    else:
        verdict = (
            f"max |difference| {figures['max_abs']:.3g} ({figures['max_db']:.1f} dB re the render's peak), "
            f"error {figures['error_db']:.1f} dB re its RMS"
        )
    print(f"check:      Ardour's export of {figures['samples']} samples vs fxgrad's render: {verdict}")
