"""The SPSA rack and PluginLayer on real plugins: fxgrad's Gain and Compressor (known
behaviour) and third-party LV2 compressors."""

import math

import numpy as np
import pytest
import torch
from _learning import fit_static_parameters

import fxgrad
from fxgrad import _native
from fxgrad.torch import PluginLayer

SR = 22050
N = 1024
ZAMCOMP = "urn:zamaudio:ZamComp"
ZAMEQ2 = "urn:zamaudio:ZamEQ2"
CALF_COMPRESSOR = "http://calf.sourceforge.net/plugins/Compressor"
DB_PER_UNIT = 48.0  # fxgrad Gain: -24..24 dB over the normalised range


def make_rack(
    chain,
    lanes=1,
    eps=0.01,
    perturbations=1,
    strategy="lockstep",
    estimator="two-sided",
    replay_samples=4096,
    threads=1,
    seed=0,
    **estimate,
):
    return _native.Rack(
        chain, lanes, eps, perturbations, strategy, estimator, replay_samples, threads, seed, **estimate
    )


def gain_chain(count=1):
    plugins = [fxgrad.load("fxgrad:Gain", sample_rate=SR, block_size=256, channels=1) for _ in range(count)]
    return fxgrad.Chain(plugins)


def noise(lanes, seconds_or_samples=N, seed=0, level=0.3, channels=1):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((lanes, channels, seconds_or_samples)) * level).astype(np.float32)


def analytic_gain_gradient(theta, x, upstream):
    """d<u, prod_k g_k x>/d theta_k for gains g_k = 10^((-24 + 48 theta_k) / 20)."""
    total_gain = np.prod(10.0 ** ((-24.0 + DB_PER_UNIT * theta.astype(np.float64)) / 20.0), axis=-1)
    inner = (upstream.astype(np.float64) * x.astype(np.float64)).sum(axis=(1, 2)) * total_gain
    return inner[:, None] * (math.log(10.0) / 20.0 * DB_PER_UNIT) * np.ones_like(theta, dtype=np.float64)


@pytest.mark.parametrize("theta_value", [0.5, 0.995])
def test_spsa_on_gain_matches_analytic_gradient(theta_value):
    chain = gain_chain(1)
    lanes, K = 4, 500  # 2000 estimates; snapshot: 2 evaluators per lane, not lockstep's 2K (the draws
    # are the same, see test_spsa_mean_on_three_gains_is_unbiased)
    rack = make_rack(chain, lanes=lanes, perturbations=K, strategy="snapshot", seed=11)
    x, u = noise(lanes, seed=1), noise(lanes, seed=2)
    theta = np.full((lanes, 1), theta_value, np.float32)
    rack.forward(theta, x)
    estimate = rack.vjp(u).astype(np.float64).mean(axis=0)
    exact = analytic_gain_gradient(theta, x, u).mean(axis=0)
    assert np.all(np.abs(estimate - exact) <= 0.02 * np.abs(exact)), (estimate, exact)


def test_spsa_mean_on_three_gains_is_unbiased():
    """8 lanes x K = 1000 two-sided SPSA draws on three gains in series. The three exact partial
    derivatives are equal (each gain scales the output alike), so a draw's estimate of coordinate
    i over the exact one is 1 + sum_{j != i} D_i D_j (Rademacher D) up to a curvature term of
    (5.5 eps)^2 / 6 < 1e-3: mean 1, and over 8000 draws a standard deviation of
    sqrt(2 / 8000) = 0.016, so |ratio - 1| < 0.08 is a 5-sigma bound.

    Perturbed renders start from the centre's state with the snapshot strategy (2 evaluator
    chains per lane whatever K: 72 instances), the way lockstep's 2K per-perturbation chains
    (48,000 instances for this rack) would start on a lane's first frame; a small lockstep
    rack gives bit-identical draws."""
    chain = gain_chain(3)
    lanes, K = 8, 1000
    rack = make_rack(chain, lanes=lanes, perturbations=K, strategy="snapshot", seed=5, threads=2)
    x, u = noise(lanes, seed=3), noise(lanes, seed=4)
    theta = np.tile(np.array([[0.3, 0.5, 0.6]], np.float32), (lanes, 1))
    rack.forward(theta, x)
    per_lane = rack.vjp(u).astype(np.float64)
    exact = analytic_gain_gradient(theta, x, u)
    # Normalise each lane by its exact gradient so lanes of different sign/scale average.
    ratio = (per_lane / exact).mean(axis=0)
    assert np.all(np.abs(ratio - 1.0) < 0.08), ratio

    # The draws do not depend on the strategy: K = 20 with lockstep and with snapshot.
    small = [make_rack(chain, lanes=2, perturbations=20, strategy=s, seed=5) for s in ("lockstep", "snapshot")]
    grads = []
    for r in small:
        r.forward(theta[:2], x[:2])
        grads.append(r.vjp(u[:2]))
    np.testing.assert_array_equal(grads[0], grads[1])


