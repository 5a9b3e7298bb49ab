import math

import numpy as np
import pytest
import torch

from fxgrad.nn.losses import (
    DelayInvariantLoss,
    MultiResolutionSTFTLoss,
    PointwiseLoss,
    STFTLoss,
    frame_loss,
)
from fxgrad.nn.metrics import (
    integrated_loudness,
    k_weighting_filters,
    loudness_error_db,
    mfcc_cosine_distance,
    mrstft_error,
)


def noise_like(tensor, seed):
    return torch.randn(tensor.shape, generator=torch.Generator().manual_seed(seed))


def delayed_pairs(delays, num_samples=1024, channels=1, seed=0):
    """(output, target) where output item b lags target item b by delays[b] samples."""
    generator = torch.Generator().manual_seed(seed)
    margin = 200
    source = torch.randn(len(delays), channels, num_samples + 2 * margin, generator=generator)
    target = source[..., margin : margin + num_samples]
    output = torch.stack([source[b, :, margin - d : margin - d + num_samples] for b, d in enumerate(delays)])
    return output.clone(), target.clone()


class TestDelayInvariantLoss:
    def test_estimates_each_items_lag_and_polarity_independently(self):
        delays = [0, 37, -59, 100, -100]
        output, target = delayed_pairs(delays, channels=2)
        output[1] *= -1  # polarity inversion must still align
        loss = DelayInvariantLoss(max_lag=100)
        assert loss.estimate_lag(output, target).tolist() == delays
        # Swapping roles flips the sign of the lag.
        assert loss.estimate_lag(target, output).tolist() == [-d for d in delays]

    def test_delayed_and_inverted_copy_costs_nothing_but_noise_does(self):
        output, target = delayed_pairs([23, -41])
        output[0] *= -1
        loss = DelayInvariantLoss()
        value, lag = loss(output, target, return_lag=True)
        assert lag.tolist() == [23, -41]
        assert value.item() < 1e-5
        unrelated = noise_like(output, seed=5)
        assert loss(unrelated, target).item() > 5.0

    def test_lag_search_is_bounded_by_max_lag(self):
        output, target = delayed_pairs([150])
        loss = DelayInvariantLoss(max_lag=100)
        lag = loss.estimate_lag(output, target)
        assert abs(lag.item()) <= 100
        assert loss(output, target).item() > 1.0
        assert DelayInvariantLoss(max_lag=200).estimate_lag(output, target).item() == 150

    def test_silence_gives_zero_lag_and_finite_gradients(self):
        output = torch.zeros(2, 1, 512, requires_grad=True)
        target = torch.zeros(2, 1, 512)
        loss = DelayInvariantLoss()
        value, lag = loss(output, target, return_lag=True)
        value.backward()
        assert lag.tolist() == [0, 0]
        assert value.item() == 0.0
        assert torch.isfinite(output.grad).all()

    def test_terms_match_a_direct_computation_at_zero_lag(self):
        generator = torch.Generator().manual_seed(3)
        target = torch.randn(1, 2, 1024, generator=generator, dtype=torch.float64)
        noise = torch.randn(1, 2, 1024, generator=generator, dtype=torch.float64)
        output = 0.3 * target + 0.2 * noise
        loss = DelayInvariantLoss(alpha_time=10.0, alpha_freq=1.0)
        terms = loss.terms(output, target)
        assert terms.lag.item() == 0

        out, tgt = output[0].numpy(), target[0].numpy()
        expected_time = min(np.abs(out - tgt).mean(), np.abs(out + tgt).mean())
        window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(1024) / 1024)  # periodic Hann

        def magnitude(x):
            return np.sqrt(np.maximum(np.abs(np.fft.rfft(x * window)) ** 2, 1e-8))

        out_mag, tgt_mag = magnitude(out), magnitude(tgt)
        expected_freq = np.mean((out_mag - tgt_mag) ** 2) + np.mean((np.log(out_mag) - np.log(tgt_mag)) ** 2)
        assert terms.time.item() == pytest.approx(expected_time, rel=1e-9)
        # The Hann window is a float32 buffer, hence the looser tolerance.
        assert terms.freq.item() == pytest.approx(expected_freq, rel=1e-6)
        expected = 10 * expected_time + expected_freq
        assert loss(output, target).item() == pytest.approx(expected, rel=1e-6)

    def test_batch_loss_is_the_mean_of_item_losses(self):
        output, target = delayed_pairs([5, -12, 0])
        output = output + 0.1 * noise_like(output, seed=9)
        loss = DelayInvariantLoss()
        items = [loss(output[b : b + 1], target[b : b + 1]) for b in range(3)]
        mean_of_items = torch.stack(items).mean().item()
        assert loss(output, target).item() == pytest.approx(mean_of_items, rel=1e-6)

    def test_gradient_reaches_only_the_overlapping_samples(self):
        output, target = delayed_pairs([30])
        output = (0.5 * output).requires_grad_()
        DelayInvariantLoss()(output, target).backward()
        # Output lags by 30: its first 30 samples have no target counterpart and are cropped.
        assert torch.all(output.grad[..., :30] == 0)
        assert torch.count_nonzero(output.grad[..., 30:]) > 0.99 * (1024 - 30)

    def test_frames_longer_than_n_fft_are_split_into_blocks(self):
        output, target = delayed_pairs([-7], num_samples=3000)
        loss = DelayInvariantLoss(n_fft=1024)
        assert loss(output, target).item() < 1e-5
        noisy = output + 0.05 * noise_like(output, seed=1)
        assert loss(noisy, target).item() > 0.1

    @pytest.mark.parametrize(
        "output, target, message",
        [
            (torch.zeros(1, 1, 64), torch.zeros(1, 1, 65), "shapes differ"),
            (torch.zeros(1, 64), torch.zeros(1, 64), "batch, channels, samples"),
            (torch.full((1, 1, 64), math.nan), torch.zeros(1, 1, 64), "NaN"),
        ],
    )
    def test_bad_input_is_rejected(self, output, target, message):
        with pytest.raises(ValueError, match=message):
            DelayInvariantLoss()(output, target)


