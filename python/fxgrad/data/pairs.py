"""``fxgrad data pairs``: a training folder from a user's own files, without writing code.

Inputs pair with targets by name (the path below each folder without its extension, or the file
name alone where that is unique), or targets are rendered from the inputs through a chain at
hidden settings (fixed with ``--set``, or drawn at random per clip with ``--random``). Every
file is resampled (soxr) to one rate and brought to one channel count (mono is repeated, more
channels are averaged to mono or their first channels kept), cut into clips, and the clips of
each source file go to one split, so no material is shared between train, valid and test::

    OUT/manifest.json                     what was made from what, with which settings
    OUT/{train,valid,test}/input/NAME_000.wav
    OUT/{train,valid,test}/target/NAME_000.wav
    OUT/{train,valid,test}/params/NAME_000.csv    (rendered targets: the hidden setting per frame)

``data: {train: OUT/train, valid: OUT/valid, test: OUT/test}`` in a training config uses it;
``fxgrad evaluate CHECKPOINT OUT/test`` scores on it (and, with params/, reports the parameter
error against the hidden settings).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..base.files import PathLike, atomic_write_bytes
from ..base.folders import AUDIO_SUFFIXES, audio_files, pair_by_name

SPLITS = ("train", "valid", "test")


def cut(audio: np.ndarray, clip_samples: Optional[int], min_samples: int) -> List[np.ndarray]:
    """Consecutive clips of ``clip_samples`` (all of it when None); a last piece shorter than
    ``min_samples`` is dropped."""
    length = audio.shape[-1]
    if clip_samples is None:
        return [audio] if length >= min_samples else []
    pieces = [audio[:, start : start + clip_samples] for start in range(0, length, clip_samples)]
    return [p for p in pieces if p.shape[-1] >= min_samples]


def assign_splits(count: int, valid: float, test: float, seed: int) -> List[str]:
    """A split per source file: ``round(fraction x count)`` files each for valid and test (at
    least one when the fraction is above 0 and there are 3 files or more), the rest train; the
    files shuffled with ``seed``."""
    if not (0 <= valid < 1 and 0 <= test < 1 and valid + test < 1):
        raise ValueError(f"--valid and --test are fractions of the files with a sum below 1, got {valid} and {test}")
    sizes = {}
    for name, fraction in (("valid", valid), ("test", test)):
        size = int(round(fraction * count))
        sizes[name] = max(size, 1) if fraction > 0 and count >= 3 else size
    if sizes["valid"] + sizes["test"] >= count:
        sizes = {"valid": 0, "test": 0}
    order = np.random.default_rng(seed).permutation(count)
    splits = ["train"] * count
    for position, index in enumerate(order):
        if position < sizes["valid"]:
            splits[index] = "valid"
        elif position < sizes["valid"] + sizes["test"]:
            splits[index] = "test"
    return splits


@dataclass
class _Clip:
    name: str
    split: str
    source: str
    input: np.ndarray
    target: Optional[np.ndarray] = None


def build_pairs(
    inputs: PathLike,
    out_dir: PathLike,
    targets: Optional[PathLike] = None,
    chain: Optional[PathLike] = None,
    settings: Sequence[str] = (),
    random_settings: bool = False,
    sample_rate: Optional[int] = None,
    channels: Optional[int] = None,
    clip_seconds: Optional[float] = 10.0,
    min_seconds: float = 1.0,
    valid: float = 0.1,
    test: float = 0.1,
    frame_size: int = 1024,
    length_tolerance: float = 0.05,
    seed: int = 0,
    threads: Optional[int] = None,
    progress: bool = True,
) -> Dict[str, Any]:
    """Build the training folder ``out_dir`` (see the module's description) and return its
    manifest. Targets come from ``targets`` (a folder paired by name with ``inputs``) or are
    rendered through ``chain`` (a chain file) with ``settings`` (``NAME=VALUE``, plain units)
    and, with ``random_settings``, the learned parameters drawn uniformly in [0.1, 0.9]
    (normalised) per clip. ``sample_rate``/``channels`` default to the chain's, else 44100 Hz
    and 2. ``clip_seconds`` None keeps whole files. ``frame_size``: rows of the params CSVs
    (match the training config's ``frame_size``)."""
    out_dir = Path(out_dir)
    _check_options(out_dir, targets, chain, settings, random_settings, clip_seconds)
    manifest: Dict[str, Any] = {"generator": "fxgrad data pairs", "inputs": str(inputs)}
    manifest["targets"] = None if targets is None else str(targets)
    rendering = None
    if chain is not None:
        rendering, rendered = _load_rendering(chain, settings, sample_rate, channels)
        sample_rate, channels = int(round(rendering.sample_rate)), rendering.channels
        found = audio_files(Path(inputs), "input", AUDIO_SUFFIXES, recursive=True)
        sources = [(key.replace("/", "__"), path, None) for key, path in found.items()]
    else:
        sample_rate, channels = sample_rate or 44100, channels or 2
        sources = pair_by_name(inputs, targets)
    clip_samples = None if clip_seconds is None else int(round(clip_seconds * sample_rate))
    lengths = (clip_samples, max(1, int(round(min_seconds * sample_rate))), length_tolerance)
    splits = assign_splits(len(sources), valid, test, seed)
    clips, skipped = _read_clips(sources, splits, sample_rate, channels, lengths, progress)
    if not clips:
        raise ValueError("no clip was made (files shorter than --min-seconds?)")
    notes = [f"{source}: shorter than --min-seconds {min_seconds:g}; skipped" for source in skipped]
    thetas = None
    if rendering is not None:
        thetas = np.tile(np.asarray(rendering.get_learned(), np.float32), (len(clips), 1))
        if random_settings:
            thetas = np.random.default_rng([seed, 1]).uniform(0.1, 0.9, thetas.shape).astype(np.float32)
        _render_targets(rendering, clips, thetas, threads, progress)
    rows = _write_clips(out_dir, clips, sample_rate, rendering, thetas, frame_size, progress)
    manifest.update(sample_rate=sample_rate, channels=channels, clip_seconds=clip_seconds, min_seconds=min_seconds)
    manifest.update(seed=seed, splits={s: r for s, r in rows.items() if r}, notes=notes)
    if rendering is not None:
        manifest.update(rendered, random=random_settings, frame_size=frame_size)
    atomic_write_bytes(out_dir / "manifest.json", json.dumps(manifest, indent=2).encode())
    return manifest


def _check_options(out_dir: Path, targets, chain, settings: Sequence[str], random_settings: bool, clip_seconds) -> None:
    """ValueError (FileExistsError for a used folder) for options that contradict each other."""
    if (targets is None) == (chain is None):
        raise ValueError("give either --targets DIR (pairs by name) or --chain CHAIN.yaml (render the targets)")
    if (settings or random_settings) and chain is None:
        raise ValueError("--set and --random choose the hidden settings of --chain; there is no chain")
    if clip_seconds is not None and clip_seconds <= 0:
        raise ValueError(f"--clip-seconds must be > 0, got {clip_seconds}")
    if (out_dir / "manifest.json").exists() or any((out_dir / s).exists() for s in SPLITS):
        raise FileExistsError(f"{out_dir} already holds a data set; choose a new folder")


def _load_rendering(chain: PathLike, settings: Sequence[str], sample_rate: Optional[int], channels: Optional[int]):
    """``(chain, manifest entries)``: the chain file loaded at its ``NAME=VALUE`` settings;
    ValueError when ``sample_rate``/``channels`` are given and differ from the chain's."""
    from ..config.chainfile import load_chain, set_plain

    rendering, chain_config = load_chain(chain)
    applied = set_plain(rendering, settings)
    sample_rate = sample_rate or int(round(rendering.sample_rate))
    channels = channels or rendering.channels
    if sample_rate != int(round(rendering.sample_rate)) or channels != rendering.channels:
        raise ValueError(
            f"the chain runs at {rendering.sample_rate:g} Hz with {rendering.channels} channel(s); "
            f"targets rendered through it have those (drop --sample-rate/--channels)"
        )
    return rendering, {"chain": chain_config, "parameters": list(rendering.learned), "set": applied}


def _read_clips(
    sources: Sequence[Tuple[str, Path, Optional[Path]]],
    splits: Sequence[str],
    sample_rate: int,
    channels: int,
    lengths: Tuple[Optional[int], int, float],
    progress: bool,
) -> Tuple[List[_Clip], List[Path]]:
    """``(clips, sources too short for one clip)``: each source (and its target) read at
    ``sample_rate`` and ``channels``, trimmed to the shorter of the two and :func:`cut`.
    ``lengths``: clip samples (None: whole files), minimum samples, and the seconds an input
    and its target may differ (more is a ValueError)."""
    from tqdm import tqdm

    from .audio import read_audio

    clip_samples, min_samples, length_tolerance = lengths
    clips: List[_Clip] = []
    skipped: List[Path] = []
    for (name, source, target), split in tqdm(
        list(zip(sources, splits)), desc="reading", unit="file", disable=not progress, leave=False
    ):
        audio = read_audio(source, sample_rate, channels, keep_first_channels=True)
        if target is not None:
            reference = read_audio(target, sample_rate, channels, keep_first_channels=True)
            if abs(audio.shape[-1] - reference.shape[-1]) > length_tolerance * sample_rate:
                raise ValueError(
                    f"{source.name} lasts {audio.shape[-1] / sample_rate:.3f} s but its target {target} "
                    f"{reference.shape[-1] / sample_rate:.3f} s (more than --length-tolerance "
                    f"{length_tolerance} s apart)"
                )
            length = min(audio.shape[-1], reference.shape[-1])
            pieces = zip(
                cut(audio[:, :length], clip_samples, min_samples), cut(reference[:, :length], clip_samples, min_samples)
            )
        else:
            pieces = ((piece, None) for piece in cut(audio, clip_samples, min_samples))
        made = len(clips)
        for k, (piece, target_piece) in enumerate(pieces):
            clips.append(_Clip(f"{name}_{k:03d}", split, str(source), piece, target_piece))
        if len(clips) == made:
            skipped.append(source)
    return clips, skipped


def _write_clips(
    out_dir: Path, clips: List[_Clip], sample_rate: int, rendering, thetas, frame_size: int, progress: bool
) -> Dict[str, List[Dict[str, Any]]]:
    """Write every clip's input, target (and, for rendered targets, its params CSV of
    ``frame_size`` frames); returns the manifest's rows by split."""
    from tqdm import tqdm

    from ..io.params import write_parameter_csv
    from .audio import write_audio

    rows_by_split: Dict[str, List[Dict[str, Any]]] = {s: [] for s in SPLITS}
    for index, clip in enumerate(tqdm(clips, desc="writing", unit="clip", disable=not progress, leave=False)):
        folder = out_dir / clip.split
        write_audio(folder / "input" / f"{clip.name}.wav", clip.input, sample_rate)
        write_audio(folder / "target" / f"{clip.name}.wav", clip.target, sample_rate)
        row: Dict[str, Any] = {"clip": clip.name, "source": clip.source, "seconds": clip.input.shape[-1] / sample_rate}
        if thetas is not None:
            frames = math.ceil(clip.input.shape[-1] / frame_size)
            write_parameter_csv(
                folder / "params" / f"{clip.name}.csv", rendering, np.tile(thetas[index], (frames, 1)), frame_size
            )
            row["normalised"] = [float(v) for v in thetas[index]]
        rows_by_split[clip.split].append(row)
    return rows_by_split


def _render_targets(
    chain, clips: List[_Clip], thetas: np.ndarray, threads: Optional[int], progress: bool, max_bytes: int = 256 << 20
) -> None:
    """Each clip through the chain from a fresh state at its setting, clips of one length in
    batches (:func:`fxgrad.render_batch`)."""
    from tqdm import tqdm

    from ..host.batch import render_batch

    by_length: Dict[int, List[int]] = {}
    for index, clip in enumerate(clips):
        by_length.setdefault(clip.input.shape[-1], []).append(index)
    bar = tqdm(total=len(clips), desc="rendering targets", unit="clip", disable=not progress, leave=False)
    for length, members in by_length.items():
        group = max(1, max_bytes // (4 * chain.channels * length))
        for start in range(0, len(members), group):
            chosen = members[start : start + group]
            audio = np.stack([clips[i].input for i in chosen])
            for i, out in zip(chosen, render_batch(chain, thetas[chosen], audio, threads)):
                clips[i].target = out
            bar.update(len(chosen))
    bar.close()


def add_arguments(parser) -> None:
    """The options of ``fxgrad data pairs``."""
    parser.add_argument("inputs", help="folder of input audio (searched recursively)")
    parser.add_argument("out_dir", help="new folder for the data set")
    parser.add_argument("--targets", help="folder of target audio, paired with the inputs by name")
    parser.add_argument("--chain", help="render the targets through this chain file (a chain or training config)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a hidden setting of the chain in plain units, e.g. 0.threshold_db=-24 (repeatable)",
    )
    parser.add_argument(
        "--random",
        action="store_true",
        help="draw the learned parameters at random per clip (uniform 0.1-0.9 normalised)",
    )
    parser.add_argument("--sample-rate", type=int, help="Hz (default: the chain's, else 44100)")
    parser.add_argument("--channels", type=int, help="channels (default: the chain's, else 2)")
    parser.add_argument(
        "--clip-seconds", type=float, default=10.0, help="clip length (default 10; 0 keeps whole files)"
    )
    parser.add_argument("--min-seconds", type=float, default=1.0, help="shorter pieces are dropped (default 1)")
    parser.add_argument("--valid", type=float, default=0.1, help="fraction of the files for validation (default 0.1)")
    parser.add_argument("--test", type=float, default=0.1, help="fraction of the files for testing (default 0.1)")
    parser.add_argument(
        "--frame-size", type=int, default=1024, help="frames of the params CSVs (the config's frame_size)"
    )
    parser.add_argument(
        "--length-tolerance",
        type=float,
        default=0.05,
        help="seconds an input and its target may differ (both are trimmed to the shorter)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="rendering threads (default: all cores)")
    parser.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    """``fxgrad data pairs``: build, then print what was made and the config lines to use it."""
    manifest = build_pairs(
        args.inputs,
        args.out_dir,
        targets=args.targets,
        chain=args.chain,
        settings=args.set,
        random_settings=args.random,
        sample_rate=args.sample_rate,
        channels=args.channels,
        clip_seconds=args.clip_seconds or None,
        min_seconds=args.min_seconds,
        valid=args.valid,
        test=args.test,
        frame_size=args.frame_size,
        length_tolerance=args.length_tolerance,
        seed=args.seed,
        threads=args.threads,
        progress=not args.no_progress,
    )
    for note in manifest["notes"]:
        print(f"note: {note}")
    counts = ", ".join(f"{split} {len(rows)} clips" for split, rows in manifest["splits"].items())
    print(f"{counts} at {manifest['sample_rate']} Hz, {manifest['channels']} channel(s) in {args.out_dir}")
    print("use it in a training config:\n  data:")
    for split in manifest["splits"]:
        print(f"    {split}: {Path(args.out_dir) / split}")
    return 0
