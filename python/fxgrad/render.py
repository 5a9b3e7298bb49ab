"""Rendering whole files through the real plugins with a trained model's per-frame automation,
and the file plumbing around it (audio in/out, parameter CSVs, the summary plot).

A trained model renders a clip as in training, but on one fresh lane: the clip is cut into
frames of N samples; each frame's context window (W samples centred on it, zeros outside the
clip) goes through the encoder, and the chain processes the frames in order with each frame's
predicted parameters. ``fxgrad apply`` is :func:`apply_file`.
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch

from ._device import usable_device
from ._files import atomic_write_bytes
from .checkpoint import load_checkpoint
from .encoder import Encoder
from .host import Chain

PathLike = Union[str, os.PathLike]


# ---------------------------------------------------------------------------- files


def read_audio(path: PathLike, sample_rate: int, channels: int) -> np.ndarray:
    """Read a file as float32 (channels, samples) at ``sample_rate`` (resampled with soxr when
    needed); channels are averaged to mono or a mono file replicated, as the training data."""
    import soundfile
    import soxr

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such audio file: {path}")
    try:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as error:
        raise ValueError(f"cannot read audio file {path}: {error}") from error
    if samples.shape[0] == 0:
        raise ValueError(f"audio file {path} has no samples")
    if rate != sample_rate:
        samples = soxr.resample(samples, rate, sample_rate).astype(np.float32)
    if samples.shape[1] != channels:
        if channels == 1:
            samples = samples.mean(axis=1, keepdims=True)
        elif samples.shape[1] == 1:
            samples = np.repeat(samples, channels, axis=1)
        else:
            raise ValueError(f"{path} has {samples.shape[1]} channels; the model takes {channels}")
    if not np.isfinite(samples).all():
        raise ValueError(f"audio file {path} contains NaN or infinite samples")
    return np.ascontiguousarray(samples.T)


def conversions(path: PathLike, sample_rate: int, channels: int) -> List[str]:
    """What :func:`read_audio` does to the file at ``path`` to bring it to ``sample_rate`` Hz
    and ``channels`` channels, as sentences (empty when it is read as it is)."""
    import soundfile

    info = soundfile.info(str(path))
    done = []
    if info.samplerate != sample_rate:
        done.append(f"resampled from {info.samplerate} Hz to {sample_rate} Hz")
    if info.channels != channels:
        if channels == 1:
            done.append(f"downmixed from {info.channels} channels to mono (their average)")
        elif info.channels == 1:
            done.append(f"mono copied to {channels} channels")
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


def plain_values(chain: Chain, thetas: np.ndarray) -> np.ndarray:
    """(frames, P) plain-unit values of the learned parameters for normalised ``thetas``."""
    plugins = chain.plugins
    where = []
    for name in chain.learned:
        index, _, parameter = name.partition(".")
        where.append((plugins[int(index)], parameter))
    previous = np.asarray(chain.get_learned(), np.float32)
    out = np.empty(np.shape(thetas), dtype=np.float64)
    try:  # only parameter values change (no audio runs), and they are put back
        for k, theta in enumerate(np.asarray(thetas, dtype=np.float32)):
            chain.set_learned(np.ascontiguousarray(theta))
            out[k] = [plugin.get(parameter) for plugin, parameter in where]
    finally:
        chain.set_learned(previous)
    return out


def parameter_units(chain: Chain) -> List[str]:
    units = []
    for name in chain.learned:
        index, _, parameter = name.partition(".")
        plugin = chain.plugins[int(index)]
        info = plugin.parameters[plugin.parameter_index(parameter)]
        units.append(info.unit)
    return units


def write_parameter_csv(path: PathLike, chain: Chain, thetas: np.ndarray, frame_size: int) -> None:
    """One row per frame: ``frame``, ``time_s`` (the frame's start), then each learned
    parameter in plain units (``NAME``) and normalised (``NAME [norm]``)."""
    thetas = np.asarray(thetas, dtype=np.float32)
    plain = plain_values(chain, thetas)
    names = list(chain.learned)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["frame", "time_s", *names, *[f"{n} [norm]" for n in names]])
    rate = float(chain.sample_rate)
    for k in range(len(thetas)):
        writer.writerow(
            [k, f"{k * frame_size / rate:.6f}", *[f"{v:.6g}" for v in plain[k]], *[f"{v:.6f}" for v in thetas[k]]]
        )
    atomic_write_bytes(path, buffer.getvalue().encode())


def read_parameter_csv(path: PathLike, names: Optional[Sequence[str]] = None) -> np.ndarray:
    """(frames, P) normalised values from a parameter CSV written by :func:`write_parameter_csv`."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise ValueError(f"{path} holds no rows")
    columns = list(rows[0].keys())
    if names is None:
        names = [c[: -len(" [norm]")] for c in columns if c.endswith(" [norm]")]
    missing = [n for n in names if f"{n} [norm]" not in columns]
    if missing:
        raise ValueError(f"{path} has no normalised column for {missing} (columns: {columns})")
    return np.array([[float(row[f"{n} [norm]"]) for n in names] for row in rows], dtype=np.float32)


# ---------------------------------------------------------------------------- rendering


def frame_count(samples: int, frame_size: int) -> int:
    return int(math.ceil(samples / frame_size))


def render_automation(chain: Chain, audio: np.ndarray, thetas: np.ndarray, frame_size: int) -> np.ndarray:
    """Process ``audio`` (C, samples) through ``chain`` frame by frame, frame k with normalised
    parameters ``thetas[k]``; the chain keeps its state from frame to frame (pass a fresh or
    reset chain). Returns (C, samples) float32."""
    audio = np.asarray(audio, dtype=np.float32)
    channels, samples = audio.shape
    frames = frame_count(samples, frame_size)
    thetas = np.asarray(thetas, dtype=np.float32)
    if thetas.shape != (frames, chain.num_parameters):
        raise ValueError(f"thetas must be shaped ({frames}, {chain.num_parameters}), got {thetas.shape}")
    padded = np.zeros((channels, frames * frame_size), np.float32)
    padded[:, :samples] = audio
    out = np.empty_like(padded)
    for k in range(frames):
        chain.set_learned(np.ascontiguousarray(thetas[k]))
        span = slice(k * frame_size, (k + 1) * frame_size)
        out[:, span] = chain.process(np.ascontiguousarray(padded[:, span]))
    return out[:, :samples]


def render_static(chain: Chain, audio: np.ndarray, theta: np.ndarray, frame_size: int) -> np.ndarray:
    """Process ``audio`` with fixed normalised parameters ``theta`` (P,)."""
    frames = frame_count(np.shape(audio)[-1], frame_size)
    return render_automation(chain, audio, np.tile(np.asarray(theta, np.float32), (frames, 1)), frame_size)


def contexts(audio: torch.Tensor, frame_size: int, context: int, start: int, stop: int) -> torch.Tensor:
    """(stop - start, C, W) context windows of frames ``start..stop`` of ``audio`` (C, samples),
    as :class:`fxgrad.data.FrameStreamer` cuts them: the frame begins ``(W - N) // 2`` samples
    into its window, zeros outside the clip."""
    offset = (context - frame_size) // 2
    channels, samples = audio.shape
    first = start * frame_size - offset
    last = (stop - 1) * frame_size - offset + context
    left, right = max(0, -first), max(0, last - samples)
    span = audio[:, max(first, 0) : min(last, samples)]
    padded = torch.nn.functional.pad(span, (left, right))
    windows = padded.unfold(-1, context, frame_size)  # (C, frames, W)
    return windows.permute(1, 0, 2).contiguous()


@dataclass
class TrainedModel:
    """A checkpoint made usable: the encoder (eval mode), the chain configuration and the
    per-parameter mask of a progressive run (masked parameters are held at ``defaults``)."""

    encoder: Encoder
    chain_config: Dict[str, Any]
    names: List[str]
    defaults: np.ndarray
    active: np.ndarray
    frame_size: int
    sample_rate: int
    channels: int
    checkpoint: Dict[str, Any]
    device: torch.device

    @classmethod
    def from_checkpoint(cls, path: PathLike, device: Union[str, torch.device] = "cpu") -> "TrainedModel":
        device = usable_device(device) if isinstance(device, str) else device
        state = load_checkpoint(path)
        encoder = Encoder(**state["encoder"])
        encoder.load_state_dict(state["model"])
        encoder.to(device).eval()
        chain = state["chain"]
        return cls(
            encoder=encoder,
            chain_config=chain,
            names=list(state["parameters"]),
            defaults=np.asarray(state["defaults"], np.float32),
            active=np.asarray(state["active"], bool),
            frame_size=int(state["encoder"]["frame_size"]),
            sample_rate=int(round(float(chain["sample_rate"]))),
            channels=int(chain["channels"]),
            checkpoint=state,
            device=device,
        )

    def new_chain(self) -> Chain:
        """A fresh chain (new plugin instances) as the model was trained with."""
        return Chain.from_config(self.chain_config)

    @torch.no_grad()
    def predict(self, audio: np.ndarray, batch: int = 64) -> np.ndarray:
        """(frames, P) normalised parameters for a (C, samples) clip."""
        signal = torch.as_tensor(np.asarray(audio, np.float32))
        frames = frame_count(signal.shape[-1], self.frame_size)
        out = []
        for start in range(0, frames, batch):
            stop = min(frames, start + batch)
            windows = contexts(signal, self.frame_size, self.encoder.context, start, stop).to(self.device)
            out.append(self.encoder(windows).cpu())
        theta = torch.cat(out).numpy()
        return np.where(self.active[None, :], theta, self.defaults[None, :]).astype(np.float32)

    def render(self, audio: np.ndarray, chain: Optional[Chain] = None):
        """``(output (C, samples), thetas (frames, P))`` for a (C, samples) clip."""
        thetas = self.predict(audio)
        chain = chain if chain is not None else self.new_chain()
        return render_automation(chain, audio, thetas, self.frame_size), thetas


# ---------------------------------------------------------------------------- the plot


def plot_render(
    path: PathLike,
    sample_rate: int,
    frame_size: int,
    names: Sequence[str],
    thetas: np.ndarray,
    input_audio: np.ndarray,
    output_audio: np.ndarray,
    target_audio: Optional[np.ndarray] = None,
    reference: Optional[np.ndarray] = None,
    title: str = "",
    plugin_names: Sequence[str] = (),
) -> None:
    """PNG: spectrograms of input, output (and target), then the normalised parameter curves,
    one panel per plugin (``names`` are "INDEX.PARAMETER"; ``plugin_names[INDEX]`` titles the
    panel), with the reference trajectory dashed when known. Written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("input", input_audio), ("output (model)", output_audio)]
    if target_audio is not None:
        panels.append(("target", target_audio))
    groups: Dict[str, List[int]] = {}
    for k, name in enumerate(names):
        groups.setdefault(name.partition(".")[0], []).append(k)
    heights = [1.0] * len(panels) + [1.1] * len(groups)
    figure, axes = plt.subplots(
        len(heights), 1, figsize=(12, 1.9 * sum(heights)), sharex=True, gridspec_kw={"height_ratios": heights}
    )
    duration = np.shape(input_audio)[-1] / sample_rate
    for axis, (label, audio) in zip(axes, panels):
        mono = np.asarray(audio, np.float64).mean(axis=0)
        # Zero padding at the ends, not reflection: a clip shorter than the window still plots.
        spectrum = (
            torch.stft(
                torch.from_numpy(mono),
                1024,
                256,
                window=torch.hann_window(1024, dtype=torch.float64),
                pad_mode="constant",
                return_complex=True,
            )
            .abs()
            .numpy()
        )
        decibels = 20 * np.log10(spectrum + 1e-7)
        axis.imshow(
            decibels,
            origin="lower",
            aspect="auto",
            cmap="magma",
            vmin=decibels.max() - 80,
            vmax=decibels.max(),
            extent=(0, duration, 0, sample_rate / 2000),
        )
        axis.set_ylabel("kHz")
        axis.set_title(label, loc="left", fontsize=9)
    times = (np.arange(len(thetas)) + 0.5) * frame_size / sample_rate
    for axis, (group, members) in zip(axes[len(panels) :], groups.items()):
        index = int(group) if group.isdigit() else -1
        plugin = plugin_names[index] if 0 <= index < len(plugin_names) else f"plugin {group}"
        many = len(members) > 10
        colours = (
            plt.get_cmap("turbo")(np.linspace(0.05, 0.95, len(members)))
            if many
            else plt.rcParams["axes.prop_cycle"].by_key()["color"]
        )
        for j, k in enumerate(members):
            colour = colours[j % len(colours)]
            axis.plot(times, thetas[:, k], color=colour, linewidth=1.0, label=names[k].partition(".")[2])
            if reference is not None:
                axis.plot(times[: len(reference)], reference[:, k], color=colour, linestyle="--", alpha=0.8)
        axis.set_ylim(-0.02, 1.02)
        axis.set_ylabel("normalised")
        axis.set_title(
            f"{plugin}: parameters{' (dashed: hidden trajectory)' if reference is not None else ''}",
            loc="left",
            fontsize=9,
        )
        axis.legend(
            loc="upper left",
            bbox_to_anchor=(1.005, 1.0),
            fontsize=6,
            ncol=int(np.ceil(len(members) / 12)),
            frameon=False,
            handlelength=1.2,
            columnspacing=0.8,
        )
    axes[-1].set_xlim(0, duration)
    axes[-1].set_xlabel("time (s)")
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    atomic_write_bytes(path, _palette_png(buffer.getvalue()))


def _palette_png(png: bytes) -> bytes:
    """The PNG with a 256-colour palette: spectrograms in full colour make PNGs of ~700 kB,
    a palette about a third of that, with no visible loss."""
    from PIL import Image  # a dependency of matplotlib

    image = Image.open(io.BytesIO(png)).convert("RGB")
    buffer = io.BytesIO()
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        buffer, format="png", optimize=True
    )
    return buffer.getvalue()


# ---------------------------------------------------------------------------- fxgrad apply


def apply_file(
    checkpoint: PathLike,
    input_path: PathLike,
    output_path: PathLike,
    target_path: Optional[PathLike] = None,
    params_path: Optional[PathLike] = None,
    plot_path: Optional[PathLike] = None,
    reference_params: Optional[PathLike] = None,
    device: str = "cpu",
    source_rate: bool = False,
) -> Dict[str, Any]:
    """Render ``input_path`` through the model's chain with its predicted automation.

    The input is read at the model's sample rate and channel count (resampled, downmixed or
    copied to more channels as needed: ``conversions`` in the result says which). Writes the
    output audio at the model's sample rate, or with ``source_rate`` resampled back to the
    input file's rate; the parameter CSV (default: ``output_path`` with ``.params.csv`` in place
    of its extension, ``song_out.wav`` -> ``song_out.params.csv``) and the plot (default: with
    ``.png``).

    Returns ``{"audio", "params", "plot"}`` (paths), ``"sample_rate"`` (Hz of the written audio),
    ``"input_rate"`` (Hz of the input file), ``"channels"`` and ``"conversions"`` (sentences;
    empty when the input needed none).
    """
    import soundfile
    import soxr

    output_path = Path(output_path)
    if output_path.suffix.lower() not in (".wav", ".flac"):
        raise ValueError(f"{output_path}: write .wav or .flac")
    params_path = Path(params_path) if params_path else output_path.with_suffix(".params.csv")
    plot_path = Path(plot_path) if plot_path else output_path.with_suffix(".png")
    # Every input is read and checked before any output is written.
    model = TrainedModel.from_checkpoint(checkpoint, device)
    audio = read_audio(input_path, model.sample_rate, model.channels)
    converted = conversions(input_path, model.sample_rate, model.channels)
    input_rate = int(soundfile.info(str(input_path)).samplerate)
    rate = input_rate if source_rate else model.sample_rate
    target = None
    if target_path is not None:
        target = read_audio(target_path, model.sample_rate, model.channels)
        if target.shape[-1] != audio.shape[-1]:
            length = min(target.shape[-1], audio.shape[-1])
            target = target[:, :length]
    reference = read_parameter_csv(reference_params, model.names) if reference_params else None
    chain = model.new_chain()
    output, thetas = model.render(audio, chain)
    plot_render(
        plot_path,
        model.sample_rate,
        model.frame_size,
        model.names,
        thetas,
        audio,
        output,
        target,
        reference,
        title=f"{Path(input_path).name} through {' -> '.join(_plugin_names(model.chain_config))}",
        plugin_names=_plugin_names(model.chain_config),
    )
    written = (
        output
        if rate == model.sample_rate
        else np.ascontiguousarray(soxr.resample(output.T, model.sample_rate, rate).T.astype(np.float32))
    )
    write_audio(output_path, written, rate)
    write_parameter_csv(params_path, chain, thetas, model.frame_size)
    return {
        "audio": output_path,
        "params": params_path,
        "plot": plot_path,
        "sample_rate": rate,
        "input_rate": input_rate,
        "channels": model.channels,
        "conversions": converted,
    }


def _plugin_names(chain_config: Dict[str, Any]) -> List[str]:
    names = []
    for entry in chain_config["plugins"]:
        text = entry["plugin"] if isinstance(entry, dict) else str(entry)
        names.append(text.rstrip("/").rsplit("/", 1)[-1])
    return names
