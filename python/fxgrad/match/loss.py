"""The match loss: how far rendered outputs are from a reference, on the same material
(``aligned``) or other material (``style``), for a whole population of outputs at once: the
aligned loss on native threads (``fxgrad._native.SpectralDistance``, FFTW) or in batched torch
tensors on a GPU when asked for, the style loss in torch tensors (on the GPU when there is one,
else on torch's CPU threads)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Union

import numpy as np
import torch

RESOLUTIONS = (2048, 1024, 512)
"""FFT sizes the aligned loss compares (hop: half of each, so that the Hann windows add up to
a constant); the first also gives the loudness and the style loss's spectra."""
ANALYSED_SAMPLES = 1 << 14
"""Each resolution looks at up to this many samples per channel (2^14: about 0.37 s at 44.1 kHz):
ANALYSED_SAMPLES / n_fft frames, spread evenly over a longer file. The renders cover the
whole file; the loss's cost stops growing with its length."""
_FLOOR_MAGNITUDE = 1e-4
"""STFT magnitudes are floored here (about -80 dB below a full-scale sine's) so that silence has
a finite log."""
_ROWS_PER_THREAD = 8
"""A CPU thread of the style loss computes at least this many (item, channel) rows (see __call__)."""
_CHUNK_BYTES = {"cpu": 64 << 20, "cuda": 2 << 30}
"""Spectra of one group of outputs at a time stay under this size (a CPU's working set; a
small share of a GPU's memory)."""