def test_fd_mode_matches_analytic_gradient_on_gain():
    chain = gain_chain(2)
    rack = make_rack(chain, lanes=3, estimator="fd", strategy="replay")
    x, u = noise(3, seed=5), noise(3, seed=6)
    theta = np.array([[0.2, 0.7], [0.5, 0.5], [0.0, 1.0]], np.float32)  # includes both edges
    rack.forward(theta, x)
    grad = rack.vjp(u)
    exact = analytic_gain_gradient(theta, x, u)
    # Central differences on an exponential: relative error ~ (eps * 5.5)^2 / 6; one-sided at edges.
    np.testing.assert_allclose(grad, exact, rtol=0.03)


def own_compressor_chain():
    comp = fxgrad.load("fxgrad:Compressor", sample_rate=SR, block_size=256, channels=1)
    comp.set("knee_db", 18.0)  # a smooth region: a wide soft knee, the level sits inside it
    return fxgrad.Chain([comp], learned=["threshold_db", "ratio", "attack_ms", "release_ms", "makeup_db"])


def test_spsa_mean_agrees_with_fd_on_own_compressor():
    chain = own_compressor_chain()
    lanes = 2
    theta = np.tile(np.array([[0.6, 0.4, 0.5, 0.5, 0.3]], np.float32), (lanes, 1))
    fd = make_rack(chain, lanes=lanes, strategy="snapshot", estimator="fd")
    spsa = make_rack(chain, lanes=lanes, strategy="snapshot", perturbations=400, seed=3)
    warmup = noise(lanes, 8 * N, seed=7)
    for f in range(8):  # identical trajectories bring both racks' centres to the same state
        frame = np.ascontiguousarray(warmup[:, :, f * N : (f + 1) * N])
        np.testing.assert_array_equal(fd.forward(theta, frame, False), spsa.forward(theta, frame, False))
    x, u = noise(lanes, seed=8), noise(lanes, seed=9)
    np.testing.assert_array_equal(fd.forward(theta, x), spsa.forward(theta, x))
    g_fd, g_spsa = fd.vjp(u).ravel(), spsa.vjp(u).ravel()
    cosine = g_fd @ g_spsa / (np.linalg.norm(g_fd) * np.linalg.norm(g_spsa))
    assert cosine >= 0.95, (cosine, g_fd, g_spsa)


@pytest.mark.parametrize(
    "uri,strategy,estimator",
    [
        (CALF_COMPRESSOR, "lockstep", "two-sided"),
        (CALF_COMPRESSOR, "replay", "one-sided"),
        (ZAMCOMP, "replay", "fd"),
        ("fxgrad:Compressor", "snapshot", "two-sided"),
    ],
)
def test_gradients_bit_identical_for_any_thread_count(uri, strategy, estimator):
    plugin = fxgrad.load(uri, sample_rate=SR, block_size=256, channels=1)
    chain = fxgrad.Chain([plugin])
    lanes, P = 6, chain.num_parameters
    rng = np.random.default_rng(0)
    frames = noise(lanes, 4 * N, seed=12)
    thetas = rng.uniform(0.05, 0.95, (4, lanes, P)).astype(np.float32)
    results = []
    for threads in (1, 2, 4):
        rack = make_rack(
            chain, lanes=lanes, strategy=strategy, estimator=estimator, perturbations=2, threads=threads, seed=9
        )
        assert rack.threads == threads
        grads = []
        for f in range(4):
            frame = np.ascontiguousarray(frames[:, :, f * N : (f + 1) * N])
            y = rack.forward(thetas[f], frame)
            grads.append(rack.vjp(np.ascontiguousarray(y * 0.5 - frame)))
        results.append(np.stack(grads))
    assert np.any(results[0] != 0)
    for other in results[1:]:
        np.testing.assert_array_equal(results[0], other)


