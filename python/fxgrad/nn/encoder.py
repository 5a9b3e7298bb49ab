"""The parameter encoder: audio context window -> effect parameters in [0, 1].

A fixed log-mel front end feeds a batch-normalised spectrogram to a CNN backbone (Inception-
style or MobileNetV2, trained from scratch, as in DeepAFx; or a compact temporal CNN for CPUs),
whose pooled features go through a dense layer and a sigmoid.

The front end is fixed, so it can run once per clip instead of once per frame
(:class:`ClipFeatures`): consecutive frames' context windows overlap by all but one frame (about
80x with DeepAFx's 1.86 s windows), and each frame's window of the clip's log-mel is a slice.
"""

from __future__ import annotations

import copy
import inspect
import math
from typing import Optional

import torch
from torch import Tensor, nn

from .backbones import BACKBONES


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


FEATURES = ("window", "clip")
"""Where the encoder's front end runs: on each context window (DeepAFx) or once per clip."""


class ClipFeatures:
    """A clip's log-mel spectrogram computed once, and each frame's window of it.

    The window of frame ``k`` covers the same samples as the audio context window
    (:func:`fxgrad.data.stream.contexts`: it starts ``(W - N) // 2`` samples before the frame,
    zeros outside the clip) and has the same shape as :class:`LogMelSpectrogram` of that window,
    (1, n_mels, 1 + W // hop). The spectra differ only in the STFT frames within ``n_fft / 2``
    of a window's edges, which here see the clip's neighbouring audio instead of zero padding.

    Args:
        frontend: the encoder's :class:`LogMelSpectrogram` (a copy is kept on the CPU).
        frame_size: N, samples per frame; a multiple of the front end's hop.
        context: W, samples per window; ``(W - N) // 2`` must be a multiple of the hop too.

    Shapes: :meth:`of_clip` (C, samples) -> (n_mels, T) for the whole clip; :meth:`window`
    (n_mels, T), frame index -> (1, n_mels, 1 + W // hop); :meth:`windows` frames
    ``start..stop`` -> (stop - start, 1, n_mels, 1 + W // hop).
    """

    def __init__(self, frontend: "LogMelSpectrogram", frame_size: int, context: int) -> None:
        hop = frontend.hop
        offset = (context - frame_size) // 2
        if frame_size % hop or offset % hop:
            raise ValueError(
                f"features computed once per clip need the hop ({hop}) to divide frame_size ({frame_size}) and the "
                f"context's lead (context - frame_size) // 2 = {offset}"
            )
        self.frontend = copy.deepcopy(frontend).cpu()
        self.frame_size = int(frame_size)
        self.context = int(context)
        self.offset = offset
        self.hop = hop
        self.stride = frame_size // hop  # STFT frames per frame
        self.length = 1 + context // hop  # STFT frames per window
        self.mel_shape = (1, int(self.frontend.filterbank.shape[0]), self.length)
        """The shape of one window, (1, n_mels, 1 + W // hop)."""

    @torch.no_grad()
    def of_clip(self, audio: Tensor) -> Tensor:
        """(n_mels, T) log-mel of the clip padded so that every frame's window lies inside it."""
        channels, samples = audio.shape
        frames = max(1, -(-samples // self.frame_size))
        total = (frames - 1) * self.frame_size + self.context  # the padded clip's length
        padded = torch.nn.functional.pad(audio.float(), (self.offset, max(0, total - self.offset - samples)))
        return self.frontend(padded[None])[0, 0]

    def window(self, features: Tensor, frame: int) -> Tensor:
        """(1, n_mels, 1 + W // hop): frame ``frame``'s window of :meth:`of_clip`'s output."""
        start = frame * self.stride
        return features[None, :, start : start + self.length]

    def windows(self, features: Tensor, start: int, stop: int) -> Tensor:
        """(stop - start, 1, n_mels, 1 + W // hop): the windows of frames ``start..stop``."""
        span = features[:, start * self.stride : (stop - 1) * self.stride + self.length]
        return span.unfold(-1, self.length, self.stride).permute(1, 0, 2).unsqueeze(1).contiguous()


_ENCODER_SET = ("in_channels", "n_mels")
"""Backbone arguments the :class:`Encoder` sets (``n_mels`` for backbones that take it)."""


def check_backbone_options(backbone: str, options: Optional[dict]) -> None:
    """Raise ``ValueError`` for an unknown backbone, or options it does not take (naming those
    it does); ``in_channels`` and ``n_mels`` are the encoder's to set."""
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {sorted(BACKBONES)}, got {backbone!r}")
    accepted = [name for name in inspect.signature(BACKBONES[backbone]).parameters if name not in _ENCODER_SET]
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
        backbone: ``"inception"``, ``"mobilenetv2"`` or ``"temporal"``.
        n_fft, hop, n_mels, f_min, f_max: log-mel settings (see :class:`LogMelSpectrogram`).
        backbone_options: keyword arguments for the backbone class (e.g. ``block_channels``
            or ``width_multiplier``); ``in_channels`` (and ``n_mels``) are set here.
        features: ``"window"`` (the front end runs on each context window, as DeepAFx) or
            ``"clip"`` (once per clip, :class:`ClipFeatures`; callers then pass log-mel windows
            from :meth:`clip_features`). Recorded so that inference cuts its inputs as training did.

    Shapes:
        (B, C, context) linear amplitude, or (B, 1, n_mels, 1 + context // hop) log-mel windows
        (the front end's output) -> (B, P) in [0, 1].
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
        features: str = "window",
    ) -> None:
        super().__init__()
        if num_parameters < 1:
            raise ValueError(f"num_parameters must be >= 1, got {num_parameters}")
        if frame_size < 1 or context < frame_size:
            raise ValueError(f"need 1 <= frame_size <= context, got frame_size={frame_size}, context={context}")
        if features not in FEATURES:
            raise ValueError(f"features must be one of {FEATURES}, got {features!r}")
        check_backbone_options(backbone, backbone_options)
        self.num_parameters = int(num_parameters)
        self.sample_rate = int(sample_rate)
        self.frame_size = int(frame_size)
        self.context = int(context)
        self.features = features
        self.frontend = LogMelSpectrogram(sample_rate, n_fft, hop, n_mels, f_min, f_max)
        self.input_norm = nn.BatchNorm2d(1)
        options = dict(backbone_options or {})
        if "n_mels" in inspect.signature(BACKBONES[backbone]).parameters:
            options["n_mels"] = n_mels
        self.backbone = BACKBONES[backbone](in_channels=1, **options)
        self.head = nn.Linear(self.backbone.out_features, self.num_parameters)
        self.mel_shape = (1, int(n_mels), 1 + self.context // self.frontend.hop)
        if features == "clip":
            self.clip_features()  # refuses a frame size or context the hop does not divide

    def stream_features(self) -> Optional[ClipFeatures]:
        """What a frame streamer computes once per clip for this encoder: :meth:`clip_features`
        with ``features="clip"``, else none (the streamer cuts audio windows)."""
        return self.clip_features() if self.features == "clip" else None

    def clip_features(self) -> ClipFeatures:
        """The front end as :class:`ClipFeatures` (once per clip) for this encoder's windows."""
        return ClipFeatures(self.frontend, self.frame_size, self.context)

    def forward(self, context: Tensor) -> Tensor:
        if context.ndim == 4 and tuple(context.shape[1:]) == self.mel_shape:
            image = context  # log-mel windows, the front end already applied
        elif context.ndim == 3 and context.shape[-1] == self.context:
            image = self.frontend(context)
        else:
            raise ValueError(
                f"context must be shaped (batch, channels, {self.context}) (audio) or "
                f"(batch, {', '.join(map(str, self.mel_shape))}) (log-mel windows), got {tuple(context.shape)}"
            )
        features = self.backbone(self.input_norm(image))
        return torch.sigmoid(self.head(features))
