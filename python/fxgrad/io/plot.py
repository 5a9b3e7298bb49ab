"""The PNG plots: a render with its parameter curves (``fxgrad apply``), and a match's spectra,
levels, loss and settings (``fxgrad match``). Written atomically; matplotlib loads on first use."""

from __future__ import annotations

import io
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ..base.files import PathLike, atomic_write_bytes


def _pyplot():
    """matplotlib's pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: PathLike, dpi: int, title: str, palette: bool) -> None:
    """Title, lay out, close and write ``figure`` as a PNG (with a 256-colour palette when
    ``palette``)."""
    plt = _pyplot()
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    plt.close(figure)
    atomic_write_bytes(path, _palette_png(buffer.getvalue()) if palette else buffer.getvalue())


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


def _stft_magnitude(mono: np.ndarray, n_fft: int, hop: int, **options) -> np.ndarray:
    """(bins, frames) float64 STFT magnitude of a mono signal, Hann window."""
    import torch

    return (
        torch.stft(
            torch.from_numpy(mono),
            n_fft,
            hop,
            window=torch.hann_window(n_fft, dtype=torch.float64),
            return_complex=True,
            **options,
        )
        .abs()
        .numpy()
    )


# ---------------------------------------------------------------------------- fxgrad apply


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
    plt = _pyplot()
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
        _spectrogram_panel(axis, label, audio, sample_rate, duration)
    times = (np.arange(len(thetas)) + 0.5) * frame_size / sample_rate
    for axis, (group, members) in zip(axes[len(panels) :], groups.items()):
        index = int(group) if group.isdigit() else -1
        plugin = plugin_names[index] if 0 <= index < len(plugin_names) else f"plugin {group}"
        _parameter_panel(axis, plugin, times, names, members, thetas, reference)
    axes[-1].set_xlim(0, duration)
    axes[-1].set_xlabel("time (s)")
    _save(figure, path, 110, title, palette=True)


def _spectrogram_panel(axis, label: str, audio: np.ndarray, sample_rate: int, duration: float) -> None:
    """The mono sum's spectrogram (1024-point frames, dB, 80 dB range) on ``axis``."""
    mono = np.asarray(audio, np.float64).mean(axis=0)
    # Zero padding at the ends, not reflection: a clip shorter than the window still plots.
    decibels = 20 * np.log10(_stft_magnitude(mono, 1024, 256, pad_mode="constant") + 1e-7)
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


def _parameter_panel(
    axis,
    plugin: str,
    times: np.ndarray,
    names: Sequence[str],
    members: List[int],
    thetas: np.ndarray,
    reference: Optional[np.ndarray],
) -> None:
    """One plugin's normalised parameter curves (``members`` index ``names``) on ``axis``, the
    reference trajectory dashed."""
    plt = _pyplot()
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


# ---------------------------------------------------------------------------- fxgrad match

_STATUS_COLOURS = {
    "well determined": "tab:green",
    "weak": "tab:olive",
    "barely constrained": "tab:red",
    "not at a minimum": "tab:purple",
}


def plot_match(
    path: PathLike,
    sample_rate: int,
    before: np.ndarray,
    after: np.ndarray,
    reference: np.ndarray,
    names: Sequence[str],
    start: np.ndarray,
    theta: np.ndarray,
    report: Dict[str, Any],
    history: Sequence[Dict[str, float]],
    title: str = "",
) -> None:
    """PNG: long-term spectra of input (before), output (after) and reference; their 0.4 s
    loudness over time; the loss per iteration; the normalised settings (start and found),
    coloured by how well the loss determines them. Written atomically."""
    plt = _pyplot()
    figure, axes = plt.subplots(2, 2, figsize=(13, 7.5))
    curves = [
        ("input (before)", before, "tab:gray"),
        ("output (after)", after, "tab:blue"),
        ("reference", reference, "tab:orange"),
    ]
    for label, audio, colour in curves:
        _spectrum_and_level(axes[0, 0], axes[0, 1], label, audio, colour, sample_rate)
    axes[0, 0].set(xlabel="Hz", ylabel="dB", title="long-term spectrum")
    axes[0, 0].set_xlim(20, sample_rate / 2)
    axes[0, 0].legend(fontsize=8)
    axes[0, 1].set(xlabel="time (s)", ylabel="dBFS (0.4 s mean square)", title="level over time")
    if history:
        axes[1, 0].plot([h["best"] for h in history], label="best so far")
        axes[1, 0].plot([h["median"] for h in history], label="population median", alpha=0.7)
        axes[1, 0].set_yscale("log")
        axes[1, 0].legend(fontsize=8)
    else:
        axes[1, 0].bar(["start", "found"], [report["start_loss"], report["loss"]], color=["tab:gray", "tab:blue"])
    axes[1, 0].set(xlabel="iteration", ylabel="loss", title=f"loss {report['start_loss']:.4g} -> {report['loss']:.4g}")
    _settings_panel(axes[1, 1], names, start, theta, report)
    _save(figure, path, 100, title, palette=False)


def _spectrum_and_level(spectrum_axis, level_axis, label: str, audio: np.ndarray, colour: str, sample_rate: int):
    """One curve on each: the long-term power spectrum (4096-point frames) and the 0.4 s mean
    square level over time."""
    mono = np.asarray(audio, np.float64).mean(axis=0)
    n_fft = 4096
    spectrum = (_stft_magnitude(mono, n_fft, n_fft // 4) ** 2).mean(axis=1)
    frequencies = np.arange(len(spectrum)) * sample_rate / n_fft
    spectrum_axis.semilogx(frequencies[1:], 10 * np.log10(spectrum[1:] + 1e-12), label=label, color=colour, linewidth=1)
    block = int(0.4 * sample_rate)
    hop = block // 4
    power = np.array([np.mean(mono[i : i + block] ** 2) for i in range(0, max(1, len(mono) - block + 1), hop)])
    level_axis.plot(
        np.arange(len(power)) * hop / sample_rate, 10 * np.log10(power + 1e-12), color=colour, linewidth=1, label=label
    )


def _settings_panel(axis, names: Sequence[str], start: np.ndarray, theta: np.ndarray, report: Dict[str, Any]) -> None:
    """The normalised settings at the start and found, coloured by identifiability status, with
    each one's ±range."""
    positions = np.arange(len(names))
    colours = [_STATUS_COLOURS[row["status"]] for row in report["parameters"]]
    axis.scatter(start, positions, marker="|", color="black", s=120, label="start")
    axis.errorbar(
        theta, positions, xerr=[row["range"] for row in report["parameters"]], fmt="none", ecolor=colours, alpha=0.5
    )
    axis.scatter(theta, positions, c=colours, s=30, label="found (bar: ±range)", zorder=3)
    axis.set_yticks(positions, [n for n in names], fontsize=7)
    axis.set_xlim(-0.02, 1.02)
    axis.invert_yaxis()
    axis.set(xlabel="normalised", title="settings (green: well determined, red: barely constrained)")
    axis.legend(fontsize=7, loc="lower right")