def test_orthogonal_directions_give_the_exact_gradient_with_k_equal_to_p():
    """K = P mutually orthogonal directions span the parameter space: the estimate is the
    gradient itself up to the curvature of the exponential gains (|D_i| reaches about 3, so
    (3 * 5.5 eps)^2 / 6 < 0.5 %), where K = P Rademacher draws are off by tens of percent."""
    chain = gain_chain(3)
    lanes = 4
    x, u = noise(lanes, seed=13), noise(lanes, seed=14)
    theta = np.tile(np.array([[0.3, 0.5, 0.6]], np.float32), (lanes, 1))
    exact = analytic_gain_gradient(theta, x, u)
    errors = {}
    for directions in ("orthogonal", "rademacher"):
        rack = make_rack(chain, lanes=lanes, perturbations=3, strategy="snapshot", seed=2, directions=directions)
        rack.forward(theta, x)
        errors[directions] = np.abs(rack.vjp(u) / exact - 1.0).max()
        directions_drawn = np.array([rack.perturbation(0, k) for k in range(3)])
    assert errors["orthogonal"] < 0.01, errors
    assert errors["rademacher"] > 0.1, errors
    rack = make_rack(chain, perturbations=3, directions="orthogonal")
    d = np.array([rack.perturbation(0, k) for k in range(3)])
    np.testing.assert_allclose(d @ d.T, 3.0 * np.eye(3), atol=1e-4)  # orthogonal, norm sqrt(P)
    assert set(np.unique(directions_drawn)) == {-1.0, 1.0}


def test_control_variate_keeps_the_mean_and_cuts_the_noise_of_a_steady_gradient():
    """The same frame, 1000 steps: with a baseline (beta 0.9) each estimate is still centred on
    the exact gradient, and its spread around it is several times smaller than plain SPSA's
    (whose error is the sum of the other coordinates' gradients, times random signs)."""
    chain = gain_chain(3)
    x, u = noise(1, seed=15), noise(1, seed=16)
    theta = np.array([[0.3, 0.5, 0.6]], np.float32)
    exact = analytic_gain_gradient(theta, x, u)[0]
    spread = {}
    for baseline in (0.0, 0.9):
        rack = make_rack(chain, strategy="snapshot", seed=6, baseline=baseline)
        estimates = []
        for _ in range(1000):
            rack.forward(theta, x)
            estimates.append(rack.vjp(u)[0])
        ratio = np.array(estimates[50:]) / exact
        # Plain SPSA: each draw's ratio has a spread of sqrt(2), so 950 draws leave 0.046: 4 sigma.
        assert np.all(np.abs(ratio.mean(axis=0) - 1.0) < 0.2), (baseline, ratio.mean(axis=0))
        spread[baseline] = ratio.std(axis=0).mean()
    assert spread[0.9] < 0.4 * spread[0.0], spread
    rack.reset_lanes(np.array([True]))  # a new clip: the baseline starts from zero again
    rack.forward(theta, x)
    first = rack.vjp(u)[0]
    fresh = make_rack(chain, strategy="snapshot", seed=6, baseline=0.9)
    fresh.step = rack.step - 1
    fresh.forward(theta, x)
    np.testing.assert_array_equal(first, fresh.vjp(u)[0])


