"""Training losses: processed audio against a target, differentiable, averaged over the batch.

Each loss is an ``nn.Module`` on tensors shaped ``(batch, channels, samples)`` holding linear
sample values (full scale = 1.0) and returns a scalar averaged over the batch; :func:`frame_loss`
applies one to frames with a zero-padded end. Evaluation metrics are in :mod:`fxgrad.nn.metrics`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

ArrayLike = Union[np.ndarray, Tensor]


def _check_batch_pair(output: Tensor, target: Tensor) -> None:
    """Raise ValueError unless ``output`` and ``target`` are finite (B, C, N) tensors alike."""
    for name, tensor in (("output", output), ("target", target)):
        if not isinstance(tensor, Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
        if tensor.ndim != 3:
            raise ValueError(f"{name} must be shaped (batch, channels, samples), got shape {tuple(tensor.shape)}")
        if tensor.numel() == 0:
            raise ValueError(f"{name} is empty (shape {tuple(tensor.shape)})")
        if not torch.isfinite(tensor).all():
            raise ValueError(f"{name} contains NaN or infinite values")
    if output.shape != target.shape:
        raise ValueError(f"output and target shapes differ: {tuple(output.shape)} vs {tuple(target.shape)}")


def _magnitude(spectrum: Tensor, eps: float) -> Tensor:
    """|spectrum| floored at sqrt(eps), so that its log and gradient stay bounded on silence."""
    return torch.sqrt(torch.clamp(spectrum.real**2 + spectrum.imag**2, min=eps))


@dataclass(frozen=True)
class DelayInvariantTerms:
    """Per-item parts of the delay-invariant loss, each shaped (batch,).

    ``time`` and ``freq`` are the unweighted L_time and L_freq; ``lag`` (int64, samples) is the
    lag tau applied: positive when the output lags behind the target.
    """

    time: Tensor
    freq: Tensor
    lag: Tensor


class DelayInvariantLoss(nn.Module):
    """DeepAFx's delay- and polarity-invariant loss ``alpha_time*L_time + alpha_freq*L_freq``.

    Multiband effects delay their output (crossover group delay) and may invert its polarity, so
    the output ``y_bar`` is compared with the target ``y`` only after aligning them:

    1. ``tau`` maximises the absolute cross-correlation of ``y_bar`` and ``y`` (computed by FFT,
       summed over channels) over lags ``|tau| <= max_lag``; the absolute value lets a
       polarity-inverted output align too. Ties go to the smallest ``|tau|`` (silence gives 0).
    2. Both signals are cropped to their overlap: ``y_bar[tau:]`` against ``y[:N - tau]`` for
       ``tau >= 0``, ``y_bar[:N + tau]`` against ``y[-tau:]`` otherwise.
    3. ``L_time = min(mean|y_bar_tau - y_tau|, mean|y_bar_tau + y_tau|)``: mean absolute error
       over the overlap's samples and all channels, for either polarity.
    4. ``L_freq = mean((Y_bar - Y)^2) + mean((log Y_bar - log Y)^2)``, with ``Y`` the magnitudes
       of ``n_fft``-point FFTs of the aligned signals cut into consecutive non-overlapping
       ``n_fft``-sample blocks (the last zero-padded; a 1024-sample frame is one block) under a
       periodic Hann window, floored at ``sqrt(eps)``; means over channels, blocks and bins.

    The paper writes ``||.||_1`` and ``||.||_2`` norms; its code takes the means above (and the
    Hann window), and ``alpha_time = 10``, ``alpha_freq = 1`` were tuned on those means, so we
    follow the code. The lag search is not differentiated; gradients reach ``y_bar`` through the
    aligned samples.

    Args:
        max_lag: largest ``|tau|`` searched, in samples (100 in the paper, 300 for mastering);
            capped at ``samples - 1`` for short inputs.
        alpha_time: weight of ``L_time``.
        alpha_freq: weight of ``L_freq``.
        n_fft: FFT size (and block length) of ``L_freq``, in samples.
        eps: floor of the squared FFT magnitude, so ``log Y >= log(sqrt(eps))``.
    """

    def __init__(
        self,
        max_lag: int = 100,
        alpha_time: float = 10.0,
        alpha_freq: float = 1.0,
        n_fft: int = 1024,
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        if max_lag < 0:
            raise ValueError(f"max_lag must be >= 0, got {max_lag}")
        if n_fft < 2:
            raise ValueError(f"n_fft must be >= 2, got {n_fft}")
        if eps <= 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        self.max_lag = int(max_lag)
        self.alpha_time = float(alpha_time)
        self.alpha_freq = float(alpha_freq)
        self.n_fft = int(n_fft)
        self.eps = float(eps)
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)

    def estimate_lag(self, output: Tensor, target: Tensor) -> Tensor:
        """Lag of ``output`` behind ``target`` maximising |cross-correlation|.

        Args:
            output, target: (B, C, N) tensors.

        Returns:
            int64 tensor (B,) of lags in samples, ``|lag| <= min(max_lag, N - 1)``; positive
            when ``output[n + lag]`` matches ``target[n]``.
        """
        _check_batch_pair(output, target)
        with torch.no_grad():
            num_samples = output.shape[-1]
            max_lag = min(self.max_lag, num_samples - 1)
            # Zero-padding to N + max_lag keeps the searched lags free of circular wrap-around.
            size = 1 << math.ceil(math.log2(num_samples + max_lag))
            spectrum = torch.fft.rfft(output, size) * torch.fft.rfft(target, size).conj()
            correlation = torch.fft.irfft(spectrum.sum(dim=1), size)  # (B, size)
            # Candidates ordered 0, 1, -1, 2, -2, ... so argmax's first-maximum rule prefers
            # the smallest |lag| on ties.
            steps = torch.arange(1, max_lag + 1, device=output.device)
            lags = torch.cat(
                [torch.zeros(1, dtype=torch.long, device=output.device), torch.stack([steps, -steps], dim=1).flatten()]
            )
            strength = correlation[:, lags % size].abs()
            return lags[strength.argmax(dim=1)]

    def align(self, output: Tensor, target: Tensor, lag: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Crop ``output`` and ``target`` to their overlap at ``lag``, per batch item.

        Args:
            output, target: (B, C, N) tensors.
            lag: int64 (B,) lags as returned by :meth:`estimate_lag`.

        Returns:
            ``(output_aligned, target_aligned, length)``: two (B, C, N) tensors whose first
            ``length[b] = N - |lag[b]|`` samples hold the overlap and whose rest is zero, and
            ``length`` (B,). Differentiable with respect to ``output``.
        """
        batch, channels, num_samples = output.shape
        if lag.shape != (batch,):
            raise ValueError(f"lag must be shaped ({batch},), got {tuple(lag.shape)}")
        if (lag.abs() >= num_samples).any():
            raise ValueError(f"every |lag| must be < {num_samples} samples, got {lag.tolist()}")
        position = torch.arange(num_samples, device=output.device)
        length = num_samples - lag.abs()
        valid = (position < length[:, None]).unsqueeze(1)  # (B, 1, N)

        def shifted(signal: Tensor, start: Tensor) -> Tensor:
            index = (position + start[:, None]).clamp(max=num_samples - 1)
            gathered = signal.gather(-1, index.unsqueeze(1).expand(batch, channels, num_samples))
            return gathered * valid

        return shifted(output, lag.clamp(min=0)), shifted(target, (-lag).clamp(min=0)), length

    def terms(self, output: Tensor, target: Tensor) -> DelayInvariantTerms:
        """Per-item L_time, L_freq and lag for (B, C, N) ``output`` and ``target``."""
        lag = self.estimate_lag(output, target)
        output_aligned, target_aligned, length = self.align(output, target, lag)
        channels = output.shape[1]

        count = (length * channels).to(output.dtype)
        error_same = (output_aligned - target_aligned).abs().sum(dim=(1, 2)) / count
        error_inverted = (output_aligned + target_aligned).abs().sum(dim=(1, 2)) / count
        time = torch.minimum(error_same, error_inverted)

        output_magnitude = self._block_magnitudes(output_aligned)
        target_magnitude = self._block_magnitudes(target_aligned)
        linear = (output_magnitude - target_magnitude).pow(2).mean(dim=(1, 2, 3))
        logarithmic = (output_magnitude.log() - target_magnitude.log()).pow(2).mean(dim=(1, 2, 3))
        return DelayInvariantTerms(time=time, freq=linear + logarithmic, lag=lag)

    def _block_magnitudes(self, signal: Tensor) -> Tensor:
        """(B, C, N) -> (B, C, blocks, n_fft // 2 + 1) windowed FFT magnitudes."""
        remainder = signal.shape[-1] % self.n_fft
        if remainder:
            signal = F.pad(signal, (0, self.n_fft - remainder))
        blocks = signal.unflatten(-1, (-1, self.n_fft)) * self.window.to(signal.dtype)
        return _magnitude(torch.fft.rfft(blocks), self.eps)

    def forward(self, output: Tensor, target: Tensor, return_lag: bool = False) -> Union[Tensor, tuple[Tensor, Tensor]]:
        """Batch-mean loss of (B, C, N) ``output`` against ``target``.

        Returns:
            the scalar loss, or ``(loss, lag)`` with the int64 (B,) lags when ``return_lag``.
        """
        terms = self.terms(output, target)
        loss = (self.alpha_time * terms.time + self.alpha_freq * terms.freq).mean()
        return (loss, terms.lag) if return_lag else loss


