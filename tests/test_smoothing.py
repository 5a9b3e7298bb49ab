"""Smoothing of parameter trajectories: what it keeps, what it removes, what it refuses, and the
choice of a setting by a score."""

import re

import numpy as np
import pytest

from fxgrad.nn.smoothing import KINDS, Smoothing, choose_smoothing, smooth

HOP, RATE = 1024, 22050  # one frame = 46.4 ms


@pytest.mark.parametrize("kind", KINDS)
def test_a_constant_trajectory_is_left_unchanged(kind):
    thetas = np.tile(np.array([0.3, 0.77, 1.0, 0.0], np.float32), (200, 1))
    out = smooth(thetas, kind, 250.0, HOP, RATE)
    assert out.shape == thetas.shape and out.dtype == np.float32
    np.testing.assert_array_equal(out, thetas)


@pytest.mark.parametrize("kind", KINDS)
def test_zero_milliseconds_is_the_identity(kind, rng):
    thetas = rng.uniform(0, 1, (50, 3)).astype(np.float32)
    out = smooth(thetas, kind, 0.0, HOP, RATE)
    np.testing.assert_array_equal(out, thetas)
    out[0, 0] = 2.0  # a new array, not a view of the input
    assert thetas[0, 0] != 2.0


def test_the_one_pole_smooths_a_step_monotonically_without_lag():
    thetas = np.zeros((100, 1), np.float32)
    thetas[50:] = 1.0
    out = smooth(thetas, "one-pole", 200.0, HOP, RATE)[:, 0]  # about 4.3 frames
    assert (np.diff(out) >= 0).all()  # monotonic: no overshoot, no ringing
    assert 0.0 <= out.min() and out.max() <= 1.0
    assert 0.0 < out[40] < out[45] < 0.5 < out[54] < out[59] < 1.0  # smoothed on both sides of the step
    # Zero phase: the S-curve is symmetric about the step (between frames 49 and 50).
    np.testing.assert_allclose(out[:50], 1.0 - out[50:][::-1], atol=1e-5)
    longer = smooth(thetas, "one-pole", 800.0, HOP, RATE)[:, 0]
    assert longer[45] > out[45]  # a longer time constant smooths more


def test_the_median_removes_a_single_frame_spike_and_keeps_a_step():
    thetas = np.full((40, 2), 0.25, np.float32)
    thetas[10, 0] = 0.95  # one frame
    thetas[25:, 1] = 0.75  # a step
    out = smooth(thetas, "median", 3 * HOP / RATE * 1000, HOP, RATE)  # three frames
    np.testing.assert_array_equal(out[:, 0], np.full(40, 0.25, np.float32))
    np.testing.assert_array_equal(out[:, 1], thetas[:, 1])
    # A window under three frames is one frame: nothing to take a median over.
    np.testing.assert_array_equal(smooth(thetas, "median", 60.0, HOP, RATE), thetas)


def test_a_setting_parses_prints_and_applies():
    setting = Smoothing.parse("one-pole:40")
    assert setting == Smoothing("one-pole", 40.0) and str(setting) == "one-pole:40"
    thetas = np.linspace(0, 1, 30, dtype=np.float32)[:, None]
    np.testing.assert_array_equal(setting.apply(thetas, HOP, RATE), smooth(thetas, "one-pole", 40, HOP, RATE))
    assert str(Smoothing.parse("median:120.5")) == "median:120.5"


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda t: smooth(t, "gaussian", 10, HOP, RATE), "kind must be one of"),
        (lambda t: smooth(t, "one-pole", -5, HOP, RATE), ">= 0"),
        (lambda t: smooth(t, "median", float("inf"), HOP, RATE), "finite"),
        (lambda t: smooth(t, "one-pole", 10, 0, RATE), "hop_samples"),
        (lambda t: smooth(t, "one-pole", 10, HOP, -1.0), "sample_rate"),
        (lambda t: smooth(t[:, 0], "one-pole", 10, HOP, RATE), "shaped (frames, parameters)"),
        (lambda t: smooth(t[:0], "median", 10, HOP, RATE), "frames >= 1"),
        (lambda t: smooth(t * 2, "median", 10, HOP, RATE), "in [0, 1]"),
        (lambda t: smooth(np.where(t > 0.5, np.nan, t), "median", 10, HOP, RATE), "NaN"),
        (lambda t: Smoothing.parse("one-pole"), "KIND:MS"),
        (lambda t: Smoothing.parse("median:fast"), "KIND:MS"),
        (lambda t: Smoothing.parse("box:10"), "kind must be one of"),
    ],
)
def test_bad_input_raises_with_a_message(call, message, rng):
    thetas = rng.uniform(0, 1, (20, 2)).astype(np.float32)
    with pytest.raises(ValueError, match=re.escape(message)):
        call(thetas)


def test_choose_smoothing_takes_the_lowest_score_and_ties_go_to_the_first():
    jitter = np.random.default_rng(0).uniform(-0.1, 0.1, (300, 1))
    truth = (0.5 + 0.3 * np.sin(np.linspace(0, 6, 300)))[:, None]
    noisy = np.clip(truth + jitter, 0, 1).astype(np.float32)

    def score(setting):
        out = noisy if setting is None else setting.apply(noisy, HOP, RATE)
        return float(np.abs(out - truth).mean())

    best, scores = choose_smoothing([None, "one-pole:100", "one-pole:5000", Smoothing("median", 300)], score)
    assert set(scores) == {"none", "one-pole:100", "one-pole:5000", "median:300"}
    assert best == min((s for s in [Smoothing.parse("one-pole:100"), Smoothing("median", 300)]), key=score)
    assert scores["none"] > scores[str(best)] and scores["one-pole:5000"] > scores[str(best)]
    assert choose_smoothing([None, "median:0"], lambda s: 1.0)[0] is None
    with pytest.raises(ValueError, match="at least one"):
        choose_smoothing([], score)
