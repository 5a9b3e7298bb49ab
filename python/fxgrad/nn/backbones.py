"""The encoder's CNN backbones: a log-mel image (B, 1, mels, frames) -> pooled features (B, F).

Inception-style and MobileNetV2 (DeepAFx's two, trained from scratch) and a compact temporal CNN
for CPUs; :data:`BACKBONES` names them for :class:`fxgrad.nn.encoder.Encoder`.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor, nn


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


class TemporalBackbone(nn.Module):
    """A compact CNN for CPUs: the mel bands are the channels of 1-D convolutions over time.

    A 3-wide convolution from the bands to ``channels[0]``, then one 3-wide stride-2
    convolution per further entry of ``channels`` (each with batch norm and ReLU), then the mean
    and the maximum over time, concatenated. Every layer sees all bands at once, so level and
    spectral balance (what compressors and equalisers are set by) are one layer away; on the
    demo's 48 x 65 log-mel windows it costs about 1 % of the Inception backbone's multiply-adds.

    Args:
        in_channels: channels of the input image (1 for a spectrogram).
        n_mels: mel bands (the image's height); set by the :class:`Encoder`.
        channels: output channels of each convolution.

    Shapes:
        (B, in_channels, n_mels, frames) -> (B, out_features), ``out_features = 2 *
        channels[-1]``.
    """

    def __init__(self, in_channels: int = 1, n_mels: int = 128, channels: Sequence[int] = (32, 32, 32)) -> None:
        super().__init__()
        if not channels or any(int(c) < 1 for c in channels):
            raise ValueError(f"channels must be a non-empty list of positive counts, got {channels}")
        layers: list[nn.Module] = []
        width = in_channels * n_mels
        for index, out in enumerate(channels):
            stride = 1 if index == 0 else 2
            layers += [
                nn.Conv1d(width, int(out), 3, stride, padding=1, bias=False),
                nn.BatchNorm1d(int(out)),
                nn.ReLU(inplace=True),
            ]
            width = int(out)
        self.layers = nn.Sequential(*layers)
        self.out_features = 2 * width

    def forward(self, image: Tensor) -> Tensor:
        hidden = self.layers(image.flatten(1, 2))  # (B, C * mels, T) -> (B, width, T')
        return torch.cat([hidden.mean(dim=-1), hidden.amax(dim=-1)], dim=1)


BACKBONES = {"inception": InceptionBackbone, "mobilenetv2": MobileNetV2Backbone, "temporal": TemporalBackbone}
