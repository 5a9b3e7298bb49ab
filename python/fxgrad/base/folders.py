"""Folders of audio: the files a folder holds, input and target folders paired by name, and a data
split's ``input/``, ``target/`` and ``params/`` subfolders.

One pairing serves the trainer's data sets (:class:`fxgrad.data.stream.PairedAudioDataset`, the files
directly in each folder), ``fxgrad data pairs`` and ``fxgrad match`` (searched recursively), and
one split layout the training config and ``fxgrad evaluate``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from .files import PathLike

AUDIO_SUFFIXES = (".wav", ".flac", ".aif", ".aiff", ".ogg", ".mp3")
"""File name endings (case-insensitive) of the audio that ``fxgrad data pairs`` and ``fxgrad
match`` read from a folder."""

_SHOWN = 10
"""Unpaired files named in an error, at most."""


def audio_files(folder: Path, role: str, suffixes: Sequence[str], recursive: bool) -> Dict[str, Path]:
    """``{key: path}`` for the audio files in ``folder`` whose names end in one of ``suffixes``
    (case-insensitive; hidden files skipped), below it too when ``recursive``. ``key`` is the
    path below the folder without extension (the name without extension when not recursive).
    ValueError for a missing folder, one without such files, or two files of one key; ``role``
    ("input", "target") names the folder in the message."""
    if not folder.is_dir():
        raise ValueError(f"{role} folder does not exist or is not a folder: {folder}")
    files: Dict[str, Path] = {}
    for path in sorted(folder.rglob("*") if recursive else folder.iterdir()):
        if path.is_file() and path.suffix.lower() in suffixes and not path.name.startswith("."):
            key = path.relative_to(folder).with_suffix("").as_posix()
            if key in files:
                raise ValueError(f"{role} folder has two files named {key!r}: {files[key].name} and {path.name}")
            files[key] = path
    if not files:
        raise ValueError(f"{role} folder holds no {'/'.join(suffixes)} files: {folder}")
    return files


def _by_stem(files: Dict[str, Path]) -> Optional[Dict[str, Path]]:
    """The files keyed by file name alone, or None when two share one."""
    stems: Dict[str, Path] = {}
    for path in files.values():
        if path.stem in stems:
            return None
        stems[path.stem] = path
    return stems


def _listed(keys: List[str], files: Dict[str, Path], folder: Path) -> str:
    shown = keys[:_SHOWN]
    names = ", ".join(files[key].relative_to(folder).as_posix() for key in shown)
    return f"{shown}{' ...' if len(keys) > _SHOWN else ''}{f' ({names})' if shown else ''}"


def pair_by_name(
    inputs: PathLike, targets: PathLike, suffixes: Sequence[str] = AUDIO_SUFFIXES, recursive: bool = True
) -> List[Tuple[str, Path, Path]]:
    """``(name, input, target)`` for the audio files of two folders (:func:`audio_files`),
    sorted, paired by their path below the folder without extension, or by file name alone when
    the paths differ but every name is unique. ``name`` is that key with ``/`` as ``__``.
    Raises ValueError naming the unpaired files."""
    input_dir, target_dir = Path(inputs), Path(targets)
    a = audio_files(input_dir, "input", suffixes, recursive)
    b = audio_files(target_dir, "target", suffixes, recursive)
    if set(a) != set(b):
        stems_a, stems_b = _by_stem(a), _by_stem(b)
        if stems_a is not None and stems_b is not None and len(set(stems_a) & set(stems_b)) > len(set(a) & set(b)):
            a, b = stems_a, stems_b
    lonely_inputs, lonely_targets = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    if lonely_inputs or lonely_targets:
        raise ValueError(
            f"unpaired files: inputs without a target {_listed(lonely_inputs, a, input_dir)}, "
            f"targets without an input {_listed(lonely_targets, b, target_dir)}"
        )
    return [(key.replace("/", "__"), a[key], b[key]) for key in sorted(a)]


def pair_paths(input_path: Path, reference_path: Path) -> List[Tuple[str, Path, Path]]:
    """:func:`pair_by_name` of two folders, or the one ``(name, input, reference)`` of two
    files; ValueError for a file and a folder, FileNotFoundError for a missing file."""
    if input_path.is_dir() != reference_path.is_dir():
        raise ValueError("INPUT and REFERENCE must both be files or both be folders (paired by file name)")
    if not input_path.is_dir():
        for path in (input_path, reference_path):
            if not path.is_file():
                raise FileNotFoundError(f"no such audio file: {path}")
        return [(input_path.stem, input_path, reference_path)]
    return pair_by_name(input_path, reference_path)


def split_folders(data: PathLike) -> Tuple[Path, Path, Optional[Path]]:
    """``(inputs, targets, params)`` of a data split folder: its ``input/`` and ``target/``
    subfolders (or ``inputs/`` and ``targets/``), and ``params/`` (hidden settings per frame)
    or None where it has none. FileNotFoundError when it holds no such pair."""
    folder = Path(data)
    for inputs, targets in (("input", "target"), ("inputs", "targets")):
        if (folder / inputs).is_dir() and (folder / targets).is_dir():
            params = folder / "params"
            return folder / inputs, folder / targets, params if params.is_dir() else None
    raise FileNotFoundError(f"{folder} must be a folder holding input/ and target/ subfolders (paired by file name)")
