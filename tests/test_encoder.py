import math

import pytest
import torch

from fxgrad.data.stream import FrameStreamer, contexts
from fxgrad.nn.backbones import MOBILENETV2_SETTINGS, InceptionBackbone, MobileNetV2Backbone, TemporalBackbone
from fxgrad.nn.encoder import Encoder, LogMelSpectrogram, mel_filterbank

SAMPLE_RATE = 16000
CONTEXT = 4096
# Small backbones so that the training test runs in seconds on two CPU cores.
TINY_BACKBONES = {
    "inception": dict(stem_channels=8, block_channels=(16, 32)),
    "mobilenetv2": dict(
        width_multiplier=0.5,
        settings=((1, 16, 1, 1), (4, 24, 2, 2), (4, 32, 2, 2)),
        last_channels=64,
    ),
    "temporal": dict(channels=(32, 32)),
}


def test_mel_filterbank_bands_are_ordered_triangles_covering_the_range():
    filterbank = mel_filterbank(22050, 1024, 40)
    assert filterbank.shape == (40, 513)
    assert (filterbank >= 0).all()
    peaks = filterbank.argmax(dim=1)
    assert (peaks.diff() > 0).all()  # band centres rise with the band index
    # Every bin between the first and last centre belongs to some band.
    assert (filterbank[:, peaks[0] : peaks[-1] + 1].sum(dim=0) > 0).all()
    with pytest.raises(ValueError, match="f_min"):
        mel_filterbank(22050, 1024, 40, f_min=5000, f_max=4000)


class TestLogMelSpectrogram:
    def test_is_fixed_and_shapes_mono_log_mel_frames(self):
        frontend = LogMelSpectrogram(sample_rate=SAMPLE_RATE, n_fft=512, hop=128, n_mels=64)
        assert list(frontend.parameters()) == []
        assert frontend.state_dict() == {}
        audio = torch.randn(3, 2, CONTEXT)
        image = frontend(audio)
        assert image.shape == (3, 1, 64, 1 + CONTEXT // 128)
        # Channels are averaged before the transform.
        torch.testing.assert_close(image, frontend(audio.mean(dim=1, keepdim=True)))

    def test_a_tone_peaks_in_the_band_holding_its_frequency_and_silence_is_the_floor(self):
        frontend = LogMelSpectrogram(sample_rate=SAMPLE_RATE, n_fft=512, hop=128, n_mels=64)
        t = torch.arange(CONTEXT) / SAMPLE_RATE
        bin_frequencies = torch.linspace(0, SAMPLE_RATE / 2, 257)
        for frequency in (300.0, 2500.0):
            image = frontend(torch.sin(2 * math.pi * frequency * t).view(1, 1, -1))
            band = frontend.filterbank[image[0, 0, :, 8].argmax()]
            centre = (band * bin_frequencies).sum() / band.sum()
            assert abs(centre - frequency) < 0.1 * frequency
        silence = frontend(torch.zeros(1, 1, CONTEXT))
        torch.testing.assert_close(silence, torch.full_like(silence, math.log(1e-6)))

    def test_rejects_wrong_ndim(self):
        with pytest.raises(ValueError, match="batch, channels, samples"):
            LogMelSpectrogram()(torch.zeros(2, 1024))


@pytest.mark.parametrize("backbone", ["inception", "mobilenetv2", "temporal"])
def test_backbones_map_images_to_feature_vectors(backbone):
    module = {"inception": InceptionBackbone, "mobilenetv2": MobileNetV2Backbone, "temporal": TemporalBackbone}[
        backbone
    ]()
    for frames in (33, 161, 3):  # short, the paper's 40960-sample context, and tiny
        features = module(torch.randn(2, 1, 128, frames))
        assert features.shape == (2, module.out_features)


def test_mobilenetv2_width_multiplier_and_paper_table():
    narrow = MobileNetV2Backbone(width_multiplier=0.5)
    wide = MobileNetV2Backbone(width_multiplier=1.0)
    assert sum(p.numel() for p in narrow.parameters()) < sum(p.numel() for p in wide.parameters())
    paper = MobileNetV2Backbone(settings=MOBILENETV2_SETTINGS, stem_channels=32, last_channels=1280)
    assert paper.out_features == 1280
    assert paper(torch.randn(1, 1, 128, 40)).shape == (1, 1280)


@pytest.mark.parametrize("backbone", ["inception", "mobilenetv2", "temporal"])
def test_encoder_outputs_parameters_in_unit_range_and_backpropagates(backbone):
    encoder = Encoder(7, sample_rate=SAMPLE_RATE, context=CONTEXT, backbone=backbone, n_mels=64)
    context = torch.randn(4, 2, CONTEXT)
    parameters = encoder(context)
    assert parameters.shape == (4, 7)
    assert ((parameters > 0) & (parameters < 1)).all()
    parameters.square().sum().backward()
    first_conv = next(m for m in encoder.backbone.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv1d)))
    assert first_conv.weight.grad is not None and first_conv.weight.grad.abs().sum() > 0
    assert encoder.head.weight.grad.abs().sum() > 0


