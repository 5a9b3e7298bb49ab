"""fxgrad's own reference effects (plugins/), tested through fxgrad's host in both plugin formats.

The DSP behind each check is described in plugins/README.md. Every test skips (naming where it
looked) when the bundles are not built.
"""

import json
import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fxgrad

EFFECTS = ("Gain", "Compressor", "MultibandCompressor", "ParametricEQ", "Limiter", "TubeStage")
FORMATS = ("vst3", "lv2")
BANDS = ("low", "mid", "high")
EQ_BANDS = ("low_shelf", "peak1", "peak2", "peak3", "high_shelf")
PARAMETER_IDS = {
    "Gain": ["gain_db"],
    "Compressor": ["threshold_db", "ratio", "knee_db", "attack_ms", "release_ms", "makeup_db"],
    "MultibandCompressor": ["xover_low_hz", "xover_high_hz"]
    + [f"{p}_{b}" for b in BANDS for p in ("threshold_db", "ratio", "attack_ms", "release_ms", "makeup_db")],
    "ParametricEQ": [f"{band}_{p}" for band in EQ_BANDS for p in ("gain_db", "freq_hz", "q")],
    "Limiter": ["input_gain_db", "ceiling_db", "release_ms"],
    "TubeStage": ["drive_db", "bias", "bias_follow", "recovery_ms", "tone", "output_db"],
}
SR = 48000


def load(effect, fmt="vst3", sample_rate=SR, block_size=1024, channels=2):
    try:
        path = fxgrad.own_plugin_path(effect, fmt)
    except FileNotFoundError as error:
        pytest.skip(str(error))
    return fxgrad.load(str(path), sample_rate=sample_rate, block_size=block_size, channels=channels)


def effect_parameters(plugin):
    """The effect's own parameters: not the VST3 wrapper's Bypass nor the LV2 'enabled' port."""
    return [p for p in plugin.parameters if not p.is_bypass]


def noise(samples, channels=2, amplitude=0.3, seed=0):
    return (np.random.default_rng(seed).standard_normal((channels, samples)) * amplitude).astype(np.float32)


def configure(plugin, settings):
    for name, value in settings.items():
        plugin.set(name, float(value))


def random_settings(plugin, seed, low=0.15, high=0.85):
    """Plain values inside each range (geometric for the log-like ones), away from the extremes."""
    rng = np.random.default_rng(seed)
    settings = {}
    for p in effect_parameters(plugin):
        u = rng.uniform(low, high)
        if p.minimum > 0 and p.maximum / p.minimum > 20:
            settings[p.id] = float(np.float32(p.minimum * (p.maximum / p.minimum) ** u))
        else:
            settings[p.id] = float(np.float32(p.minimum + (p.maximum - p.minimum) * u))
    return settings


def square(amplitude, samples, sample_rate=SR, freq=100.0):
    """A square wave: |x| is constant, so a peak detector sees a steady level."""
    t = np.arange(samples)
    return np.repeat(
        (amplitude * np.where(np.sin(2 * np.pi * freq * t / sample_rate) >= 0, 1.0, -1.0)).astype(np.float32)[None],
        2,
        axis=0,
    )


