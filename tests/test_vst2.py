"""VST2 plugins (Debian's linux-vst builds, hosted through the FST headers): the same output as
the VST3 and LV2 builds of the same plugin, state, scanning, and training through a PluginLayer."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from _learning import fit_static_parameters

import fxgrad

VST2 = Path("/usr/lib/vst")
ZAMCOMP_VST2 = VST2 / "ZamComp-vst.so"
LSP_COMPRESSOR = VST2 / "lsp-plugins" / "compressor-stereo.so"
DRAGONFLY_ROOM = Path("/usr/lib/lxvst/DragonflyRoomReverb-vst.so")

pytestmark = pytest.mark.skipif(not ZAMCOMP_VST2.exists(), reason="zam-plugins' VST2 builds are not installed")


def loaded(identifier, settings, **options):
    plugin = fxgrad.load(identifier, **options)
    for name, value in settings.items():
        plugin.set(name, value)
    return plugin


# The same plain settings in each build's names: VST2/VST3 parameters are named by the plugin's
# display names, LV2 ones by their port symbols. The values lie where the builds' normalised
# coordinates are exact binary fractions of the ranges (-40 of [-80, 0] is 0.5), so that each
# build's conversion gives the DSP the same float.
SAME_SETTINGS = {
    "ZamComp": (
        {"threshold": -40.0, "ratio": 20.0, "makeup": 7.5},
        "urn:zamaudio:ZamComp",
        {"thr": -40.0, "rat": 20.0, "mak": 7.5},
    ),
    "ZamEQ2": (
        {"boost_cut_1": 2.5, "frequency_1": 7010.0, "master_gain": -6.0},
        "urn:zamaudio:ZamEQ2",
        {"boost1": 2.5, "f1": 7010.0, "master": -6.0},
    ),
    "ZamGate": ({"threshold": -30.0, "makeup": 15.0}, "urn:zamaudio:ZamGate", {"thr": -30.0, "mak": 15.0}),
}


@pytest.mark.parametrize("name", sorted(SAME_SETTINGS))
def test_vst2_vst3_and_lv2_builds_give_identical_output(name, noise):
    settings, uri, lv2_settings = SAME_SETTINGS[name]
    x = noise(1, 1.0, -10.0)
    vst2 = loaded(VST2 / f"{name}-vst.so", settings, channels=1)
    assert (vst2.format, vst2.name) == ("VST2", name)
    for key, value in settings.items():
        assert vst2.get(key) == value, key  # plain values through the plugin's display
    y = vst2.process(x)
    assert not np.array_equal(y, x)
    assert np.array_equal(y, loaded(f"/usr/lib/vst3/{name}.vst3", settings, channels=1).process(x))
    assert np.array_equal(y, loaded(uri, lv2_settings, channels=1).process(x))


def test_vst2_parameters_have_plain_ranges_units_and_defaults():
    comp = fxgrad.load(ZAMCOMP_VST2, channels=1)
    threshold = comp.parameters[comp.parameter_index("threshold")]
    assert (threshold.minimum, threshold.maximum, threshold.default, threshold.unit) == (-80.0, 0.0, 0.0, "dB")
    comp.set("threshold", -40.0)
    assert comp.get("threshold", normalized=True) == 0.5
    comp.set("threshold", 0.25, normalized=True)
    assert comp.get("threshold") == -60.0
    with pytest.raises(ValueError, match=r"outside its range \[-80, 0\] dB"):
        comp.set("threshold", 10.0)
    assert comp.parameters[comp.parameter_index("attack")].default == 10.0  # the plugin's own value at load


def db(a):
    return 10 * np.log10(np.mean(np.square(a, dtype=np.float64)))


@pytest.mark.parametrize(
    "path, settings, deterministic",
    [
        (LSP_COMPRESSOR, {"sla": 5.0, "scr": 100.0}, True),
        # Dragonfly's reverbs modulate their delay lines randomly: two instances at the same settings
        # differ after a few hundred samples (`fxgrad check` reports "two instances differ").
        (DRAGONFLY_ROOM, {"size": 20.0, "decay": 2.0, "dry_level": 50.0}, False),
    ],
    ids=["LSP Compressor Stereo", "Dragonfly Room Reverb"],
)
def test_lsp_and_dragonfly_vst2_load_process_and_round_trip_state(path, settings, deterministic, noise):
    if not path.exists():
        pytest.skip(f"{path} is not installed")
    x = noise(2, 1.0, -10.0)
    source = loaded(path, settings, channels=2)
    assert source.format == "VST2" and source.latency_samples >= 0
    fresh_output = fxgrad.load(path, channels=2).process(x)
    y = source.process(x)
    assert np.all(np.isfinite(y)) and not np.array_equal(y, fresh_output)  # the settings count

    restored = fxgrad.load(path, channels=2)
    restored.load_state(source.state)
    for p in source.parameters:
        assert restored.get(p.index) == pytest.approx(source.get(p.index), rel=1e-4, abs=1e-6), p.id
    y_restored, y_set = restored.process(x), loaded(path, settings, channels=2).process(x)
    if deterministic:
        assert np.array_equal(y_restored, y_set)
    else:
        assert abs(db(y_restored) - db(y_set)) < 0.2 and abs(db(y_set) - db(fresh_output)) > 1.0


def test_scan_finds_vst2_in_the_standard_folders_and_vst_path(tmp_path, monkeypatch):
    folder = tmp_path / "my-vst"
    folder.mkdir()
    shutil.copy(ZAMCOMP_VST2, folder / "CopiedComp.so")
    monkeypatch.setenv("VST_PATH", str(folder))  # read at each scan
    found = {i.identifier for i in fxgrad.scan(include_own=False) if i.format == "VST2"}
    assert {str(ZAMCOMP_VST2), str(folder / "CopiedComp.so")} <= found
    if LSP_COMPRESSOR.exists():
        assert str(LSP_COMPRESSOR) in found  # subfolders of /usr/lib/vst
    if DRAGONFLY_ROOM.exists():
        assert str(DRAGONFLY_ROOM) in found  # Debian's lxvst folder
    assert not any("lsp-plugins-vst2-" in i for i in found)  # LSP's shared core is no plugin


def test_a_vst2_in_a_plugin_layer_learns_one_parameter():
    """The learning test's pattern (tests/test_spsa.py): recover ZamComp's threshold from audio
    rendered at a hidden setting, through the VST2 build."""
    torch.manual_seed(0)
    fitted = fit_static_parameters(ZAMCOMP_VST2, ["threshold"], [0.7], steps=400, perturbations=1)
    assert abs(fitted[0] - 0.7) <= 0.03, fitted
