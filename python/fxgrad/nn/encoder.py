"""The parameter encoder: audio context window -> effect parameters in [0, 1].

A fixed log-mel front end feeds a batch-normalised spectrogram to a CNN backbone (Inception-
style or MobileNetV2, trained from scratch), whose pooled features go through a dense layer and
a sigmoid, as in DeepAFx.
"""

from __future__ import annotations

import inspect
import math
from typing import Optional, Sequence

import torch
from torch import Tensor, nn


def _hz_to_mel(frequency: Tensor) -> Tensor:
    """Slaney mel scale (librosa's default): linear below 1 kHz, logarithmic above."""
    linear_step = 200.0 / 3.0
    log_step = math.log(6.4) / 27.0
    mel = frequency / linear_step
    above = frequency >= 1000.0
    return torch.where(above, 15.0 + torch.log(frequency.clamp(min=1e-9) / 1000.0) / log_step, mel)


def _mel_to_hz(mel: Tensor) -> Tensor:
    """Inverse of :func:`_hz_to_mel`."""
    linear_step = 200.0 / 3.0
    log_step = math.log(6.4) / 27.0
    return torch.where(mel >= 15.0, 1000.0 * torch.exp(log_step * (mel - 15.0)), mel * linear_step)


def mel_filterbank(
    sample_rate: float,
    n_fft: int,
    n_mels: int,
    f_min: float = 0.0,
    f_max: Optional[float] = None,
) -> Tensor:
    """Triangular mel filterbank, Slaney scale and area normalisation (as librosa's default).

    Args:
        sample_rate: in Hz.
        n_fft: FFT size the filters apply to.
        n_mels: number of bands.
        f_min, f_max: band edges in Hz; ``f_max`` defaults to ``sample_rate / 2``.

    Returns:
        float64 tensor (n_mels, n_fft // 2 + 1): ``filterbank @ power_spectrum`` gives band
        powers.
    """
    f_max = sample_rate / 2.0 if f_max is None else float(f_max)
    if not 0.0 <= f_min < f_max <= sample_rate / 2.0:
        raise ValueError(
            f"need 0 <= f_min < f_max <= sample_rate / 2, got f_min={f_min}, f_max={f_max}, sample_rate={sample_rate}"
        )
    if n_mels < 1 or n_fft < 2:
        raise ValueError(f"need n_mels >= 1 and n_fft >= 2, got {n_mels} and {n_fft}")
    bin_frequencies = torch.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1, dtype=torch.float64)
    mel_edges = torch.linspace(
        float(_hz_to_mel(torch.tensor(f_min, dtype=torch.float64))),
        float(_hz_to_mel(torch.tensor(f_max, dtype=torch.float64))),
        n_mels + 2,
        dtype=torch.float64,
    )
    edges = _mel_to_hz(mel_edges)
    widths = edges.diff()
    distance = edges[:, None] - bin_frequencies[None, :]
    rising = -distance[:-2] / widths[:-1, None]
    falling = distance[2:] / widths[1:, None]
    weights = torch.clamp(torch.minimum(rising, falling), min=0.0)
    # Area normalisation keeps each band's total gain roughly independent of its width.
    return weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]


class LogMelSpectrogram(nn.Module):
    """Fixed (non-trainable) log-mel spectrogram.

    Channels are averaged to mono first, because the encoder predicts one parameter vector for
    all channels. Power STFT (periodic Hann window, centred frames with zero padding), Slaney
    mel filterbank, then ``log(mel_power + 1e-6)``.

    Args:
        sample_rate: in Hz.
        n_fft: FFT size in samples.
        hop: hop between frames in samples.
        n_mels: number of mel bands.
        f_min, f_max: mel band edges in Hz (``f_max`` defaults to Nyquist).

    Shapes:
        input (B, C, T) linear amplitude -> output (B, 1, n_mels, 1 + T // hop), natural log of
        power.
    """

    def __init__(
        self,
        sample_rate: int = 22050,
        n_fft: int = 1024,
        hop: int = 256,
        n_mels: int = 128,
        f_min: float = 0.0,
        f_max: Optional[float] = None,
    ) -> None:
        super().__init__()
        if hop < 1:
            raise ValueError(f"hop must be >= 1, got {hop}")
        self.n_fft = int(n_fft)
        self.hop = int(hop)
        # Buffers, not parameters: the front end is fixed, and derived from the configuration
        # (so they are left out of the state dict).
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)
        self.register_buffer(
            "filterbank",
            mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max).float(),
            persistent=False,
        )

    def forward(self, audio: Tensor) -> Tensor:
        if audio.ndim != 3:
            raise ValueError(f"audio must be shaped (batch, channels, samples), got {tuple(audio.shape)}")
        mono = audio.mean(dim=1)
        spectrum = torch.stft(
            mono,
            n_fft=self.n_fft,
            hop_length=self.hop,
            window=self.window.to(mono.dtype),
            center=True,
            pad_mode="constant",
            return_complex=True,
        )
        power = spectrum.real**2 + spectrum.imag**2
        mel_power = torch.matmul(self.filterbank.to(power.dtype), power)
        return torch.log(mel_power + 1e-6).unsqueeze(1)