class STFTLoss(nn.Module):
    """Spectral convergence plus log-magnitude L1 distance at one STFT resolution.

    For magnitudes ``X`` (output) and ``Y`` (target) of a Hann-windowed, centred
    (zero-padded) STFT, per batch item:
    ``||Y - X||_F / ||Y||_F + mean|log Y - log X|``, with the Frobenius norms taken over
    channels, bins and frames, then averaged over the batch. Magnitudes are floored at
    ``sqrt(eps)``. Unlike auraloss, spectral convergence is per item rather than over the whole
    batch, so an item's value does not depend on its batch mates.

    Args:
        fft_size: FFT size in samples.
        hop_size: hop between frames in samples.
        win_length: Hann window length in samples (<= fft_size).
        eps: floor of the squared magnitude.
    """

    def __init__(self, fft_size: int = 1024, hop_size: int = 256, win_length: int = 1024, eps: float = 1e-8) -> None:
        super().__init__()
        if not 0 < win_length <= fft_size:
            raise ValueError(f"win_length must be in (0, fft_size={fft_size}], got {win_length}")
        if hop_size <= 0:
            raise ValueError(f"hop_size must be > 0, got {hop_size}")
        self.fft_size = int(fft_size)
        self.hop_size = int(hop_size)
        self.win_length = int(win_length)
        self.eps = float(eps)
        self.register_buffer("window", torch.hann_window(self.win_length), persistent=False)

    def _magnitude(self, audio: Tensor) -> Tensor:
        """(B, C, N) -> (B, C, bins, frames) STFT magnitude."""
        batch, channels, num_samples = audio.shape
        spectrum = torch.stft(
            audio.reshape(batch * channels, num_samples),
            n_fft=self.fft_size,
            hop_length=self.hop_size,
            win_length=self.win_length,
            window=self.window.to(audio.dtype),
            center=True,
            pad_mode="constant",
            return_complex=True,
        )
        return _magnitude(spectrum, self.eps).reshape(batch, channels, *spectrum.shape[-2:])

    def forward(self, output: Tensor, target: Tensor) -> Tensor:
        """Scalar loss for (B, C, N) ``output`` and ``target``."""
        _check_batch_pair(output, target)
        output_magnitude = self._magnitude(output)
        target_magnitude = self._magnitude(target)
        convergence = torch.linalg.vector_norm(
            target_magnitude - output_magnitude, dim=(1, 2, 3)
        ) / torch.linalg.vector_norm(target_magnitude, dim=(1, 2, 3))
        log_distance = (target_magnitude.log() - output_magnitude.log()).abs().mean(dim=(1, 2, 3))
        return (convergence + log_distance).mean()


