"""Evaluation metrics: one processed clip against its target, as a Python float (lower is better).

Each takes one clip at a time, as a NumPy array or a tensor shaped ``(samples,)`` or
``(channels, samples)`` of linear sample values (full scale = 1.0): the MFCC cosine distance
(DeepAFx's measure), the multi-resolution STFT error and the integrated-loudness error (BS.1770).
"""

from __future__ import annotations

import math
from typing import Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .encoder import mel_filterbank
from .losses import MultiResolutionSTFTLoss

ArrayLike = Union[np.ndarray, Tensor]


def _as_clip(audio: ArrayLike, name: str) -> Tensor:
    """Validate one clip and return it as a float64 (channels, samples) tensor."""
    if isinstance(audio, Tensor):
        clip = audio.detach().to("cpu", torch.float64)
    else:
        clip = torch.as_tensor(np.asarray(audio, dtype=np.float64))
    if clip.ndim == 1:
        clip = clip.unsqueeze(0)
    if clip.ndim != 2:
        raise ValueError(f"{name} must be shaped (samples,) or (channels, samples), got {tuple(clip.shape)}")
    if clip.shape[-1] == 0:
        raise ValueError(f"{name} has no samples")
    if not torch.isfinite(clip).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return clip


def _as_clip_pair(output: ArrayLike, target: ArrayLike) -> tuple[Tensor, Tensor]:
    output_clip, target_clip = _as_clip(output, "output"), _as_clip(target, "target")
    if output_clip.shape != target_clip.shape:
        raise ValueError(f"output and target shapes differ: {tuple(output_clip.shape)} vs {tuple(target_clip.shape)}")
    return output_clip, target_clip


def mfcc(
    audio: ArrayLike,
    sample_rate: int,
    n_fft: int = 1024,
    hop: int = 256,
    n_mels: int = 128,
    n_mfcc: int = 13,
    top_db: float = 80.0,
) -> Tensor:
    """MFCCs of a clip, computed like DeepAFx's evaluation (librosa's recipe).

    Channels are averaged to mono; then power STFT (centred, zero-padded, periodic Hann),
    Slaney mel filterbank, dB relative to the clip's maximum floored ``top_db`` below it, and an
    orthonormal DCT-II keeping the first ``n_mfcc`` coefficients.

    Args:
        audio: (samples,) or (channels, samples), linear amplitude.
        sample_rate: in Hz.

    Returns:
        float64 tensor (frames, n_mfcc), ``frames = 1 + samples // hop``.
    """
    clip = _as_clip(audio, "audio").mean(dim=0)
    spectrum = torch.stft(
        clip,
        n_fft=n_fft,
        hop_length=hop,
        window=torch.hann_window(n_fft, dtype=torch.float64),
        center=True,
        pad_mode="constant",
        return_complex=True,
    )
    filterbank = mel_filterbank(sample_rate, n_fft, n_mels).to(torch.float64)
    mel_power = filterbank @ spectrum.abs().pow(2)  # (n_mels, frames)
    decibels = 10.0 * torch.log10(mel_power.clamp(min=1e-10))
    decibels = decibels - decibels.max()
    decibels = decibels.clamp(min=-top_db)
    return decibels.T @ _dct_matrix(n_mels, n_mfcc)


def _dct_matrix(size: int, keep: int) -> Tensor:
    """(size, keep) orthonormal DCT-II basis: ``x @ basis`` gives the first ``keep`` terms."""
    n = torch.arange(size, dtype=torch.float64)
    k = torch.arange(keep, dtype=torch.float64)
    basis = torch.cos(math.pi / size * (n[:, None] + 0.5) * k[None, :]) * math.sqrt(2.0 / size)
    basis[:, 0] /= math.sqrt(2.0)
    return basis


def mfcc_cosine_distance(output: ArrayLike, target: ArrayLike, sample_rate: int, over: str = "frames") -> float:
    """Mean cosine distance between the MFCCs of ``output`` and ``target`` (lower is better).

    Args:
        output, target: one clip each, (samples,) or (channels, samples), same shape.
        sample_rate: in Hz.
        over: ``"frames"`` compares the MFCC vectors frame by frame (the DeepAFx paper's
            description); ``"coefficients"`` compares each coefficient's trajectory over time,
            as the DeepAFx evaluation script's ``paired_distances`` on (n_mfcc, frames) arrays
            did, for numbers comparable with the paper's tables.

    Returns:
        mean of ``1 - cos`` in [0, 2].
    """
    output_clip, target_clip = _as_clip_pair(output, target)
    if over == "frames":
        dim = 1
    elif over == "coefficients":
        dim = 0
    else:
        raise ValueError(f"over must be 'frames' or 'coefficients', got {over!r}")
    similarity = F.cosine_similarity(mfcc(output_clip, sample_rate), mfcc(target_clip, sample_rate), dim=dim, eps=1e-12)
    return float((1.0 - similarity).mean())


