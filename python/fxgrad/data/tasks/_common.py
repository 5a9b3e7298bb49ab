"""Helpers shared by the task builders: sources and their licences, fluidsynth, seeded random
streams, deterministic atomic WAV files, plugin rendering with latency compensation."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import tempfile
import threading
import time
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ...base.files import PathLike, atomic_write_bytes
from ..audio import read_file

SPLITS = ("train", "valid", "test")
SIZES = ("tiny", "small", "medium", "full")
#: Bumped whenever a builder's output changes for the same seed and size.
FORMAT_VERSION = 1


class SourceMissingError(FileNotFoundError):
    """A source of real audio (or a tool) that the builder needs is not installed; the message
    names the apt package that provides it."""


# ---------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class Source:
    name: str
    path: str
    package: str
    licence: str
    note: str = ""

    def as_dict(self) -> Dict[str, str]:
        out = {"name": self.name, "path": self.path, "apt_package": self.package, "licence": self.licence}
        if self.note:
            out["note"] = self.note
        return out


def _search_dirs(env: str, defaults: Sequence[str]) -> List[Path]:
    """Folders to look in: ``$ENV`` alone when it is set (a colon-separated list), else the
    defaults (where Debian installs the package)."""
    value = os.environ.get(env)
    if value:
        return [Path(p) for p in value.split(os.pathsep) if p]
    return [Path(p) for p in defaults]


SOUNDFONT_DIRS_ENV = "FXGRAD_SOUNDFONT_DIR"
SOUNDFONT_DIRS = ("/usr/share/sounds/sf2", "/usr/share/soundfonts", "/usr/local/share/sounds/sf2")
FLUID_R3 = ("FluidR3_GM.sf2", "fluid-soundfont-gm", "MIT (Frank Wen and contributors)")
TIMGM6MB = ("TimGM6mb.sf2", "timgm6mb-soundfont", "GPL-2 (Tim Brechbill)")


def find_soundfont(size: str) -> Source:
    """TimGM6mb for ``tiny``; FluidR3_GM for the others, TimGM6mb (with a warning) when
    FluidR3_GM is not installed."""
    dirs = _search_dirs(SOUNDFONT_DIRS_ENV, SOUNDFONT_DIRS)
    found = {}
    for file, package, licence in (FLUID_R3, TIMGM6MB):
        for folder in dirs:
            if (folder / file).is_file():
                found[file] = Source(file, str(folder / file), package, licence)
                break
    order = [TIMGM6MB[0]] if size == "tiny" else [FLUID_R3[0], TIMGM6MB[0]]
    for k, file in enumerate(order):
        if file in found:
            if k > 0:
                warnings.warn(
                    f"FluidR3_GM.sf2 not found in {', '.join(map(str, dirs))}; using the smaller TimGM6mb.sf2 "
                    "(install the apt package fluid-soundfont-gm for the better soundfont)",
                    stacklevel=3,
                )
            return found[file]
    wanted = " or ".join(
        f"{f} (apt package {p})" for f, p, _ in ((TIMGM6MB,) if size == "tiny" else (FLUID_R3, TIMGM6MB))
    )
    raise SourceMissingError(
        f"no soundfont: looked for {wanted} in {', '.join(map(str, dirs))}. Install it with "
        f"`apt-get install --no-install-recommends {TIMGM6MB[1] if size == 'tiny' else FLUID_R3[1]}` "
        f"(or point ${SOUNDFONT_DIRS_ENV} at a folder holding it)"
    )


def require_tool(tool: str, package: str, why: str) -> str:
    path = shutil.which(tool)
    if not path:
        raise SourceMissingError(
            f"`{tool}` is not installed ({why}). Install it with `apt-get install --no-install-recommends {package}`"
        )
    return path


# ---------------------------------------------------------------------------- randomness


def rng(seed: int, *keys: Union[str, int]) -> np.random.Generator:
    """An independent stream for (seed, keys...): the same keys give the same numbers whatever
    order or thread the work runs in."""
    words = [int(seed) & 0xFFFFFFFF, (int(seed) >> 32) & 0xFFFFFFFF]
    for key in keys:
        words.append(zlib.crc32(str(key).encode()) if isinstance(key, str) else int(key) & 0xFFFFFFFF)
    return np.random.default_rng(np.random.SeedSequence(words))


# ---------------------------------------------------------------------------- audio files


def wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    """A float32 WAV file (WAVE_FORMAT_IEEE_FLOAT) holding ``audio`` shaped (channels, samples).
    Written by hand so that the same samples always give the same bytes (libsndfile's float
    files carry a PEAK chunk with a time stamp)."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    channels, frames = audio.shape
    if not np.all(np.isfinite(audio)):
        raise ValueError("audio holds NaN or infinity")
    data = np.ascontiguousarray(audio.T).astype("<f4").tobytes()
    block = 4 * channels
    fmt = struct.pack("<HHIIHHH", 3, channels, int(sample_rate), int(sample_rate) * block, block, 32, 0)
    fact = struct.pack("<I", frames)
    body = (
        b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"fact"
        + struct.pack("<I", 4)
        + fact
        + b"data"
        + struct.pack("<I", len(data))
        + data
    )
    return b"RIFF" + struct.pack("<I", len(body)) + body


