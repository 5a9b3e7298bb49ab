"""fxgrad.render_batch: K renders in parallel, each bit for bit what a fresh copy of the chain
renders sequentially, on fxgrad's own plugins and on third-party VST3 and LV2 plugins, in both
calling forms and for any thread count."""

import time
from pathlib import Path

import numpy as np
import pytest

import fxgrad
from fxgrad.host.batch import renderer

ZAM_EQ2_VST3 = Path("/usr/lib/vst3/ZamEQ2.vst3")
ZAM_COMP_VST3 = Path("/usr/lib/vst3/ZamComp.vst3")
CALF_COMPRESSOR = "http://calf.sourceforge.net/plugins/Compressor"
CAPS_AMP = "/usr/lib/ladspa/caps.so#AmpVTS"
ZAM_TUBE_VST3 = Path("/usr/lib/vst3/ZamTube.vst3")
LSP_COMP_VST2 = "/usr/lib/vst/lsp-plugins/compressor-stereo.so"


def own(effect, fmt, **options):
    try:
        return fxgrad.load(str(fxgrad.own_plugin_path(effect, fmt)), **options)
    except FileNotFoundError as error:
        pytest.skip(str(error))


def third_party(identifier, **options):
    if identifier.startswith("/") and not Path(identifier.partition("#")[0]).exists():
        pytest.skip(f"{identifier} is not installed")
    return fxgrad.load(identifier, **options)


def chains():
    options = dict(sample_rate=22050, block_size=512, channels=2)
    return {
        "own LV2 Compressor -> ParametricEQ": lambda: fxgrad.Chain(
            [own("Compressor", "lv2", **options), own("ParametricEQ", "lv2", **options)],
            learned=["0.threshold_db", "0.release_ms", "1.peak1_gain_db", "1.high_shelf_gain_db"],
            pinned={"0.ratio": 4.0},
        ),
        "own VST3 Compressor": lambda: fxgrad.Chain(
            [own("Compressor", "vst3", **options)], learned=["threshold_db", "attack_ms"], pinned={"knee_db": 3.0}
        ),
        "ZamEQ2 -> ZamComp (VST3)": lambda: dpf_chain(
            [third_party(str(path), **{**options, "sample_rate": 44100}) for path in (ZAM_EQ2_VST3, ZAM_COMP_VST3)]
        ),
        "Calf Compressor (LV2)": lambda: fxgrad.Chain(
            [third_party(CALF_COMPRESSOR, **options)], learned=["threshold", "ratio", "release"], pinned={"bypass": 0}
        ),
        # These keep DSP state through deactivation (LADSPA's activate(), a VST2 or VST3 off and on
        # again): a copy that rendered before must still sound fresh.
        "caps AmpVTS (LADSPA)": lambda: fxgrad.Chain(
            [third_party(CAPS_AMP, **{**options, "sample_rate": 44100})], learned=["gain", "bright", "bass", "treble"]
        ),
        "ZamTube (VST3)": lambda: dpf_chain([third_party(str(ZAM_TUBE_VST3), **{**options, "sample_rate": 44100})]),
        "LSP Compressor Stereo (VST2)": lambda: fxgrad.Chain(
            [third_party(LSP_COMP_VST2, **options)], learned=["al", "at", "rt", "cr"]
        ),
    }


# DPF's VST3 wrapper shows its host-side values (buffer size, sample rate, program) and its
# meters as parameters; they are not settings.
DPF_INFORMATION = {"buffer_size", "sample_rate", "current_program", "gain_reduction", "output_level", "peaks_on"}


def dpf_chain(plugins):
    return fxgrad.Chain(
        plugins,
        learned=[
            f"{k}.{p.id}"
            for k, plugin in enumerate(plugins)
            for p in plugin.parameters
            if p.automatable and not p.is_bypass and p.id not in DPF_INFORMATION
        ],
    )


def program(chain, k, seed=0):
    return np.random.default_rng([seed, k]).uniform(0.05, 0.95, chain.num_parameters).astype(np.float32)