def mrstft_error(output: ArrayLike, target: ArrayLike) -> float:
    """Multi-resolution STFT error (:class:`MultiResolutionSTFTLoss` defaults) of one clip.

    Args:
        output, target: (samples,) or (channels, samples), same shape.
    """
    output_clip, target_clip = _as_clip_pair(output, target)
    with torch.no_grad():
        return float(MultiResolutionSTFTLoss()(output_clip.unsqueeze(0), target_clip.unsqueeze(0)))


def k_weighting_filters(sample_rate: float) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """ITU-R BS.1770 K-weighting as two biquads ``((b_shelf, a_shelf), (b_highpass, a_highpass))``.

    The standard tabulates coefficients for 48 kHz only; these come from the analogue
    prototypes fitted to that table (high shelf ~+4 dB above ~1.7 kHz, the "RLB" high-pass at
    ~38 Hz) through the bilinear transform, so they reproduce the table at 48 kHz and hold at
    any rate.
    """
    # Shelf: pre-warped centre frequency, gain and Q of the prototype matching the 48 kHz table.
    k = math.tan(math.pi * 1681.974450955533 / sample_rate)
    q = 0.7071752369554196
    gain_high = 10.0 ** (3.999843853973347 / 20.0)
    gain_band = gain_high**0.4996667741545416
    a0 = 1.0 + k / q + k * k
    b_shelf = (
        np.array(
            [gain_high + gain_band * k / q + k * k, 2.0 * (k * k - gain_high), gain_high - gain_band * k / q + k * k]
        )
        / a0
    )
    a_shelf = np.array([a0, 2.0 * (k * k - 1.0), 1.0 - k / q + k * k]) / a0

    k = math.tan(math.pi * 38.13547087602444 / sample_rate)
    q = 0.5003270373238773
    a0 = 1.0 + k / q + k * k
    b_highpass = np.array([1.0, -2.0, 1.0])
    a_highpass = np.array([a0, 2.0 * (k * k - 1.0), 1.0 - k / q + k * k]) / a0
    return (b_shelf, a_shelf), (b_highpass, a_highpass)


def integrated_loudness(audio: ArrayLike, sample_rate: int) -> float:
    """ITU-R BS.1770-4 gated integrated loudness of a clip, in LUFS.

    K-weighting, 400 ms blocks every 100 ms, absolute gate at -70 LUFS, relative gate 10 LU
    below the absolutely gated loudness. Every channel has weight 1 (mono, stereo, or the front
    channels of a surround mix; BS.1770's 1.41 surround weights are not applied).

    Args:
        audio: (samples,) or (channels, samples), at least 400 ms long.
        sample_rate: in Hz.

    Returns:
        loudness in LUFS; ``-inf`` when every block falls below the absolute gate (silence).
    """
    # Imported here because scipy is only a test extra of the package; loudness is an
    # evaluation metric, and training must not need it.
    import scipy.signal

    clip = _as_clip(audio, "audio").numpy()
    block = round(0.4 * sample_rate)
    step = round(0.1 * sample_rate)
    if clip.shape[-1] < block:
        raise ValueError(f"integrated loudness needs at least 400 ms ({block} samples), got {clip.shape[-1]}")
    weighted = clip
    for b, a in k_weighting_filters(sample_rate):
        weighted = scipy.signal.lfilter(b, a, weighted, axis=-1)

    # Block mean squares from a running sum: sums[:, i] is the energy of samples [0, i).
    sums = np.concatenate([np.zeros((weighted.shape[0], 1)), np.cumsum(weighted**2, axis=-1)], axis=-1)
    starts = np.arange(0, weighted.shape[-1] - block + 1, step)
    block_power = ((sums[:, starts + block] - sums[:, starts]) / block).sum(axis=0)

    with np.errstate(divide="ignore"):
        block_loudness = _power_to_lufs(block_power)
    above_absolute_gate = block_loudness > -70.0
    if not above_absolute_gate.any():
        return -math.inf
    relative_gate = float(_power_to_lufs(block_power[above_absolute_gate].mean())) - 10.0
    kept = block_power[above_absolute_gate & (block_loudness > relative_gate)]
    return float(_power_to_lufs(kept.mean()))


def _power_to_lufs(power: np.ndarray) -> np.ndarray:
    """Summed channel mean square of K-weighted audio -> loudness in LUFS (BS.1770 eq. 2)."""
    return -0.691 + 10.0 * np.log10(power)


def loudness_error_db(output: ArrayLike, target: ArrayLike, sample_rate: int) -> float:
    """Absolute difference of integrated loudness (BS.1770-4) between output and target, in LU.

    Args:
        output, target: one clip each, (samples,) or (channels, samples), same shape.
        sample_rate: in Hz.

    Returns:
        ``|L(output) - L(target)|``; 0 when both are silent (below the -70 LUFS gate), ``inf``
        when only one is.
    """
    output_clip, target_clip = _as_clip_pair(output, target)
    output_loudness = integrated_loudness(output_clip, sample_rate)
    target_loudness = integrated_loudness(target_clip, sample_rate)
    if math.isinf(output_loudness) and math.isinf(target_loudness):
        return 0.0
    return abs(output_loudness - target_loudness)