def _k_weighting_power(sample_rate: float, n_fft: int) -> np.ndarray:
    """|H(f)|^2 of BS.1770's K-weighting at the rfft bins of ``n_fft``."""
    from ..nn.metrics import k_weighting_filters

    z = np.exp(-1j * 2 * np.pi * np.arange(n_fft // 2 + 1) / n_fft)
    response = np.ones_like(z)
    for b, a in k_weighting_filters(sample_rate):
        response *= np.polyval(b[::-1], z) / np.polyval(a[::-1], z)
    return np.abs(response) ** 2


def loss_device(device: Union[str, torch.device, None] = None) -> torch.device:
    """``device`` checked (``"auto"`` or None: the first GPU when there is one, else the CPU)."""
    from ..base.device import usable_device

    return usable_device("auto" if device is None else str(device))


def frame_hop(samples: int, n_fft: int, limit: Optional[int] = None) -> int:
    """The hop, in samples, between the frames of ``n_fft`` a resolution looks at in a signal of
    ``samples``: half a frame (the Hann windows add up to a constant), or a multiple of it so
    that at most ``limit`` frames (default ANALYSED_SAMPLES / n_fft) cover the signal. Frames
    are centred on samples 0, hop, 2 hop, ... (zero padded at both ends)."""
    half = n_fft // 2
    limit = max(1, ANALYSED_SAMPLES // n_fft if limit is None else int(limit))
    return half * max(1, -(-(samples // half + 1) // limit))


@dataclass
class _Spectra:
    """Per resolution, (K, C * frames * bins) float32 magnitudes and log-magnitudes (aligned
    loss; empty for the style loss), and from the first resolution ``frame_power`` (K, frames)
    K-weighted mean square per frame and ``loudness`` (K,) its gated mean in LUFS (float64)."""

    magnitudes: List[torch.Tensor]
    logs: List[torch.Tensor]
    frame_power: torch.Tensor
    loudness: torch.Tensor
    band_level: Optional[torch.Tensor] = None  # style: (K, bands) long-term mel-band level, dB


class MatchLoss:
    """Distance of rendered outputs from one reference, item by item, batched.

    Args:
        reference: float32 (C, N) audio.
        sample_rate: Hz.
        kind: ``"aligned"``: mean over three STFT resolutions (2048/1024/512, Hann, half
            overlapping) of spectral convergence (||Y - X|| / ||Y|| of the magnitudes) plus the
            mean absolute log-magnitude difference, plus 0.1 x |loudness difference| (LU);
            outputs must have the reference's length. ``"style"``: mean absolute difference of
            the long-term spectral balance (48 mel bands, dB, level removed) / 10, plus 0.1 x
            |loudness difference|, plus the mean absolute difference of the 10/50/90/99th
            percentiles of 0.4 s loudness relative to the loudness (dB) / 10; any lengths.
        device: where the spectra are computed. Default: the aligned loss on the CPU (native
            threads: 7 stereo 2 s outputs, a search's generation, take about 1 ms on 2 cores,
            where one call on the device machine's GPU took 1.8-2.7 ms, mostly kernel launches
            and copies), the style loss on the first GPU when there is one, else the CPU.
        threads: on a CPU, the outputs are shared among this many threads (default: torch's
            intra-op thread count, ``torch.set_num_threads``), each computing whole items (the
            style loss: at least _ROWS_PER_THREAD (item, channel) rows).

    The aligned loss looks at up to ANALYSED_SAMPLES / n_fft frames per resolution, evenly
    spaced over the file (:func:`frame_hop`), the same frames of the outputs and the reference.
    Loudness is BS.1770's K-weighted, gated mean power of the 2048-point frames. Calling it on
    (K, C, N) outputs (NumPy or torch) returns (K,) float64 losses (0 for the reference itself),
    the same whatever the threads; the outputs go through the FFTs in groups of as many as fit
    ``_CHUNK_BYTES``.
    """

    def __init__(
        self,
        reference: np.ndarray,
        sample_rate: float,
        kind: str = "aligned",
        device: Union[str, torch.device, None] = None,
        threads: Optional[int] = None,
    ):
        if kind not in ("aligned", "style"):
            raise ValueError(f"loss must be 'aligned' or 'style', got {kind!r}")
        reference = np.ascontiguousarray(reference, np.float32)
        if reference.ndim != 2 or reference.shape[-1] == 0:
            raise ValueError(f"the reference must be shaped (channels, samples), got {reference.shape}")
        if not np.isfinite(reference).all():
            raise ValueError("the reference holds NaN or infinite samples")
        self.kind, self.sample_rate = kind, float(sample_rate)
        self.channels, self.length = reference.shape
        self.device = loss_device("cpu" if device is None and kind == "aligned" else device)
        self.threads = None if threads is None else max(1, int(threads))
        self._sizes = RESOLUTIONS if kind == "aligned" else RESOLUTIONS[:1]
        self._windows = {n: torch.hann_window(n, periodic=True, device=self.device) for n in self._sizes}
        n_fft = RESOLUTIONS[0]
        doubled = np.full(n_fft // 2 + 1, 2.0)
        doubled[0] = doubled[-1] = 1.0
        window_energy = float(np.sum(np.hanning(n_fft + 1)[:-1] ** 2))
        # Mean square of a frame from its one-sided power spectrum (Parseval, over the window's energy).
        weighting = _k_weighting_power(self.sample_rate, n_fft) * doubled / (n_fft * window_energy)
        self._weighting = torch.as_tensor(weighting, dtype=torch.float32, device=self.device)
        if kind == "style":
            from ..nn.encoder import mel_filterbank

            self._mel = mel_filterbank(self.sample_rate, n_fft, 48).to(self.device, torch.float32).T.contiguous()
        self._native = None
        if kind == "aligned" and self.device.type == "cpu":
            from .. import _native

            self._native = _native.SpectralDistance(
                reference,
                [(n, self._hop(self.length, n), self._windows[n].numpy()) for n in self._sizes],
                self._weighting.numpy(),
                _FLOOR_MAGNITUDE,
                self.threads or torch.get_num_threads(),
            )
            return
        with torch.no_grad():
            self.reference = self._spectra(torch.from_numpy(reference)[None].to(self.device))
            if kind == "style":
                self._reference_dynamics = self._dynamics(self.reference)

    def _hop(self, samples: int, n_fft: int) -> int:
        # The style loss's 0.4 s loudness needs every frame.
        return frame_hop(samples, n_fft, limit=samples if self.kind == "style" else None)

    def _frames(self, flat: torch.Tensor, n_fft: int) -> torch.Tensor:
        """(K*C, F, n_fft) windowed frames of (K*C, N) audio, frame f centred on sample f * hop
        (zero padded past either end). Frames inside the signal are windowed straight from it;
        only the few at the ends go through a padded copy."""
        rows, samples = flat.shape
        hop, half = self._hop(samples, n_fft), n_fft // 2
        count = samples // hop + 1
        window = self._windows[n_fft]
        frames = torch.empty(rows, count, n_fft, device=flat.device)
        first = -(-half // hop)  # the first frame that starts at or after sample 0
        last = min(count, (samples - n_fft + half) // hop + 1) if samples >= n_fft else first
        if last > first:
            inner = flat[:, first * hop - half :].unfold(-1, n_fft, hop)[:, : last - first]
            torch.mul(inner, window, out=frames[:, first:last])
        # The frames past either end, each side's from one padded copy of its end.
        for begin_frame, end_frame in ((0, min(first, count)), (max(last, first), count)):
            if end_frame <= begin_frame:
                continue
            begin, end = begin_frame * hop - half, (end_frame - 1) * hop - half + n_fft
            piece = flat[:, max(0, begin) : max(0, min(samples, end))]
            before = max(0, -begin)
            padded = torch.nn.functional.pad(piece, (before, end - begin - piece.shape[-1] - before))
            torch.mul(padded.unfold(-1, n_fft, hop), window, out=frames[:, begin_frame:end_frame])
        return frames

    def _spectra(self, audio: torch.Tensor) -> _Spectra:
        """Spectra of (K, C, N) float32 audio on the loss's device."""
        K, C, N = audio.shape
        magnitudes, logs, frame_power, bands = [], [], None, None
        flat = audio.reshape(K * C, N)
        for n_fft in self._sizes:
            frames = self._frames(flat, n_fft)
            magnitude = _magnitude(_rfft(frames)).clamp_min_(_FLOOR_MAGNITUDE)  # (K*C, F, bins)
            if frame_power is None:
                power = magnitude * magnitude
                # Row by row (no matrix product: BLAS's result for a row depends on the batch).
                frame_power = power.mul_(self._weighting).sum(dim=-1).reshape(K, C, -1).sum(dim=1).double()  # (K, F)
                if self.kind == "style":  # one product of the same shape per item
                    per_item = (magnitude * magnitude).reshape(K, -1, magnitude.shape[-1])
                    bands = torch.stack([item @ self._mel for item in per_item]).reshape(K, C, -1, self._mel.shape[1])
                    bands = bands.sum(dim=1).double()  # (K, F, bands)
            if self.kind == "aligned":
                magnitudes.append(magnitude.reshape(K, -1))
                logs.append(magnitude.log().reshape(K, -1))
        frame_loudness = -0.691 + 10 * torch.log10(frame_power.clamp_min(1e-12))
        loud = frame_loudness > -70.0
        relative = -0.691 + 10 * torch.log10(_masked_mean(frame_power, loud).clamp_min(1e-12)) - 10.0
        keep = loud & (frame_loudness > relative[:, None])
        loudness = -0.691 + 10 * torch.log10(_masked_mean(frame_power, keep).clamp_min(1e-12))
        loudness = torch.where(keep.any(dim=1), loudness, torch.full_like(loudness, -70.0))
        band_level = None
        if self.kind == "style":
            frames = torch.where(keep.any(dim=1, keepdim=True), keep, torch.ones_like(keep))
            band_power = _masked_mean(bands.transpose(1, 2), frames[:, None, :])  # (K, bands)
            band_level = 10 * torch.log10(band_power.clamp_min(1e-12))
        return _Spectra(magnitudes, logs, frame_power, loudness, band_level)

    def _dynamics(self, spectra: _Spectra) -> np.ndarray:
        """(K, 4) float64: the 10/50/90/99th percentiles of 0.4 s loudness minus the loudness, dB."""
        width = max(1, int(round(0.4 * self.sample_rate / (RESOLUTIONS[0] // 2))))
        powers, loudness = spectra.frame_power.cpu().numpy(), spectra.loudness.cpu().numpy()
        rows = []
        for frame_power, level in zip(powers, loudness):
            smoothed = np.convolve(frame_power, np.full(width, 1.0 / width), mode="same")
            short_term = -0.691 + 10 * np.log10(np.maximum(smoothed, 1e-12))
            if (short_term > -70.0).any():
                short_term = short_term[short_term > -70.0]
            rows.append(np.percentile(short_term, [10, 50, 90, 99]) - level)
        return np.asarray(rows)

    def _distances(self, audio: torch.Tensor) -> torch.Tensor:
        """(K,) float64 losses of (K, C, N) audio on the loss's device."""
        ref, out = self.reference, self._spectra(audio)
        loudness = 0.1 * (out.loudness - ref.loudness).abs()
        if self.kind == "style":
            difference = out.band_level - ref.band_level
            shape = (difference - difference.mean(dim=1, keepdim=True)).abs().mean(dim=1) / 10.0
            spread = np.abs(self._dynamics(out) - self._reference_dynamics).mean(axis=1) / 10.0
            return loudness + shape + torch.as_tensor(spread, device=loudness.device)
        spectral = torch.zeros_like(loudness)
        for x, log_x, y, log_y in zip(out.magnitudes, out.logs, ref.magnitudes, ref.logs):
            # Row by row over the last axis (no matrix product, whose rows depend on the batch);
            # the outputs' own spectra are spent, so the differences are taken in place.
            difference = torch.linalg.vector_norm(x.sub_(y), dim=-1).div_(y.norm())
            log_distance = log_x.sub_(log_y).abs_().sum(dim=-1).div_(log_y.shape[-1])
            spectral += difference.add_(log_distance).double()
        return spectral / len(out.magnitudes) + loudness

    def group(self, channels: int, samples: int) -> int:
        """How many outputs of ``channels`` x ``samples`` go through the FFTs at once."""
        per_item = 0
        for n_fft in self._sizes:
            frames = samples // self._hop(samples, n_fft) + 1
            per_item += channels * frames * (n_fft * 4 + (n_fft // 2 + 1) * 20)  # frames, spectrum, power, logs
        return max(1, _CHUNK_BYTES.get(self.device.type, _CHUNK_BYTES["cpu"]) // per_item)

    def __call__(self, outputs: Union[np.ndarray, torch.Tensor]) -> np.ndarray:
        if isinstance(outputs, torch.Tensor):
            outputs = outputs.detach().to(torch.float32)
        else:
            outputs = torch.from_numpy(np.ascontiguousarray(outputs, np.float32))
        if outputs.ndim != 3:
            raise ValueError(f"outputs must be shaped (K, channels, samples), got {tuple(outputs.shape)}")
        if outputs.shape[1] != self.channels:
            raise ValueError(f"outputs have {outputs.shape[1]} channel(s), the reference {self.channels}")
        if self.kind == "aligned" and outputs.shape[-1] != self.length:
            raise ValueError(
                f"the aligned loss needs outputs of the reference's {self.length} samples, got {outputs.shape[-1]}"
            )
        if self._native is not None:
            return self._native.evaluate(outputs.cpu().numpy()) if len(outputs) else np.zeros(0)
        step = self.group(outputs.shape[1], outputs.shape[2])
        if self.device.type == "cuda":
            return self._on_gpu(outputs, step)
        # On a CPU the items are shared among threads, each computing whole items (torch's
        # intra-op threads meet at every operation, and on a busy machine wait for the slowest).
        # A thread takes at least _ROWS_PER_THREAD channels' worth: a group's hundred-odd torch
        # calls cost the same for few items as for many, so small groups on two threads cost
        # more than they save (a population of 7 stereo items: 0.39 against 0.29 ms an item).
        rows = len(outputs) * outputs.shape[1]
        workers = max(1, min(self.threads or torch.get_num_threads(), len(outputs), rows // _ROWS_PER_THREAD))
        step = min(step, -(-len(outputs) // workers))
        groups = [outputs[k : k + step] for k in range(0, len(outputs), step)]
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with torch.no_grad():
                if workers == 1:
                    losses = [self._distances(group) for group in groups]
                else:
                    losses = list(self._pool(workers).map(self._distances, groups))
        finally:
            torch.set_num_threads(threads)
        return torch.cat(losses).numpy().astype(np.float64) if losses else np.zeros(0)

    def _pool(self, workers: int):
        """A thread pool of ``workers`` threads, kept between calls (a search makes thousands)."""
        from concurrent.futures import ThreadPoolExecutor

        if getattr(self, "_workers", None) != workers:
            self._executor, self._workers = ThreadPoolExecutor(workers, thread_name_prefix="fxgrad-loss"), workers
        return self._executor

    def _on_gpu(self, outputs: torch.Tensor, step: int) -> np.ndarray:
        losses = []
        with torch.no_grad():
            for start in range(0, len(outputs), step):
                part = outputs[start : start + step].pin_memory().to(self.device, non_blocking=True)
                losses.append(self._distances(part))
            return torch.cat(losses).cpu().numpy().astype(np.float64) if losses else np.zeros(0)


def _rfft(frames: torch.Tensor) -> torch.Tensor:
    """rfft over the last axis (complex64): torch's, MKL's on these CPUs, each row on its own,
    the same whatever the batch."""
    return torch.fft.rfft(frames, dim=-1)


def _magnitude(spectrum: torch.Tensor) -> torch.Tensor:
    """|spectrum| as float32; on a CPU through NumPy, whose complex absolute value is vectorised
    (torch's, and squares of the strided real and imaginary views, take several times longer)."""
    if spectrum.device.type != "cpu":
        return spectrum.abs()
    return torch.from_numpy(np.abs(spectrum.numpy()))


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over its last axis where ``mask`` holds (0 where it never does)."""
    mask = mask.to(values.dtype)
    return (values * mask).sum(dim=-1) / mask.sum(dim=-1).clamp_min(1.0)
