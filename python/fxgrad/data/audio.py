"""Audio files in and out: the package's one reader (and its conversion to a rate and channel
count), the writer, and soxr resampling.

Audio is float32 shaped (channels, samples) everywhere. :func:`read_file` is the only place that
reads samples from a file; :func:`read_audio` adds the conversion that training, ``fxgrad
apply``, ``fxgrad render``, ``fxgrad match`` and ``fxgrad data pairs`` apply to their inputs, and
:func:`conversions` says in words what that conversion does to a file. The channel policy is
:func:`channel_change`: a mono file is copied to every channel, more channels are averaged to
mono, and only where asked (``keep_first_channels``: ``fxgrad data pairs``) are the first
channels of a file with more kept; anything else is refused.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, List, Optional, Tuple

import numpy as np

from ..base.files import PathLike, atomic_write_bytes


def read_file(path: PathLike) -> Tuple[np.ndarray, int]:
    """``(audio, rate)``: a file's samples as float32 (channels, samples), as the file holds
    them, and its sample rate in Hz. Raises FileNotFoundError for a missing file, ValueError for
    one that cannot be read, holds no samples or holds NaN or infinite ones."""
    frames, rate = _read_frames(path)
    return np.ascontiguousarray(frames.T), rate


def _read_frames(path: PathLike) -> Tuple[np.ndarray, int]:
    """:func:`read_file` as soundfile gives it: (samples, channels)."""
    import soundfile

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such audio file: {path}")
    try:
        frames, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as error:  # soundfile raises several types for corrupt or unknown files
        raise ValueError(f"cannot read audio file {path}: {error}") from error
    if frames.shape[0] == 0:
        raise ValueError(f"audio file {path} has no samples")
    if not np.isfinite(frames).all():
        raise ValueError(f"audio file {path} contains NaN or infinite samples")
    return frames, int(rate)


def read_header(path: PathLike) -> Any:
    """The file's header (``soundfile.info``: ``samplerate``, ``channels``, ``frames``) without
    reading its samples; ValueError when it cannot be read."""
    import soundfile

    try:
        return soundfile.info(str(path))
    except Exception as error:
        raise ValueError(f"cannot read audio file {path}: {error}") from error


def channel_change(have: int, channels: int, keep_first_channels: bool = False) -> Optional[str]:
    """How a file of ``have`` channels becomes ``channels``: None (as it is), ``"copy"`` (mono
    to every channel), ``"average"`` (to mono) or ``"first"`` (the first ``channels`` kept,
    only with ``keep_first_channels``). Raises ValueError when none of these gives
    ``channels``, its message to follow the file's name ("has 3 channels, which ...")."""
    if have == channels:
        return None
    if have == 1:
        return "copy"
    if channels == 1:
        return "average"
    if keep_first_channels and have > channels:
        return "first"
    fewer = " or fewer (the first)" if keep_first_channels else ""
    raise ValueError(f"has {have} channels, which give {have}{fewer} or 1 (their average), not {channels}")


def resample(audio: np.ndarray, rate_in: int, rate_out: int, quality: str) -> np.ndarray:
    """(C, N) -> (C, M) float32 with soxr at ``quality`` (``"HQ"``, soxr's default, as
    :func:`read_audio` reads; ``"VHQ"`` for the task builders' data sets); deterministic, and
    the array itself (as float32) when the rates are equal."""
    if rate_in == rate_out:
        return audio.astype(np.float32, copy=False)
    out = _resample_frames(np.ascontiguousarray(audio.T, dtype=np.float32), rate_in, rate_out, quality)
    return np.ascontiguousarray(out.reshape(-1, audio.shape[0]).T)


def _resample_frames(frames: np.ndarray, rate_in: int, rate_out: int, quality: str) -> np.ndarray:
    """(N, C) -> (M, C) float32: soxr takes and gives frames in rows."""
    import soxr

    return np.asarray(soxr.resample(frames, rate_in, rate_out, quality=quality), dtype=np.float32)


def read_audio(path: PathLike, sample_rate: int, channels: int, *, keep_first_channels: bool = False) -> np.ndarray:
    """A file as float32 (channels, samples) at ``sample_rate`` Hz: :func:`read_file`, then
    resampled (soxr, ``"HQ"``) and brought to ``channels`` by :func:`channel_change` (with
    ``keep_first_channels``), in that order. Raises as :func:`read_file`, and ValueError when
    the file's channels cannot give ``channels``."""
    # Converted in soundfile's (samples, channels) layout, transposed once at the end.
    frames, rate = _read_frames(path)
    try:
        change = channel_change(frames.shape[1], channels, keep_first_channels)
    except ValueError as error:
        raise ValueError(f"{path} {error}") from None
    if rate != sample_rate:
        frames = _resample_frames(frames, rate, sample_rate, "HQ")
    if change == "copy":
        frames = np.repeat(frames, channels, axis=1)
    elif change == "average":
        frames = frames.mean(axis=1, keepdims=True)
    elif change == "first":
        frames = frames[:, :channels]
    return np.ascontiguousarray(frames.T)


def conversions(path: PathLike, sample_rate: int, channels: int, *, keep_first_channels: bool = False) -> List[str]:
    """What :func:`read_audio` does to the file at ``path`` to bring it to ``sample_rate`` Hz
    and ``channels`` channels, as sentences (empty when it is read as it is)."""
    info = read_header(path)
    done = []
    if info.samplerate != sample_rate:
        done.append(f"resampled from {info.samplerate} Hz to {sample_rate} Hz")
    change = channel_change(info.channels, channels, keep_first_channels)
    if change == "average":
        done.append(f"downmixed from {info.channels} channels to mono (their average)")
    elif change == "copy":
        done.append(f"mono copied to {channels} channels")
    elif change == "first":
        done.append(f"the first {channels} of {info.channels} channels kept")
    return done


def write_audio(path: PathLike, audio: np.ndarray, sample_rate: int) -> None:
    """Write (channels, samples) audio atomically; the format follows the extension (WAV
    float32 for .wav, FLAC 24-bit for .flac)."""
    import soundfile

    path = Path(path)
    buffer = io.BytesIO()
    suffix = path.suffix.lower()
    if suffix == ".flac":
        soundfile.write(buffer, np.asarray(audio).T, int(sample_rate), format="FLAC", subtype="PCM_24")
    elif suffix == ".wav":
        soundfile.write(buffer, np.asarray(audio).T, int(sample_rate), format="WAV", subtype="FLOAT")
    else:
        raise ValueError(f"{path}: write .wav or .flac")
    atomic_write_bytes(path, buffer.getvalue())