class TestMultiResolutionSTFTLoss:
    def test_identical_signals_give_zero_and_half_gain_gives_known_value(self):
        signal = torch.randn(2, 1, 4096, generator=torch.Generator().manual_seed(0))
        loss = MultiResolutionSTFTLoss()
        assert loss(signal, signal).item() == pytest.approx(0.0, abs=1e-6)
        # Half the amplitude: spectral convergence 0.5, log-magnitude distance log 2.
        assert loss(0.5 * signal, signal).item() == pytest.approx(0.5 + math.log(2), rel=1e-4)

    def test_gradients_flow_to_the_output(self):
        target = torch.randn(1, 2, 2048, generator=torch.Generator().manual_seed(0))
        output = torch.zeros(1, 2, 2048).normal_(generator=torch.Generator().manual_seed(1))
        output.requires_grad_()
        MultiResolutionSTFTLoss()(output, target).backward()
        assert torch.isfinite(output.grad).all() and output.grad.abs().sum() > 0

    def test_rejects_mismatched_resolution_lists(self):
        with pytest.raises(ValueError, match="equal length"):
            MultiResolutionSTFTLoss(fft_sizes=(512, 1024), hop_sizes=(128,), win_lengths=(512,))
        with pytest.raises(ValueError, match="win_length"):
            STFTLoss(fft_size=256, hop_size=64, win_length=512)


def librosa_reference_pair(sample_rate=22050):
    rng = np.random.default_rng(0)
    n = 2 * sample_rate
    tone = np.sin(2 * np.pi * 440 * np.arange(n) / sample_rate)
    x = rng.standard_normal(n) * np.linspace(0, 1, n) + tone
    y = 0.5 * x + 0.1 * rng.standard_normal(n)
    return y, x


class TestMfccCosineDistance:
    def test_matches_values_computed_with_librosa(self):
        # Reference values from librosa 0.11 (melspectrogram n_fft 1024, hop 256, 128 mels,
        # power_to_db(ref=max), mfcc n_mfcc 13) and sklearn paired cosine distances.
        output, target = librosa_reference_pair()
        assert mfcc_cosine_distance(output, target, 22050, over="coefficients") == pytest.approx(
            0.12506788662885152, rel=1e-5
        )
        assert mfcc_cosine_distance(output, target, 22050) == pytest.approx(0.0006765022252952374, rel=1e-4)

    def test_orders_similar_and_dissimilar_signals(self):
        sample_rate = 16000
        t = np.arange(sample_rate) / sample_rate
        tone = np.sin(2 * np.pi * 300 * t) + 0.5 * np.sin(2 * np.pi * 1200 * t)
        noise = np.random.default_rng(1).standard_normal(t.size)
        assert mfcc_cosine_distance(tone, tone, sample_rate) == pytest.approx(0.0, abs=1e-9)
        assert mfcc_cosine_distance(0.1 * tone, tone, sample_rate) == pytest.approx(0.0, abs=1e-6)
        slightly_noisy = mfcc_cosine_distance(tone + 0.01 * noise, tone, sample_rate)
        very_different = mfcc_cosine_distance(noise, tone, sample_rate)
        # Frame vectors are dominated by c0, so even unrelated sounds stay well below 1.
        assert 0 < 10 * slightly_noisy < very_different

    def test_rejects_bad_input(self):
        with pytest.raises(ValueError, match="shapes differ"):
            mfcc_cosine_distance(np.zeros(1000), np.zeros(999), 16000)
        with pytest.raises(ValueError, match="over must be"):
            mfcc_cosine_distance(np.ones(1000), np.ones(1000), 16000, over="time")