class ConvNormActivation(nn.Sequential):
    """Conv2d (no bias) -> BatchNorm2d -> activation (ReLU, ReLU6, or none), 'same' padding."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        groups: int = 1,
        activation: Optional[type[nn.Module]] = nn.ReLU,
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride,
                padding=kernel_size // 2,
                groups=groups,
                bias=False,
            ),
            nn.BatchNorm2d(out_channels),
        ]
        if activation is not None:
            layers.append(activation(inplace=True))
        super().__init__(*layers)


class InceptionBlock(nn.Module):
    """Four parallel branches concatenated on channels: 1x1, 1x1->3x3, 1x1->5x5, maxpool->1x1.

    Each branch has ``branch_channels`` outputs (the 3x3/5x5 branches reduce to half of that
    first), so the block outputs ``4 * branch_channels`` channels at the input's resolution.
    """

    def __init__(self, in_channels: int, branch_channels: int) -> None:
        super().__init__()
        reduced = max(branch_channels // 2, 1)
        self.branch_1x1 = ConvNormActivation(in_channels, branch_channels)
        self.branch_3x3 = nn.Sequential(
            ConvNormActivation(in_channels, reduced),
            ConvNormActivation(reduced, branch_channels, kernel_size=3),
        )
        self.branch_5x5 = nn.Sequential(
            ConvNormActivation(in_channels, reduced),
            ConvNormActivation(reduced, branch_channels, kernel_size=5),
        )
        self.branch_pool = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1),
            ConvNormActivation(in_channels, branch_channels),
        )
        self.out_channels = 4 * branch_channels

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat(
            [self.branch_1x1(x), self.branch_3x3(x), self.branch_5x5(x), self.branch_pool(x)],
            dim=1,
        )


class InceptionBackbone(nn.Module):
    """Inception-style CNN: strided stem, inception blocks with 2x2 max pooling between them,
    global average pooling.

    Args:
        in_channels: channels of the input image (1 for a spectrogram).
        stem_channels: outputs of the stem's 3x3 stride-2 convolution.
        block_channels: output channels of each inception block, each divisible by 4.

    Shapes:
        (B, in_channels, mels, frames) -> (B, out_features), ``out_features =
        block_channels[-1]``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        stem_channels: int = 16,
        block_channels: Sequence[int] = (32, 64, 128),
    ) -> None:
        super().__init__()
        if not block_channels or any(c <= 0 or c % 4 for c in block_channels):
            raise ValueError(f"block_channels must be non-empty positive multiples of 4, got {block_channels}")
        # ceil_mode keeps at least one row/column however small the spectrogram is.
        layers: list[nn.Module] = [
            ConvNormActivation(in_channels, stem_channels, kernel_size=3, stride=2),
            nn.MaxPool2d(2, ceil_mode=True),
        ]
        channels = stem_channels
        for index, width in enumerate(block_channels):
            if index:
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            block = InceptionBlock(channels, width // 4)
            layers.append(block)
            channels = block.out_channels
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.layers = nn.Sequential(*layers)
        self.out_features = channels

    def forward(self, image: Tensor) -> Tensor:
        return self.layers(image)


def _round_channels(channels: float, divisor: int = 8) -> int:
    """Round to a multiple of ``divisor`` without going more than 10% below (as MobileNetV2)."""
    rounded = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * channels else rounded


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expansion -> 3x3 depthwise -> linear 1x1 projection, with a
    residual connection when the shape is unchanged."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = in_channels * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(ConvNormActivation(in_channels, hidden, activation=nn.ReLU6))
        layers += [
            ConvNormActivation(hidden, hidden, kernel_size=3, stride=stride, groups=hidden, activation=nn.ReLU6),
            ConvNormActivation(hidden, out_channels, activation=None),
        ]
        self.layers = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        return x + self.layers(x) if self.use_residual else self.layers(x)


# (expansion t, output channels c, repeats n, first stride s) per stage.
MOBILENETV2_SETTINGS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
"""The original MobileNetV2 table (use with ``stem_channels=32, last_channels=1280``)."""

MOBILENETV2_SMALL_SETTINGS = ((1, 16, 1, 1), (4, 24, 2, 2), (4, 32, 2, 2), (4, 64, 2, 2))
"""A shallower, narrower table for CPU training (the :class:`MobileNetV2Backbone` default)."""


class MobileNetV2Backbone(nn.Module):
    """MobileNetV2 feature extractor (no pretrained weights) with global average pooling.

    Args:
        in_channels: channels of the input image (1 for a spectrogram).
        width_multiplier: scales every layer's channel count (rounded to multiples of 8).
        settings: stages as (expansion, channels, repeats, first stride) tuples.
        stem_channels: outputs of the 3x3 stride-2 stem, before the width multiplier.
        last_channels: outputs of the final 1x1 convolution, before the width multiplier
            (which only ever widens it, as in MobileNetV2).

    Shapes:
        (B, in_channels, mels, frames) -> (B, out_features).
    """

    def __init__(
        self,
        in_channels: int = 1,
        width_multiplier: float = 1.0,
        settings: Sequence[tuple[int, int, int, int]] = MOBILENETV2_SMALL_SETTINGS,
        stem_channels: int = 16,
        last_channels: int = 256,
    ) -> None:
        super().__init__()
        if width_multiplier <= 0:
            raise ValueError(f"width_multiplier must be > 0, got {width_multiplier}")
        if not settings:
            raise ValueError("settings must list at least one stage")
        channels = _round_channels(stem_channels * width_multiplier)
        layers: list[nn.Module] = [ConvNormActivation(in_channels, channels, 3, stride=2, activation=nn.ReLU6)]
        for expansion, stage_channels, repeats, first_stride in settings:
            out_channels = _round_channels(stage_channels * width_multiplier)
            for repeat in range(repeats):
                stride = first_stride if repeat == 0 else 1
                layers.append(InvertedResidual(channels, out_channels, stride, expansion))
                channels = out_channels
        self.out_features = _round_channels(last_channels * max(1.0, width_multiplier))
        layers += [
            ConvNormActivation(channels, self.out_features, activation=nn.ReLU6),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        ]
        self.layers = nn.Sequential(*layers)

    def forward(self, image: Tensor) -> Tensor:
        return self.layers(image)


BACKBONES = {"inception": InceptionBackbone, "mobilenetv2": MobileNetV2Backbone}


def check_backbone_options(backbone: str, options: Optional[dict]) -> None:
    """Raise ``ValueError`` for an unknown backbone, or options it does not take (naming those
    it does); ``in_channels`` is the encoder's to set."""
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {sorted(BACKBONES)}, got {backbone!r}")
    accepted = [name for name in inspect.signature(BACKBONES[backbone]).parameters if name != "in_channels"]
    unknown = sorted(set(options or {}) - set(accepted))
    if unknown:
        raise ValueError(
            f"backbone {backbone!r} takes no option {', '.join(map(repr, unknown))}; it takes: {', '.join(accepted)}"
        )


class Encoder(nn.Module):
    """Predicts normalised effect parameters for a frame from its surrounding context.

    log-mel front end (fixed) -> BatchNorm2d(1) -> backbone -> Linear(P) -> sigmoid.

    Args:
        num_parameters: P, the number of effect parameters predicted.
        sample_rate: in Hz.
        frame_size: N, the samples the effects process per step (the context's centre);
            recorded for callers, and ``context`` must be at least this long.
        context: W, the samples of the input window (40960 in DeepAFx; a demo on CPU can use
            e.g. 8192).
        backbone: ``"inception"`` or ``"mobilenetv2"``.
        n_fft, hop, n_mels, f_min, f_max: log-mel settings (see :class:`LogMelSpectrogram`).
        backbone_options: keyword arguments for the backbone class (e.g. ``block_channels``
            or ``width_multiplier``); ``in_channels`` is set here.

    Shapes:
        (B, C, context) linear amplitude -> (B, P) in [0, 1].
    """

    def __init__(
        self,
        num_parameters: int,
        sample_rate: int = 22050,
        frame_size: int = 1024,
        context: int = 40960,
        backbone: str = "inception",
        n_fft: int = 1024,
        hop: int = 256,
        n_mels: int = 128,
        f_min: float = 0.0,
        f_max: Optional[float] = None,
        backbone_options: Optional[dict] = None,
    ) -> None:
        super().__init__()
        if num_parameters < 1:
            raise ValueError(f"num_parameters must be >= 1, got {num_parameters}")
        if frame_size < 1 or context < frame_size:
            raise ValueError(f"need 1 <= frame_size <= context, got frame_size={frame_size}, context={context}")
        check_backbone_options(backbone, backbone_options)
        self.num_parameters = int(num_parameters)
        self.sample_rate = int(sample_rate)
        self.frame_size = int(frame_size)
        self.context = int(context)
        self.frontend = LogMelSpectrogram(sample_rate, n_fft, hop, n_mels, f_min, f_max)
        self.input_norm = nn.BatchNorm2d(1)
        self.backbone = BACKBONES[backbone](in_channels=1, **(backbone_options or {}))
        self.head = nn.Linear(self.backbone.out_features, self.num_parameters)

    def forward(self, context: Tensor) -> Tensor:
        if context.ndim != 3 or context.shape[-1] != self.context:
            raise ValueError(f"context must be shaped (batch, channels, {self.context}), got {tuple(context.shape)}")
        features = self.backbone(self.input_norm(self.frontend(context)))
        return torch.sigmoid(self.head(features))