def test_encoder_rejects_bad_context_and_configuration():
    encoder = Encoder(3, sample_rate=SAMPLE_RATE, context=CONTEXT, n_mels=64)
    expected = f"context must be shaped \\(batch, channels, {CONTEXT}\\)"
    with pytest.raises(ValueError, match=expected):
        encoder(torch.zeros(2, 1, CONTEXT - 1))
    with pytest.raises(ValueError, match="context must be shaped"):
        encoder(torch.zeros(2, CONTEXT))
    with pytest.raises(ValueError, match="backbone"):
        Encoder(3, backbone="resnet")
    with pytest.raises(ValueError, match="frame_size"):
        Encoder(3, frame_size=2048, context=1024)


def tone_batch(size, generator):
    """Sines with random frequency (200-4000 Hz, log-spaced) and level (-40..0 dBFS).

    Returns the (size, 1, CONTEXT) audio and the (size, 2) normalised (frequency, level).
    """
    targets = torch.rand(size, 2, generator=generator)
    frequency = 200.0 * 20.0 ** targets[:, :1]
    amplitude = 10.0 ** ((-40.0 + 40.0 * targets[:, 1:]) / 20.0)
    phase = 2 * math.pi * torch.rand(size, 1, generator=generator)
    t = torch.arange(CONTEXT) / SAMPLE_RATE
    return (amplitude * torch.sin(2 * math.pi * frequency * t + phase)).unsqueeze(1), targets


@pytest.fixture
def single_thread():
    """One intra-op thread: as fast as two for these small tensors, and not slowed tenfold
    when other processes keep the cores busy (OpenMP workers then wait on each other)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_clip_features_are_the_windows_front_end_cut_from_one_spectrogram():
    """The log-mel computed once per clip, cut per frame, equals the front end of each frame's
    audio window except in the STFT frames at a window's edges (which see the clip's
    neighbouring audio, not zero padding); the streamer hands out the same windows, and the
    encoder takes them in place of audio."""
    frame, hop = 512, 128
    encoder = Encoder(2, SAMPLE_RATE, frame, CONTEXT, backbone="temporal", hop=hop, n_mels=32, features="clip")
    audio = torch.randn(1, 5 * frame + 100, generator=torch.Generator().manual_seed(4)) * 0.1
    features = encoder.clip_features()
    clip = features.of_clip(audio)
    frames = 6  # the last one partial
    windows = features.windows(clip, 0, frames)
    reference = encoder.frontend(contexts(audio, frame, CONTEXT, 0, frames))
    assert windows.shape == reference.shape == (frames, *encoder.mel_shape)
    edge = encoder.frontend.n_fft // (2 * hop)  # STFT frames whose window crosses the edge
    torch.testing.assert_close(windows[..., edge + 1 : -edge - 1], reference[..., edge + 1 : -edge - 1])
    assert not torch.equal(windows, reference)

    class Clip:
        channels = 1

        def __len__(self):
            return 1

        def num_samples(self, index):
            return audio.shape[-1]

        def __getitem__(self, index):
            return audio, audio

    stream = FrameStreamer(Clip(), 1, frame, CONTEXT, shuffle=False, features=features)
    streamed = torch.cat([batch.context for batch in stream])
    torch.testing.assert_close(streamed, windows)
    assert encoder(windows).shape == (frames, 2)
    with pytest.raises(ValueError, match="hop"):
        Encoder(2, SAMPLE_RATE, 500, CONTEXT, hop=hop, features="clip")


@pytest.mark.parametrize("backbone", ["inception", "mobilenetv2", "temporal"])
def test_encoder_learns_a_tones_frequency_and_level(backbone, single_thread):
    torch.manual_seed(0)
    encoder = Encoder(
        2,
        sample_rate=SAMPLE_RATE,
        context=CONTEXT,
        backbone=backbone,
        n_mels=64,
        backbone_options=TINY_BACKBONES[backbone],
    )
    optimiser = torch.optim.Adam(encoder.parameters(), lr=3e-3)
    test_audio, test_targets = tone_batch(128, torch.Generator().manual_seed(123))

    def test_error():
        encoder.eval()
        with torch.no_grad():
            error = (encoder(test_audio) - test_targets).square().mean(dim=0)
        encoder.train()
        return error

    initial = test_error()
    generator = torch.Generator().manual_seed(1)
    for _ in range(100):
        audio, targets = tone_batch(32, generator)
        loss = (encoder(audio) - targets).square().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    final = test_error()
    # Uniform targets: predicting a constant leaves a mean squared error of 1/12 ~ 0.083.
    assert (initial > 0.05).all()
    assert (final < 0.3 * initial).all(), f"error went from {initial.tolist()} to {final.tolist()}"