def test_shared_and_guided_perturbations():
    chain = gain_chain(3)
    shared = make_rack(chain, lanes=3, perturbations=2, shared=True)
    assert shared.perturbation(0, 1) == shared.perturbation(2, 1) != shared.perturbation(0, 0)
    # Guided: the estimate leans into the span of the lane's past estimates and keeps the
    # perturbation's energy (E |D|^2 = P); it points the gradient's way on a steady frame.
    x, u = noise(1, seed=17), noise(1, seed=18)
    theta = np.array([[0.3, 0.5, 0.6]], np.float32)
    exact = analytic_gain_gradient(theta, x, u)[0]
    rack = make_rack(chain, strategy="snapshot", seed=8, directions="guided", subspace=2, guided_share=0.5)
    estimates, energy = [], []
    for _ in range(200):
        energy.append(np.square(rack.perturbation(0, 0)).sum())
        rack.forward(theta, x)
        estimates.append(rack.vjp(u)[0])
    mean = np.mean(estimates, axis=0)
    assert mean @ exact / (np.linalg.norm(mean) * np.linalg.norm(exact)) > 0.95
    assert abs(np.mean(energy[1:]) - 3.0) < 0.5, np.mean(energy)
    with pytest.raises(ValueError, match="subspace"):
        make_rack(chain, directions="guided")
    with pytest.raises(ValueError, match="baseline"):
        make_rack(chain, baseline=1.0)
    with pytest.raises(ValueError, match="directions must be"):
        make_rack(chain, directions="sobol")


def test_perturbations_depend_on_seed_step_lane_only():
    chain = gain_chain(3)
    a = make_rack(chain, lanes=2, seed=1, threads=1)
    b = make_rack(chain, lanes=2, seed=1, threads=3)
    c = make_rack(chain, lanes=2, seed=2)
    assert a.perturbation(1, 0) == b.perturbation(1, 0)
    signs = np.array([make_rack(chain, lanes=1, seed=s).perturbation(0, 0) for s in range(200)])
    assert set(np.unique(signs)) == {-1.0, 1.0}
    assert abs(signs.mean()) < 0.15  # Rademacher: balanced
    assert a.perturbation(0, 0) != c.perturbation(0, 0) or a.perturbation(1, 0) != c.perturbation(1, 0)
    a.step = 5
    assert a.step == 5


def test_replay_is_exact_while_history_covers_the_clip():
    """Replay from the lane's start reproduces the centre's state: its one-sided estimate equals
    the snapshot strategy's exactly on fxgrad's Compressor."""
    comp = fxgrad.load("fxgrad:Compressor", sample_rate=SR, block_size=256, channels=1)
    chain = fxgrad.Chain([comp])
    frames = noise(2, 5 * N, seed=21)
    racks = [
        make_rack(chain, lanes=2, strategy=s, estimator="one-sided", replay_samples=8 * N, seed=4)
        for s in ("replay", "snapshot")
    ]
    theta = np.full((2, chain.num_parameters), 0.45, np.float32)
    for f in range(5):
        frame = np.ascontiguousarray(frames[:, :, f * N : (f + 1) * N])
        grads = []
        for rack in racks:
            y = rack.forward(theta, frame)
            grads.append(rack.vjp(np.ascontiguousarray(frame - y)))
        np.testing.assert_array_equal(grads[0], grads[1])


def test_reset_lanes_restarts_only_the_masked_lanes():
    comp = fxgrad.load(CALF_COMPRESSOR, sample_rate=SR, block_size=256, channels=1)
    chain = fxgrad.Chain([comp], learned=["threshold", "ratio"])
    rack = make_rack(chain, lanes=2)
    theta = np.full((2, 2), 0.3, np.float32)
    clip = np.repeat(noise(1, 3 * N, seed=30), 2, axis=0)
    first = [rack.forward(theta, np.ascontiguousarray(clip[:, :, f * N : (f + 1) * N]), False) for f in range(3)]
    rack.reset_lanes(np.array([True, False]))
    again = rack.forward(theta, np.ascontiguousarray(clip[:, :, :N]), False)
    np.testing.assert_array_equal(again[0], first[0][0])  # lane 0 starts over
    assert not np.array_equal(again[1], first[0][1])  # lane 1 kept its state


