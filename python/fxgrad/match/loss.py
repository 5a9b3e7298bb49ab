"""The match loss: how far rendered outputs are from a reference, on the same material
(``aligned``) or other material (``style``), in NumPy."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional

import numpy as np

_RESOLUTIONS = ((2048, 512), (1024, 256), (512, 128))
"""(n_fft, hop) of the STFTs the aligned loss compares; the first also gives the loudness."""


def _k_weighting_power(sample_rate: float, n_fft: int) -> np.ndarray:
    """|H(f)|^2 of BS.1770's K-weighting at the rfft bins of ``n_fft``."""
    from ..nn.metrics import k_weighting_filters

    z = np.exp(-1j * 2 * np.pi * np.arange(n_fft // 2 + 1) / n_fft)
    response = np.ones_like(z)
    for b, a in k_weighting_filters(sample_rate):
        response *= np.polyval(b[::-1], z) / np.polyval(a[::-1], z)
    return np.abs(response) ** 2


def _magnitudes(audio: np.ndarray, n_fft: int, hop: int, window: np.ndarray) -> np.ndarray:
    """(C, frames, bins) float32 STFT magnitudes of (C, N) audio, frames centred (zero-padded
    by n_fft / 2 at both ends), floored at 1e-4."""
    padded = np.pad(audio, ((0, 0), (n_fft // 2, n_fft // 2)))
    if padded.shape[-1] < n_fft:
        padded = np.pad(padded, ((0, 0), (0, n_fft - padded.shape[-1])))
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft, axis=-1)[:, ::hop]
    return np.maximum(np.abs(np.fft.rfft(frames * window, axis=-1)).astype(np.float32), 1e-4)


@dataclass
class _Features:
    magnitudes: List[np.ndarray]  # per resolution, (C, frames, bins)
    loudness: float  # gated mean of the frames' K-weighted loudness, LUFS
    spectrum: Optional[np.ndarray]  # style: long-term mel-band level in dB (bands,)
    dynamics: Optional[np.ndarray]  # style: percentiles of short-term loudness - loudness


class MatchLoss:
    """Distance of rendered outputs from one reference, item by item (NumPy, one thread).

    Args:
        reference: float32 (C, N) audio.
        sample_rate: Hz.
        kind: ``"aligned"``: mean over three STFT resolutions (2048/1024/512) of spectral
            convergence plus log-magnitude L1 distance, plus 0.1 x |loudness difference| (LU);
            outputs must have the reference's length. ``"style"``: mean absolute difference of
            the long-term spectral balance (48 mel bands, dB, level removed) / 10, plus
            0.1 x |loudness difference|, plus the mean absolute difference of the 10/50/90/99th
            percentiles of 0.4 s loudness relative to the loudness (dB) / 10; any lengths.

    Loudness is BS.1770's K-weighted, gated mean power, taken from the 2048-point frames.
    Calling it on (K, C, N) outputs returns (K,) float64 losses (0 for the reference itself).
    """

    def __init__(self, reference: np.ndarray, sample_rate: float, kind: str = "aligned"):
        if kind not in ("aligned", "style"):
            raise ValueError(f"loss must be 'aligned' or 'style', got {kind!r}")
        self.kind = kind
        self.sample_rate = float(sample_rate)
        self.length = int(np.shape(reference)[-1])
        self._windows = {n: np.hanning(n + 1)[:-1].astype(np.float32) for n, _ in _RESOLUTIONS}  # periodic Hann
        n_fft = _RESOLUTIONS[0][0]
        doubled = np.full(n_fft // 2 + 1, 2.0)
        doubled[0] = doubled[-1] = 1.0
        # Mean square of a frame from its one-sided spectrum (Parseval, over the window's energy).
        self._weighting = (
            _k_weighting_power(self.sample_rate, n_fft) * doubled / (n_fft * float(np.sum(self._windows[n_fft] ** 2)))
        )
        if kind == "style":
            from ..nn.encoder import mel_filterbank

            self._mel = mel_filterbank(self.sample_rate, n_fft, 48).numpy()
        self.reference = self._features(np.ascontiguousarray(reference, np.float32))

    def _features(self, audio: np.ndarray) -> _Features:
        resolutions = _RESOLUTIONS if self.kind == "aligned" else _RESOLUTIONS[:1]
        magnitudes = [_magnitudes(audio, n_fft, hop, self._windows[n_fft]) for n_fft, hop in resolutions]
        power = magnitudes[0].astype(np.float64) ** 2  # (C, frames, bins)
        frame_power = (power @ self._weighting).sum(axis=0)  # (frames,)
        with np.errstate(divide="ignore"):
            frame_loudness = -0.691 + 10 * np.log10(np.maximum(frame_power, 1e-12))
        loud = frame_loudness > -70.0
        if loud.any():
            relative = -0.691 + 10 * math.log10(float(frame_power[loud].mean())) - 10.0
            keep = loud & (frame_loudness > relative)
            loudness = -0.691 + 10 * math.log10(float(frame_power[keep].mean()))
        else:
            keep, loudness = loud, -70.0
        spectrum = dynamics = None
        if self.kind == "style":
            frames = keep if keep.any() else np.ones_like(keep)
            bands = (power[:, frames] @ self._mel.T).sum(axis=0).mean(axis=0)
            spectrum = 10 * np.log10(np.maximum(bands, 1e-12))
            width = max(1, int(round(0.4 * self.sample_rate / _RESOLUTIONS[0][1])))
            smoothed = np.convolve(frame_power, np.full(width, 1.0 / width), mode="same")
            short_term = -0.691 + 10 * np.log10(np.maximum(smoothed, 1e-12))
            if (short_term > -70.0).any():
                short_term = short_term[short_term > -70.0]
            dynamics = np.percentile(short_term, [10, 50, 90, 99]) - loudness
        return _Features(magnitudes, loudness, spectrum, dynamics)

    def _distance(self, output: _Features) -> float:
        ref = self.reference
        loudness = 0.1 * abs(output.loudness - ref.loudness)
        if self.kind == "aligned":
            spectral = 0.0
            for x, y in zip(output.magnitudes, ref.magnitudes):
                convergence = float(np.linalg.norm(y - x) / np.linalg.norm(y))
                spectral += convergence + float(np.abs(np.log(y) - np.log(x)).mean())
            return spectral / len(output.magnitudes) + loudness
        difference = output.spectrum - ref.spectrum
        shape = float(np.abs(difference - difference.mean()).mean()) / 10.0
        dynamics = float(np.abs(output.dynamics - ref.dynamics).mean()) / 10.0
        return shape + loudness + dynamics

    def __call__(self, outputs: np.ndarray) -> np.ndarray:
        outputs = np.asarray(outputs, np.float32)
        if outputs.ndim != 3:
            raise ValueError(f"outputs must be shaped (K, channels, samples), got {outputs.shape}")
        if self.kind == "aligned" and outputs.shape[-1] != self.length:
            raise ValueError(
                f"the aligned loss needs outputs of the reference's {self.length} samples, got {outputs.shape[-1]}"
            )
        return np.array([self._distance(self._features(item)) for item in outputs])