def sine_gain_db(plugin, freq, sample_rate=SR, samples=SR):
    """Steady-state gain at `freq`, from a least-squares fit of the output's second half."""
    t = np.arange(samples)
    x = (0.1 * np.sin(2 * np.pi * freq * t / sample_rate)).astype(np.float32)
    y = plugin.process(np.stack([x, x]))[0].astype(np.float64)
    tail = t[samples // 2 :]
    basis = np.stack([np.sin(2 * np.pi * freq * tail / sample_rate), np.cos(2 * np.pi * freq * tail / sample_rate)], 1)
    coef = np.linalg.lstsq(basis, y[samples // 2 :], rcond=None)[0]
    return 20 * np.log10(np.hypot(*coef) / 0.1)


# --- loading, identity, formats ------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("effect", EFFECTS)
def test_loads_with_its_parameters(effect, fmt):
    plugin = load(effect, fmt)
    assert plugin.vendor == "fxgrad"
    assert plugin.name == f"Fxgrad{effect}"
    assert plugin.format.lower() == fmt
    assert sorted(p.id for p in effect_parameters(plugin)) == sorted(PARAMETER_IDS[effect])
    y = plugin.process(noise(4096))
    assert y.shape == (2, 4096) and np.all(np.isfinite(y))


@pytest.mark.parametrize("effect", EFFECTS)
def test_formats_agree(effect):
    vst3, lv2 = load(effect, "vst3"), load(effect, "lv2")
    x = noise(SR // 2)
    for p in effect_parameters(vst3):
        q = lv2.parameters[lv2.parameter_index(p.id)]
        assert (q.minimum, q.maximum) == pytest.approx((p.minimum, p.maximum), rel=1e-6)
        assert q.default == pytest.approx(p.default, rel=1e-5, abs=1e-6)
    assert np.array_equal(vst3.process(x), lv2.process(x)), "VST3 and LV2 differ at default settings"

    for seed in range(3):
        settings = random_settings(vst3, seed)
        vst3, lv2 = load(effect, "vst3"), load(effect, "lv2")
        configure(vst3, settings), configure(lv2, settings)
        np.testing.assert_allclose(vst3.process(x), lv2.process(x), rtol=0, atol=1e-6, err_msg=str(settings))


# --- the effects' DSP ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_gain_is_exact(fmt):
    plugin = load("Gain", fmt)
    x = noise(2048, amplitude=0.5)
    # Values whose normalised position (dB + 24) / 48 is exact in float: the gain must be too.
    for db in (-24.0, -18.0, -6.0, 0.0, 6.0, 12.0, 24.0):
        plugin.set("gain_db", db)
        assert np.array_equal(plugin.process(x), x * np.float32(10 ** (plugin.get("gain_db") / 20))), db
    for db in (-7.3, 3.7, 17.25):
        plugin.set("gain_db", db)
        np.testing.assert_allclose(plugin.process(x), x * np.float32(10 ** (db / 20)), rtol=1e-6, atol=0)


def compressor_curve_db(level, threshold, ratio, knee):
    """Giannoulis et al. (2012) soft-knee static curve: output level (dB) for an input level."""
    if 2 * (level - threshold) < -knee:
        return level
    if knee > 0 and 2 * abs(level - threshold) <= knee:
        return level + (1 / ratio - 1) * (level - threshold + knee / 2) ** 2 / (2 * knee)
    return threshold + (level - threshold) / ratio


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "threshold,ratio,knee,makeup", [(-20.0, 4.0, 6.0, 0.0), (-30.0, 2.0, 0.0, 3.0), (-10.0, 10.0, 12.0, 6.0)]
)
def test_compressor_static_curve(fmt, threshold, ratio, knee, makeup):
    plugin = load("Compressor", fmt)
    settings = dict(threshold_db=threshold, ratio=ratio, knee_db=knee, makeup_db=makeup, attack_ms=5.0, release_ms=50.0)
    for level in (
        -45.0,
        threshold - knee / 2 - 1,
        threshold - knee / 4,
        threshold,
        threshold + knee / 4,
        threshold + 8,
        -1.0,
    ):
        plugin.reset()
        configure(plugin, settings)
        got = {k: plugin.get(k) for k in settings}
        amplitude = 10 ** (level / 20)
        y = plugin.process(square(amplitude, SR))
        gain_db = 20 * np.log10(abs(float(y[0, -1])) / np.float32(amplitude))
        want = compressor_curve_db(level, got["threshold_db"], got["ratio"], got["knee_db"]) - level + got["makeup_db"]
        assert gain_db == pytest.approx(want, abs=0.1), (level, gain_db, want)


def crossing_ms(gain_db, start_db, end_db, sample_rate=SR):
    """Time until the gain has covered 1 - 1/e of the step from start_db to end_db."""
    target = start_db + (1 - 1 / math.e) * (end_db - start_db)
    passed = gain_db <= target if end_db < start_db else gain_db >= target
    assert passed.any(), "the step never reached 1 - 1/e of its size"
    return 1000.0 * int(np.argmax(passed)) / sample_rate


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("attack,release", [(2.0, 40.0), (20.0, 300.0)])
def test_compressor_time_constants(fmt, attack, release):
    """Hard knee, threshold -40 dB, ratio 4: a -30 dB level asks for 7.5 dB of gain reduction, a
    -10 dB level for 22.5 dB. Attack and release are the times to cover 1 - 1/e of that step."""
    plugin = load("Compressor", fmt)
    configure(
        plugin, dict(threshold_db=-40.0, ratio=4.0, knee_db=0.0, makeup_db=0.0, attack_ms=attack, release_ms=release)
    )
    n = int(SR * 5 * release / 1000)
    low, high = 10 ** (-30 / 20), 10 ** (-10 / 20)
    x = np.concatenate([square(low, n), square(high, n), square(low, n)], axis=1)
    y = plugin.process(x)
    gain_db = 20 * np.log10(np.abs(y[0].astype(np.float64)) / np.abs(x[0]))
    assert gain_db[n - 1] == pytest.approx(-7.5, abs=0.01) and gain_db[2 * n - 1] == pytest.approx(-22.5, abs=0.01)
    assert crossing_ms(gain_db[n : 2 * n], -7.5, -22.5) == pytest.approx(attack, rel=0.1)
    assert crossing_ms(gain_db[2 * n :], -22.5, -7.5) == pytest.approx(release, rel=0.1)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "sample_rate,xover_low,xover_high", [(44100, 200.0, 3000.0), (96000, 80.0, 9000.0), (22050, 400.0, 8000.0)]
)
def test_multiband_neutral_is_flat(fmt, sample_rate, xover_low, xover_high):
    plugin = load("MultibandCompressor", fmt, sample_rate=sample_rate)
    settings = dict(xover_low_hz=xover_low, xover_high_hz=xover_high)
    for band in BANDS:
        settings.update({f"ratio_{band}": 1.0, f"makeup_db_{band}": 0.0, f"threshold_db_{band}": -60.0})
    configure(plugin, settings)
    x = np.zeros((2, 1 << 16), np.float32)
    x[:, 0] = 0.5
    y = plugin.process(x)
    magnitude_db = 20 * np.log10(np.abs(np.fft.rfft(y[0].astype(np.float64))) / 0.5)
    assert np.max(np.abs(magnitude_db)) < 0.1
    # The crossovers' allpass response is kept (real group delay): the impulse is smeared.
    assert abs(float(y[0, 0])) < 0.45


@pytest.mark.parametrize("fmt", FORMATS)
def test_eq_gain_at_band_centres(fmt):
    plugin = load("ParametricEQ", fmt)
    for band, freq, gain in (("peak1", 300.0, 9.0), ("peak2", 1500.0, -12.0), ("peak3", 7000.0, 18.0)):
        plugin.reset()
        configure(plugin, {f"{b}_gain_db": 0.0 for b in EQ_BANDS})
        configure(plugin, {f"{band}_gain_db": gain, f"{band}_freq_hz": freq, f"{band}_q": 2.0})
        assert sine_gain_db(plugin, plugin.get(f"{band}_freq_hz")) == pytest.approx(
            plugin.get(f"{band}_gain_db"), abs=0.2
        )

    # A shelf's full gain lies at DC (low shelf) and at Nyquist (high shelf).
    for band, gain, signal in (
        ("low_shelf", -9.0, np.full(SR, 0.1, np.float32)),
        ("high_shelf", 7.5, np.where(np.arange(SR) % 2 == 0, 0.1, -0.1).astype(np.float32)),
    ):
        plugin.reset()
        configure(plugin, {f"{b}_gain_db": 0.0 for b in EQ_BANDS})
        plugin.set(f"{band}_gain_db", gain)
        y = plugin.process(np.stack([signal, signal]))
        assert 20 * np.log10(abs(float(y[0, -1])) / 0.1) == pytest.approx(gain, abs=0.2)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("sample_rate", [22050, 44100, 96000])
def test_limiter_ceiling_and_latency(fmt, sample_rate):
    plugin = load("Limiter", fmt, sample_rate=sample_rate)
    lookahead = int(0.005 * sample_rate + 0.5)
    assert plugin.latency_samples == lookahead

    # Measured latency: an impulse below the ceiling comes out unchanged, lookahead samples later.
    x = np.zeros((2, 4 * lookahead), np.float32)
    x[:, 10] = 0.5
    y = plugin.process(x)
    assert int(np.argmax(np.abs(y[0]))) - 10 == plugin.latency_samples
    assert float(y[0].max()) == pytest.approx(0.5, abs=1e-6)

    for input_gain, ceiling, release in ((12.0, -3.0, 20.0), (24.0, -12.0, 1.0), (0.0, -0.5, 500.0)):
        plugin.reset()
        configure(plugin, dict(input_gain_db=input_gain, ceiling_db=ceiling, release_ms=release))
        x = noise(sample_rate, amplitude=0.5, seed=3)
        x[:, 1000:1003] = 1.0
        x[:, 5000] = -1.0
        peak_db = 20 * np.log10(float(np.max(np.abs(plugin.process(x)))))
        assert peak_db <= plugin.get("ceiling_db") + 0.1


# --- robustness and state --------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("effect", EFFECTS)
def test_parameter_extremes_give_finite_output(effect, fmt):
    plugin = load(effect, fmt, sample_rate=44100)
    params = effect_parameters(plugin)
    lows = {p.id: p.minimum for p in params}
    highs = {p.id: p.maximum for p in params}
    defaults = {p.id: p.default for p in params}
    rng = np.random.default_rng(0)
    combos = [lows, highs] + [{**defaults, p.id: v} for p in params for v in (p.minimum, p.maximum)]
    combos += [{k: (lows if rng.random() < 0.5 else highs)[k] for k in lows} for _ in range(8)]
    signals = [
        np.zeros((2, 2048), np.float32),
        noise(2048, amplitude=1e-30),
        noise(2048, amplitude=1.0),
        noise(2048, amplitude=8.0),
    ]
    for settings in combos:
        plugin.reset()
        configure(plugin, settings)
        for x in signals:
            assert np.all(np.isfinite(plugin.process(x))), settings


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("effect", EFFECTS)
def test_state_round_trip(effect, fmt):
    source = load(effect, fmt)
    settings = random_settings(source, seed=7)
    configure(source, settings)
    source.process(noise(3000))
    blob = source.state

    target = load(effect, fmt)
    target.load_state(blob)
    for name in settings:
        assert target.get(name) == pytest.approx(source.get(name), rel=1e-6, abs=1e-6), name
    source.reset(), target.reset()
    x = noise(10000, seed=1)
    assert np.array_equal(source.process(x), target.process(x))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("effect", EFFECTS)
def test_reset_clears_dsp_state(effect, fmt):
    plugin = load(effect, fmt)
    configure(plugin, random_settings(plugin, seed=3))
    x = noise(12000, seed=2)
    first = plugin.process(x)
    plugin.process(noise(5000, amplitude=1.0, seed=9))
    plugin.reset()
    assert np.array_equal(plugin.process(x), first)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("effect", EFFECTS)
def test_block_size_does_not_change_output(effect, fmt):
    """Parameters apply per block without smoothing and every effect (the Limiter's lookahead
    included) runs sample by sample, so any block size gives the same output, bit for bit."""
    x = noise(6000, seed=4)
    outputs = []
    for block_size in (1, 37, 1024):
        plugin = load(effect, fmt, block_size=block_size)
        configure(plugin, random_settings(plugin, seed=5))
        outputs.append(plugin.process(x))
    assert np.array_equal(outputs[0], outputs[2]) and np.array_equal(outputs[1], outputs[2])


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("effect", EFFECTS)
def test_snapshot_restore_continues_bit_identically(effect, fmt):
    """A state taken mid-stream carries the DSP state: an instance that restores it (whatever it
    did before) continues exactly like the one that took it."""
    head, tail = noise(7000, seed=10), noise(9000, seed=11)
    centre = load(effect, fmt)
    configure(centre, random_settings(centre, seed=12))
    centre.process(head)
    snapshot = centre.state

    other = load(effect, fmt)
    configure(other, random_settings(other, seed=13))
    other.process(noise(5000, amplitude=0.8, seed=14))
    other.load_state(snapshot)

    expected = centre.process(tail)
    assert np.array_equal(other.process(tail), expected)
    # and again from the same snapshot: restoring does not depend on the instance's history
    other.load_state(snapshot)
    assert np.array_equal(other.process(tail), expected)


# --- an independent host ---------------------------------------------------------------------------

DAWDREAMER_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import dawdreamer as daw
    args = json.loads(sys.argv[1])
    x = np.load(args["input"])
    engine = daw.RenderEngine(args["sample_rate"], args["block_size"])
    plugin = engine.make_plugin_processor("fx", args["path"])
    names = {d["name"]: d["index"] for d in plugin.get_parameters_description()}
    for name, value in args["normalized"].items():
        plugin.set_parameter(names[name], value)
    engine.load_graph([(engine.make_playback_processor("input", x), []), (plugin, ["input"])])
    engine.render(x.shape[1] / args["sample_rate"])
    np.save(args["output"], engine.get_audio())
""")


def dawdreamer_available():
    return subprocess.run([sys.executable, "-c", "import dawdreamer"], capture_output=True).returncode == 0


@pytest.mark.skipif(not dawdreamer_available(), reason="dawdreamer is not installed")
@pytest.mark.parametrize("effect", EFFECTS)
def test_dawdreamer_gives_the_same_output(effect, tmp_path):
    """DawDreamer (which bundles its own JUCE, hence the separate process) loads the VST3 and
    renders the same audio as fxgrad's host for the same normalised settings."""
    block_size = 512
    plugin = load(effect, "vst3", block_size=block_size)
    rng = np.random.default_rng(21)
    normalized = {p.id: float(np.float32(rng.uniform(0.1, 0.9))) for p in effect_parameters(plugin)}
    for name, value in normalized.items():
        plugin.set(name, value, normalized=True)
    x = noise(block_size * 60, seed=22)
    expected = plugin.process(x)

    np.save(tmp_path / "input.npy", x)
    args = dict(
        path=str(fxgrad.own_plugin_path(effect, "vst3")),
        sample_rate=SR,
        block_size=block_size,
        input=str(tmp_path / "input.npy"),
        output=str(tmp_path / "output.npy"),
        normalized={plugin.parameters[plugin.parameter_index(k)].name: v for k, v in normalized.items()},
    )
    run = subprocess.run(
        [sys.executable, "-c", DAWDREAMER_SCRIPT, json.dumps(args)], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    rendered = np.load(tmp_path / "output.npy")
    np.testing.assert_allclose(rendered[:, : x.shape[1]], expected, rtol=0, atol=1e-6)