def sequential(chain, theta, audio):
    """What a fresh copy of the chain renders for one setting. JUCE's VST3 host hands the
    values a new instance was given to its edit controller from the message thread, some time
    later, and DPF's plugins render differently while that is pending: a fresh VST3 copy waits
    for it (render_batch's copies restore their state before each render, which does it at once)."""
    fresh = chain.clone()
    if any(p.format == "VST3" for p in fresh.plugins):
        time.sleep(0.1)
    fresh.set_learned(theta)
    _ALIVE.append(fresh)
    return fresh.process(audio)


# Deleting a VST3 instance off JUCE's message thread while its parameter timer may fire can
# crash the message thread (seen with DPF's plugins); the copies live until the host shuts down.
_ALIVE = []


@pytest.mark.parametrize("name", list(chains()))
def test_render_batch_equals_fresh_sequential_renders_bit_for_bit(name, noise):
    chain = chains()[name]()
    rate = int(chain.sample_rate)
    audio = noise(channels=2, seconds=0.4, level_db=-6, sample_rate=rate)
    thetas = np.stack([program(chain, k) for k in range(3)])

    # K settings over one clip, twice (the second call reuses the first call's instances).
    first = fxgrad.render_batch(chain, thetas, audio, threads=2)
    assert first.shape == (3, 2, audio.shape[1]) and first.dtype == np.float32
    made = renderer(chain, 2).instances
    again = fxgrad.render_batch(chain, thetas[::-1].copy(), audio, threads=2)
    assert renderer(chain, 2).instances == made == 2
    for k in range(3):
        expected = sequential(chain, thetas[k], audio)
        assert np.array_equal(first[k], expected), f"setting {k} differs"
        assert np.array_equal(again[2 - k], expected)
    assert not (np.array_equal(first[0], first[1]) and np.array_equal(first[1], first[2]))  # the settings matter

    # K clips, one setting each and one setting shared; one thread gives the same.
    clips = np.stack([noise(channels=2, seconds=0.4, level_db=-6 - 6 * k, seed=k, sample_rate=rate) for k in range(3)])
    per_clip = fxgrad.render_batch(chain, thetas, clips, threads=1)
    shared = fxgrad.render_batch(chain, thetas[1], clips, threads=2)
    for k in range(3):
        assert np.array_equal(per_clip[k], sequential(chain, thetas[k], clips[k]))
        assert np.array_equal(shared[k], sequential(chain, thetas[1], clips[k]))


def test_render_batch_follows_the_chains_current_preset_and_leaves_its_state(noise):
    chain = chains()["own LV2 Compressor -> ParametricEQ"]()
    audio = noise(channels=2, seconds=0.3, sample_rate=22050)
    theta = program(chain, 0)
    before = fxgrad.render_batch(chain, theta[None], audio)[0]
    chain.plugins[1].set("peak2_gain_db", 9.0)  # not learned: part of the preset every render starts from
    after = fxgrad.render_batch(chain, theta[None], audio)[0]
    assert not np.array_equal(before, after)
    assert np.array_equal(after, sequential(chain, theta, audio))
    # The chain itself rendered nothing: its own output is a fresh instance's.
    chain.set_learned(theta)
    assert np.array_equal(chain.process(audio), after)


def test_render_batch_rejects_bad_input_clearly(noise):
    chain = chains()["own VST3 Compressor"]()
    audio = noise(channels=2, seconds=0.1, sample_rate=22050)
    good = np.full((2, chain.num_parameters), 0.5, np.float32)
    with pytest.raises(ValueError, match="theta must lie in"):
        fxgrad.render_batch(chain, np.array([[0.5, 1.5]], np.float32), audio)
    with pytest.raises(ValueError, match="theta must be shaped"):
        fxgrad.render_batch(chain, np.zeros((2, 3), np.float32), audio)
    with pytest.raises(ValueError, match="audio must be shaped"):
        fxgrad.render_batch(chain, good, audio[:1])
    with pytest.raises(ValueError, match="3 clips"):
        fxgrad.render_batch(chain, good, np.stack([audio] * 3))
    with pytest.raises(TypeError, match="float32"):
        fxgrad.render_batch(chain, good, audio.astype(np.float64))
    bad = audio.copy()
    bad[1, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fxgrad.render_batch(chain, good, bad)
    with pytest.raises(TypeError, match="Chain"):
        fxgrad.render_batch(chain.plugins[0], good, audio)
    assert fxgrad.render_batch(chain, good, audio).shape == (2, 2, audio.shape[1])  # still usable