def test_rack_rejects_bad_input_with_clear_errors():
    chain = gain_chain(2)
    rack = make_rack(chain, lanes=3)
    theta = np.full((3, 2), 0.5, np.float32)
    x = noise(3)
    with pytest.raises(ValueError, match="vjp.*forward"):
        rack.vjp(x)
    with pytest.raises(TypeError, match="float32"):
        rack.forward(theta.astype(np.float64), x)
    with pytest.raises(ValueError, match=r"theta must be shaped \(lanes, parameters\) = \(3, 2\)"):
        rack.forward(np.full((3, 3), 0.5, np.float32), x)
    with pytest.raises(ValueError, match=r"\(lanes, parameters\)"):
        rack.forward(np.full((2, 2), 0.5, np.float32), x)
    with pytest.raises(ValueError, match=r"x must be shaped"):
        rack.forward(theta, noise(3, channels=2))
    with pytest.raises(ValueError, match="multiple of the chain's block size"):
        rack.forward(theta, noise(3, 1000))
    nan_theta = theta.copy()
    nan_theta[1, 0] = np.nan
    with pytest.raises(ValueError, match="lane 1, parameter 0"):
        rack.forward(nan_theta, x)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        rack.forward(theta + 1.0, x)
    bad_audio = x.copy()
    bad_audio[2, 0, 5] = np.inf
    with pytest.raises(ValueError, match="NaN or Inf"):
        rack.forward(theta, bad_audio)
    rack.forward(theta, x)
    with pytest.raises(ValueError, match="grad_y must be shaped"):
        rack.vjp(noise(3, 2 * N))
    nan_grad = x.copy()
    nan_grad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="upstream gradient contains NaN"):
        rack.vjp(nan_grad)
    with pytest.raises(ValueError, match="one-sided"):
        make_rack(chain, estimator="one-sided", strategy="lockstep")
    calf = fxgrad.Chain([fxgrad.load(CALF_COMPRESSOR, sample_rate=SR, block_size=256, channels=1)])
    with pytest.raises(ValueError, match="snapshot.*Calf Compressor"):
        make_rack(calf, strategy="snapshot")
    with pytest.raises(ValueError, match="strategy must be"):
        make_rack(chain, strategy="bogus")
    with pytest.raises(ValueError, match="eps"):
        make_rack(chain, eps=0.0)
    with pytest.raises(ValueError, match="mask"):
        rack.reset_lanes(np.ones(2, bool))


def test_plugin_layer_trains_through_autograd_and_guards_its_state():
    layer = PluginLayer(fxgrad.load("fxgrad:Gain", sample_rate=SR, block_size=256, channels=1), lanes=2, seed=1)
    assert layer.num_parameters == 1
    logits = torch.zeros(2, 1, requires_grad=True)
    x = torch.from_numpy(noise(2))
    y = layer(x, torch.sigmoid(logits))
    assert y.shape == x.shape and y.dtype == torch.float32
    torch.testing.assert_close(y, x * 10 ** ((-24 + 48 * 0.5) / 20), rtol=1e-6, atol=1e-7)
    (y**2).sum().backward()
    assert logits.grad is not None and torch.all(logits.grad > 0)  # louder gain, larger energy

    y1 = layer(x, torch.sigmoid(logits))
    layer(x, torch.sigmoid(logits))
    with pytest.raises(RuntimeError, match="backward must run before"):
        y1.sum().backward()
    with pytest.raises(ValueError, match="NaN"):
        layer(x, torch.full((2, 1), float("nan")))
    with pytest.raises(ValueError, match=r"\(lanes, channels, samples\)"):
        layer(x[0], torch.sigmoid(logits))
    with torch.no_grad():  # no gradient wanted: nothing is recorded, nothing fails
        layer(x, torch.sigmoid(logits))


@pytest.mark.slow
def test_adam_fits_a_compressor_threshold_then_four_eq_gains():
    # Four parameters at once on ZamEQ2's band gains: each shows in its own band, so the problem
    # is well conditioned and SPSA recovers all four from any seed (max error ~0.002 over seeds
    # 0-4). A compressor's ratio and attack are not: above ~8:1 the ratio trades off against the
    # threshold, its gradient is ~50x weaker than the makeup gain's, and SPSA's estimate of it
    # carries the strong parameters' gradients as noise; FD (exact per-parameter differences)
    # recovers them, SPSA within a test's budget does not.
    torch.manual_seed(0)
    one = fit_static_parameters(ZAMCOMP, ["thr"], [0.7], steps=400, perturbations=1)
    assert abs(one[0] - 0.7) <= 0.02, one
    hidden = [0.65, 0.8, 0.75, 0.6]  # -4.5, +6, +2.5 and -8 dB
    four = fit_static_parameters(ZAMEQ2, ["boost1", "boost2", "boostl", "boosth"], hidden, steps=600, perturbations=2)
    assert np.max(np.abs(four - np.array(hidden))) <= 0.01, four
