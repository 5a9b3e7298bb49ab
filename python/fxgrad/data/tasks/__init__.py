"""Data sets for the three DeepAFx tasks, built from real audio that installs with apt.

    build("tube_amp", "data/tube_amp", seed=0, size="small")

writes ``OUT/{train,valid,test}/{input,target}/NAME.wav`` (float32 WAV, or 16-bit FLAC with
``audio_format="flac"``; mono, paired by name)
and ``OUT/manifest.json`` (task, seed, size, the sources and their licences, the hidden
processing, per-clip metadata). The same (task, seed, size, sample_rate) always gives the same
files, byte for byte. See docs/tasks.md.

Tasks: ``tube_amp`` (fluidsynth guitar/bass -> ZamTube), ``breath_removal`` (Asterisk speech with
synthesised breaths and lip smacks -> the clean speech), ``mastering`` (OpenMSX multitrack mixes
-> ZamComp -> ZamGEQ31 -> ZaMaximX2, settings per song: drawn, or chosen from the mix).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from ...base.files import PathLike
from ._common import (
    AUDIO_FORMATS,
    FORMAT_VERSION,
    SIZES,
    SPLITS,
    SourceMissingError,
    clear_outputs,
    write_json,
)
from .mastering_engineers import DEFAULT_ENGINEER, ENGINEERS

TASKS = ("tube_amp", "breath_removal", "mastering")

__all__ = ["TASKS", "SIZES", "build", "main", "add_build_arguments", "run_build", "SourceMissingError", "load_manifest"]


def _one_of(value: Any, choices, name: str, plural: str) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; the {plural} are: {', '.join(choices)}")


def _module(task: str):
    _one_of(task, TASKS, "task", "tasks")
    return importlib.import_module(f".{task}", __name__)


def build(
    task: str,
    out_dir: PathLike,
    seed: int = 0,
    size: str = "full",
    sample_rate: int = 22050,
    progress: bool = True,
    force: bool = False,
    audio_format: str = "wav",
    engineer: Optional[str] = None,
) -> Dict[str, Any]:
    """Build the data set of ``task`` in ``out_dir`` and return its manifest.

    Args:
        task: ``"tube_amp"``, ``"breath_removal"`` or ``"mastering"``.
        out_dir: receives ``{train,valid,test}/{input,target}/*.wav`` and ``manifest.json``.
        seed: every random choice derives from it.
        size: ``"tiny"`` (a few 2-s clips, for tests), ``"small"`` (about 8 minutes of audio),
            ``"medium"`` (small's valid and test clips, 2.5-3 times its training audio),
            ``"full"`` (30-45 minutes, for the device machine).
        sample_rate: Hz of the written files (sources are rendered or resampled to it).
        progress: a tqdm progress bar on stderr.
        force: rebuild even when ``out_dir`` already holds this very data set.
        audio_format: ``"wav"`` (float32, the reference) or ``"flac"`` (16-bit, 3-8 times
            smaller: for carrying a data set to another machine).
        engineer: mastering only: who sets the hidden chain per song, ``"rules"`` (the
            default: chosen from the mix by fixed rules, so a model of the mix can learn them)
            or ``"random"`` (every setting drawn per song, whatever the mix: a control).

    Raises:
        SourceMissingError: a source or tool is not installed (the message names the apt
            package).
        ValueError: an unknown task, size or engineer, or an engineer for another task.
    """
    module = _module(task)
    options: Dict[str, Any] = {}
    if task == "mastering":
        options["engineer"] = engineer or DEFAULT_ENGINEER
        _one_of(options["engineer"], ENGINEERS, "engineer", "engineers")
    elif engineer is not None:
        raise ValueError(f"engineer applies to the mastering task only, not to {task!r}")
    _one_of(size, SIZES, "size", "sizes")
    _one_of(audio_format, AUDIO_FORMATS, "audio_format", "formats")
    suffix = AUDIO_FORMATS[audio_format]
    sample_rate = int(sample_rate)
    if not 8000 <= sample_rate <= 96000:
        raise ValueError(f"sample_rate must be within 8000..96000 Hz, got {sample_rate}")
    out = Path(out_dir)
    key = {
        "task": task,
        "seed": int(seed),
        "size": size,
        "sample_rate": sample_rate,
        "audio_format": audio_format,
        "version": FORMAT_VERSION,
        **options,
    }
    existing = None if force else _built_already(out, key, suffix)
    if existing is not None:
        if progress:
            print(f"{out}: already holds {task} (seed {seed}, {size}); pass force=True to rebuild", file=sys.stderr)
        return existing
    clear_outputs(out)
    started = time.perf_counter()
    manifest = _manifest(key, module.build(out, int(seed), size, sample_rate, progress, suffix, **options), suffix)
    # the build time is left out so that the same seed gives the same manifest
    write_json(out / "manifest.json", manifest)
    if progress:
        counts, seconds = manifest["clips_per_split"], manifest["seconds_per_split"]
        print(
            f"{task}: {sum(counts.values())} clips, {sum(seconds.values()) / 60:.1f} min of audio in {out} "
            f"({time.perf_counter() - started:.1f} s)",
            file=sys.stderr,
        )
    return manifest


def _built_already(out: Path, key: Dict[str, Any], suffix: str) -> Optional[Dict[str, Any]]:
    """The manifest in ``out`` when it describes this very data set (``key``) and every clip it
    lists is there, else None."""
    manifest_path = out / "manifest.json"
    if not manifest_path.is_file():
        return None
    try:
        existing = json.loads(manifest_path.read_text())
    except ValueError:
        existing = {}
    if all(existing.get(k) == v for k, v in key.items()) and _complete(out, existing, suffix):
        return existing
    return None


def _manifest(key: Dict[str, Any], body: Dict[str, Any], suffix: str) -> Dict[str, Any]:
    """The manifest of a data set: what identifies it (``key``), counts per split, and what the
    task's builder returned (``body``: sources, hidden processing, clips)."""
    counts = {split: sum(1 for c in body["clips"] if c["split"] == split) for split in SPLITS}
    seconds = {split: round(sum(c["seconds"] for c in body["clips"] if c["split"] == split), 3) for split in SPLITS}
    return {
        **key,
        "channels": 1,
        "format": ("WAV float32" if key["audio_format"] == "wav" else "FLAC 16-bit")
        + f", mono; input/NAME{suffix} pairs with target/NAME{suffix}",
        "clips_per_split": counts,
        "seconds_per_split": seconds,
        **body,
    }


def _complete(out: Path, manifest: Dict[str, Any], suffix: str) -> bool:
    for clip in manifest.get("clips", []):
        for role in ("input", "target"):
            if not (out / clip["split"] / role / f"{clip['name']}{suffix}").is_file():
                return False
    return bool(manifest.get("clips"))


def load_manifest(out_dir: PathLike) -> Dict[str, Any]:
    return json.loads((Path(out_dir) / "manifest.json").read_text())


def add_build_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The arguments of ``build TASK OUT_DIR [...]`` on ``parser`` (for ``fxgrad data build``);
    pair with ``parser.set_defaults(run=run_build)``."""
    parser.add_argument("task", choices=TASKS)
    parser.add_argument("out_dir")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--size",
        choices=SIZES,
        default="full",
        help="tiny: a few 2-s clips (tests); small: about 8 min (quick runs); medium: small's valid and test "
        "clips, 2.5-3x its training audio; full: 35-45 min",
    )
    parser.add_argument("--sample-rate", type=int, default=22050)
    parser.add_argument(
        "--format",
        choices=AUDIO_FORMATS,
        default="wav",
        dest="audio_format",
        help="wav: float32 (default); flac: 16-bit, several times smaller",
    )
    parser.add_argument(
        "--engineer",
        choices=ENGINEERS,
        help="mastering: the hidden chain's settings per song chosen from the mix by fixed rules "
        "(default) or drawn at random, whatever the mix (a control no model can learn)",
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if OUT_DIR already holds this data set")
    parser.add_argument("--quiet", "--no-progress", action="store_true", dest="quiet", help="no progress bar")
    return parser


def run_build(args: argparse.Namespace) -> int:
    """Runs a parsed ``build`` command; returns the exit status (1 with a message naming the apt
    package when a source is missing)."""
    try:
        build(
            args.task,
            args.out_dir,
            seed=args.seed,
            size=args.size,
            sample_rate=args.sample_rate,
            progress=not args.quiet,
            force=args.force,
            audio_format=args.audio_format,
            engineer=args.engineer,
        )
    except SourceMissingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m fxgrad.data.tasks build TASK OUT_DIR [--seed N] [--size tiny|small|medium|full]
    [--sample-rate HZ] [--format wav|flac] [--engineer random|rules] [--force] [--quiet]``; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m fxgrad.data.tasks", description="Build the DeepAFx task data sets."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    add_build_arguments(commands.add_parser("build", help="build a task's data set"))
    return run_build(parser.parse_args(argv))
