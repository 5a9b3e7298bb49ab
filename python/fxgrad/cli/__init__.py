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

The verbs live beside their options, by group: :mod:`.plugins` (scan, info, check),
:mod:`.training` (train, fit-static, evaluate, demo), :mod:`.rendering` (apply, render, match,
presets), :mod:`.data` (data build, data pairs); :mod:`.demo` is the demo's run. See
docs/training.md and docs/matching.md.

Layers, lowest first (each imports only from the layers before it): base, host, torch, nn, io,
config, data, train, match, evaluation, **cli**: this one may use them all.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import traceback
from typing import Optional, Sequence

from . import data, daw, plugins, rendering, training

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fxgrad",
        description="Train neural networks end to end through real audio plugins (SPSA gradients).",
        epilog="Set FXGRAD_DEBUG=1 for tracebacks. Docs: docs/training.md",
    )
    parser.add_argument("--version", action="version", version="fxgrad 0.1.0")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    # In the order `fxgrad --help` lists them.
    for add in (
        plugins.add_scan,
        plugins.add_info,
        plugins.add_check,
        training.add_train,
        training.add_fit_static,
        training.add_evaluate,
        training.add_oracle,
        rendering.add_apply,
        rendering.add_render,
        rendering.add_match,
        rendering.add_presets,
        daw.add_session,
        training.add_demo,
        data.add_data,
    ):
        add(commands)
    return parser


def resume_command(argv: Sequence[str]) -> str:
    """The command line that continues an interrupted run: the one given, with ``--resume``. Its
    ``--output`` and ``--set`` options name the run folder and the config the checkpoint holds,
    so they must come back as they were."""
    return shlex.join(["fxgrad", *(a for a in argv if a != "--resume"), "--resume"])


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USAGE
    debug = bool(os.environ.get("FXGRAD_DEBUG"))
    from ..config.schema import ConfigError  # not .checkpoint: scan and info need no torch

    # torch is imported only by the commands that need it: `fxgrad scan` and `fxgrad info` run
    # (and start quickly) without it.
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt as interrupt:
        train = sys.modules.get("fxgrad.train")
        if train is not None and isinstance(interrupt, train.TrainingInterrupted):
            print(f"fxgrad: {interrupt}", file=sys.stderr)
            if getattr(args, "config", None):
                print(f"resume with: {resume_command(sys.argv[1:] if argv is None else argv)}", file=sys.stderr)
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