def flac_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    """A 16-bit FLAC file (about a fifth to a third of the float WAV's size; no dither, values
    clipped to the 16-bit range)."""
    import io

    import soundfile

    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    if not np.all(np.isfinite(audio)):
        raise ValueError("audio holds NaN or infinity")
    buffer = io.BytesIO()
    soundfile.write(buffer, np.clip(audio.T, -1.0, 32767 / 32768), int(sample_rate), format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


AUDIO_FORMATS = {"wav": ".wav", "flac": ".flac"}


def write_wav(path: PathLike, audio: np.ndarray, sample_rate: int) -> None:
    """Write ``audio`` (channels, samples) as float32 WAV, or as 16-bit FLAC when ``path`` ends
    in .flac; atomically."""
    if str(path).lower().endswith(".flac"):
        atomic_write_bytes(path, flac_bytes(audio, sample_rate))
    else:
        atomic_write_bytes(path, wav_bytes(audio, sample_rate))


def write_json(path: PathLike, value: Any) -> None:
    atomic_write_bytes(path, (json.dumps(value, indent=1, sort_keys=False) + "\n").encode())


def db(value: float) -> float:
    return float(20 * np.log10(max(float(value), 1e-12)))


def undb(value: float) -> float:
    return float(10 ** (value / 20))


def peak(audio: np.ndarray) -> float:
    return float(np.max(np.abs(audio))) if audio.size else 0.0


# ---------------------------------------------------------------------------- fluidsynth


def render_midi(
    midi_path: PathLike, soundfont: Source, sample_rate: int, gain: float = 0.3, seconds: Optional[float] = None
) -> np.ndarray:
    """Render a MIDI file with fluidsynth (no reverb, no chorus): float32 (2, samples)."""
    exe = require_tool("fluidsynth", "fluidsynth", "it renders the MIDI material")
    with tempfile.TemporaryDirectory(prefix="fxgrad-fluid-") as folder:
        out = Path(folder) / "out.wav"
        command = [
            exe,
            "-ni",
            "-q",
            "-R",
            "0",
            "-C",
            "0",
            "-g",
            f"{gain:g}",
            "-r",
            str(int(sample_rate)),
            "-O",
            "float",
            "-T",
            "wav",
            "-F",
            str(out),
            soundfont.path,
            str(midi_path),
        ]
        # fluidsynth renders far faster than real time and stops only when every voice has ended:
        # a voice that never ends keeps it writing (tens of GB in minutes). Stop it once the file
        # outgrows the material it was given, or after a generous time.
        expected = (seconds or 600.0) + 30.0
        max_bytes = int(expected * sample_rate * 2 * 4) + (1 << 20)
        limit = 60.0 + expected
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        started = time.monotonic()
        while process.poll() is None:
            too_big = out.is_file() and out.stat().st_size > max_bytes
            if too_big or time.monotonic() - started > limit:
                process.kill()
                process.communicate()
                why = "wrote more audio than the MIDI lasts" if too_big else f"did not finish within {limit:.0f} s"
                raise RuntimeError(f"fluidsynth {why} (a voice that never ends?): {' '.join(command)}")
            time.sleep(0.05)
        stderr = process.communicate()[1]
        result = subprocess.CompletedProcess(command, process.returncode, "", stderr)
        if result.returncode != 0 or not out.is_file():
            raise RuntimeError(f"fluidsynth failed ({result.returncode}): {' '.join(command)}\n{result.stderr.strip()}")
        audio, rate = read_file(out)
    if rate != sample_rate:
        raise RuntimeError(f"fluidsynth wrote {rate} Hz instead of {sample_rate} Hz")
    return np.repeat(audio, 2, axis=0) if audio.shape[0] == 1 else audio


# ---------------------------------------------------------------------------- plugins


@dataclass
class PluginSpec:
    """One plugin of a hidden chain at fixed plain settings."""

    uri: str
    settings: Dict[str, float]

    def as_dict(self) -> Dict[str, Any]:
        return {"plugin": self.uri, "settings": {k: float(v) for k, v in self.settings.items()}}


_LOAD_LOCK = threading.Lock()


def render_chain(
    specs: Sequence[PluginSpec], audio: np.ndarray, sample_rate: int, block_size: int = 256
) -> Tuple[np.ndarray, int]:
    """Run ``audio`` (C, N) through fresh instances of ``specs`` in series; returns the output
    aligned with the input (each plugin's reported latency removed, its tail fed with zeros) and
    the total latency that was removed."""
    from ...host.loading import load

    channels, frames = audio.shape
    total = 0
    x = np.ascontiguousarray(audio, dtype=np.float32)
    for spec in specs:
        with _LOAD_LOCK:  # loading from several threads at once corrupts the host's LV2 world
            plugin = load(spec.uri, sample_rate=sample_rate, block_size=block_size, channels=channels)
            for name, value in spec.settings.items():
                plugin.set(name, float(value))
        # the tail: the reported latency (asked again after processing: it can depend on the
        # settings) plus room, rounded up to whole blocks
        pad = int(plugin.latency_samples) + 8192
        pad += (-(frames + pad)) % block_size
        padded = np.concatenate([x, np.zeros((channels, pad), np.float32)], axis=1)
        y = plugin.process(padded)
        latency = int(plugin.latency_samples)
        x = np.ascontiguousarray(y[:, latency : latency + frames])
        if x.shape[1] < frames:
            raise RuntimeError(f"{spec.uri}: latency {latency} longer than the padding")
        total += latency
        if not np.all(np.isfinite(x)):
            raise RuntimeError(f"{spec.uri} produced NaN/inf with settings {spec.settings}")
    return x, total


def best_lag(reference: np.ndarray, signal: np.ndarray, max_lag: int) -> Tuple[int, float]:
    """(lag, correlation) maximising |xcorr| of two 1-D signals; a positive lag means ``signal``
    is late."""
    n = len(reference)
    size = 1 << int(np.ceil(np.log2(2 * n)))
    spectrum = np.fft.rfft(signal, size) * np.conj(np.fft.rfft(reference, size))
    corr = np.fft.irfft(spectrum, size)
    lags = np.concatenate([np.arange(0, max_lag + 1), np.arange(-max_lag, 0)])
    values = corr[lags % size]
    k = int(np.argmax(np.abs(values)))
    norm = np.sqrt(np.sum(reference**2) * np.sum(signal**2)) + 1e-20
    return int(lags[k]), float(values[k] / norm)


# ---------------------------------------------------------------------------- output folders


def clear_outputs(out_dir: Path) -> None:
    """Remove what a previous build left (the audio files and the manifest) so that a rebuild
    never mixes two data sets."""
    (out_dir / "manifest.json").unlink(missing_ok=True)
    for split in SPLITS:
        for role in ("input", "target"):
            folder = out_dir / split / role
            if folder.is_dir():
                for path in folder.iterdir():
                    if path.is_file() and (path.suffix.lower() in (".wav", ".flac") or path.name.endswith(".tmp")):
                        path.unlink()


def clip_paths(out_dir: Path, split: str, name: str, suffix: str = ".wav") -> Tuple[Path, Path]:
    return out_dir / split / "input" / f"{name}{suffix}", out_dir / split / "target" / f"{name}{suffix}"


def progress_bar(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="clip", disable=not enabled, leave=True, dynamic_ncols=True)


def split_counts(total: int, valid_fraction: float = 0.1, test_fraction: float = 0.1) -> Dict[str, int]:
    valid = max(1, int(round(total * valid_fraction)))
    test = max(1, int(round(total * test_fraction)))
    return {"train": max(1, total - valid - test), "valid": valid, "test": test}


def fade(audio: np.ndarray, samples: int) -> np.ndarray:
    """Short raised-cosine fade in and out (avoid clicks at clip edges); in place."""
    n = min(samples, audio.shape[-1] // 2)
    if n > 0:
        ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, n, dtype=np.float64))
        audio[..., :n] *= ramp.astype(audio.dtype)
        audio[..., -n:] *= ramp[::-1].astype(audio.dtype)
    return audio