class TestLoudness:
    def test_k_weighting_reproduces_the_bs1770_table_at_48k(self):
        (b_shelf, a_shelf), (b_highpass, a_highpass) = k_weighting_filters(48000)
        table = {
            "b_shelf": [1.53512485958697, -2.69169618940638, 1.19839281085285],
            "a_shelf": [1.0, -1.69065929318241, 0.73248077421585],
            "b_highpass": [1.0, -2.0, 1.0],
            "a_highpass": [1.0, -1.99004745483398, 0.99007225036621],
        }
        for name, computed in zip(table, (b_shelf, a_shelf, b_highpass, a_highpass)):
            np.testing.assert_allclose(computed, table[name], atol=1e-8, err_msg=name)

    @pytest.mark.parametrize("sample_rate", [48000, 44100, 22050])
    def test_full_scale_997hz_sine_reads_minus_3_lufs(self, sample_rate):
        # BS.1770's calibration: a 0 dBFS 997 Hz sine in one channel reads -3.01 LKFS.
        t = np.arange(2 * sample_rate) / sample_rate
        sine = np.sin(2 * np.pi * 997 * t)
        assert integrated_loudness(sine, sample_rate) == pytest.approx(-3.01, abs=0.03)
        stereo = np.stack([sine, sine])
        assert integrated_loudness(stereo, sample_rate) == pytest.approx(-3.01 + 3.01, abs=0.03)

    def test_gating_ignores_silence_and_quiet_passages(self):
        sample_rate = 22050
        t = np.arange(3 * sample_rate) / sample_rate
        sine = 0.5 * np.sin(2 * np.pi * 997 * t)
        reference = integrated_loudness(sine, sample_rate)
        # 3 s of sine then 3 s of silence: 57 blocks of 400 ms every 100 ms; 27 hold only
        # sine, 3 straddle the edge (0.75, 0.5, 0.25 of it, all above the relative gate) and
        # the rest fall below the absolute gate. Without gating it would read ~3 dB lower.
        expected = reference + 10 * math.log10((27 + 0.75 + 0.5 + 0.25) / 30)
        with_silence = np.concatenate([sine, np.zeros(3 * sample_rate)])
        assert integrated_loudness(with_silence, sample_rate) == pytest.approx(expected, abs=0.005)
        # A passage 30 dB down is above the absolute gate but below the relative one.
        with_quiet = np.concatenate([sine, 0.0316 * sine])
        assert integrated_loudness(with_quiet, sample_rate) == pytest.approx(expected, abs=0.01)
        assert integrated_loudness(np.zeros(sample_rate), sample_rate) == -math.inf

    def test_loudness_error_is_the_level_difference(self):
        sample_rate = 22050
        noise = np.random.default_rng(0).standard_normal((2, 2 * sample_rate)) * 0.1
        half_level = loudness_error_db(0.5 * noise, noise, sample_rate)
        assert half_level == pytest.approx(20 * math.log10(2), abs=1e-6)
        assert loudness_error_db(noise, noise, sample_rate) == 0.0
        assert loudness_error_db(np.zeros(sample_rate), np.zeros(sample_rate), sample_rate) == 0.0
        silence = np.zeros(sample_rate)
        assert loudness_error_db(silence, noise[0, :sample_rate], sample_rate) == math.inf

    def test_rejects_clips_shorter_than_one_block(self):
        with pytest.raises(ValueError, match="400 ms"):
            integrated_loudness(np.ones(1000), 22050)


def test_mrstft_error_accepts_numpy_clips_and_matches_the_loss():
    rng = np.random.default_rng(0)
    target = rng.standard_normal((2, 8000)).astype(np.float32)
    assert mrstft_error(0.5 * target, target) == pytest.approx(0.5 + math.log(2), rel=1e-4)
    assert mrstft_error(target[0], target[0]) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="channels, samples"):
        mrstft_error(target[None], target[None])


def test_pointwise_losses():
    output = torch.tensor([[[1.0, -2.0, 0.5, 0.0]]])
    target = torch.zeros_like(output)
    assert float(PointwiseLoss("l1")(output, target)) == pytest.approx(3.5 / 4)
    assert float(PointwiseLoss("mse")(output, target)) == pytest.approx(5.25 / 4)
    with pytest.raises(ValueError, match="kind must be 'l1' or 'mse'"):
        PointwiseLoss("l2")


def test_frame_loss_ignores_padding():
    """Samples past a lane's valid count are zeroed in both output and target: what the padding
    holds changes nothing, while the same change inside the valid part does."""
    generator = torch.Generator().manual_seed(3)
    output, target = torch.randn(2, 1, 64, generator=generator), torch.randn(2, 1, 64, generator=generator)
    valid = torch.tensor([64, 40])
    loss = PointwiseLoss("l1")
    base = float(frame_loss(loss, output, target, valid))
    changed = output.clone()
    changed[1, :, 40:] += 100.0
    assert float(frame_loss(loss, changed, target, valid)) == base
    changed[1, :, 39] += 100.0
    assert float(frame_loss(loss, changed, target, valid)) > base
    assert float(frame_loss(loss, output, target, torch.tensor([64, 64]))) == float(loss(output, target))