class MultiResolutionSTFTLoss(nn.Module):
    """Mean of :class:`STFTLoss` over several resolutions.

    The defaults are auraloss's (FFT 1024/2048/512, hops 120/240/50, windows 600/1200/240), so
    values are on the scale of the MRSTFT errors that DeepAFx-ST reports.

    Args:
        fft_sizes, hop_sizes, win_lengths: one entry per resolution, in samples.
        eps: floor of the squared magnitude.
    """

    def __init__(
        self,
        fft_sizes: Sequence[int] = (1024, 2048, 512),
        hop_sizes: Sequence[int] = (120, 240, 50),
        win_lengths: Sequence[int] = (600, 1200, 240),
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        if not len(fft_sizes) == len(hop_sizes) == len(win_lengths) > 0:
            raise ValueError(
                "fft_sizes, hop_sizes and win_lengths must be non-empty and of equal length, got "
                f"{len(fft_sizes)}, {len(hop_sizes)}, {len(win_lengths)}"
            )
        self.resolutions = nn.ModuleList(
            STFTLoss(fft, hop, win, eps) for fft, hop, win in zip(fft_sizes, hop_sizes, win_lengths)
        )

    def forward(self, output: Tensor, target: Tensor) -> Tensor:
        """Scalar loss for (B, C, N) ``output`` and ``target``."""
        return torch.stack([loss(output, target) for loss in self.resolutions]).mean()


class PointwiseLoss(nn.Module):
    """Mean absolute (``"l1"``) or mean squared (``"mse"``) sample difference.

    Shapes: ``output``, ``target`` (B, C, N) -> scalar.
    """

    def __init__(self, kind: str):
        super().__init__()
        if kind not in ("l1", "mse"):
            raise ValueError(f"kind must be 'l1' or 'mse', got {kind!r}")
        self.kind = kind

    def forward(self, output: Tensor, target: Tensor) -> Tensor:
        difference = output - target
        return difference.abs().mean() if self.kind == "l1" else difference.pow(2).mean()


def frame_loss(loss_fn: nn.Module, output: Tensor, target: Tensor, valid: Tensor) -> Tensor:
    """``loss_fn`` on frames whose samples past ``valid`` (a clip's zero-padded end) are zeroed
    in both output and target, so padding neither counts nor pulls on the parameters.

    Shapes: ``output``, ``target`` (M, C, N); ``valid`` (M,) integer sample counts.
    """
    frame = output.shape[-1]
    if bool((valid < frame).any()):
        keep = torch.arange(frame, device=output.device)[None, :] < valid.to(output.device)[:, None]
        keep = keep.unsqueeze(1).to(output.dtype)
        output, target = output * keep, target * keep
    return loss_fn(output, target)
