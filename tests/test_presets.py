"""Presets a DAW opens: .vstpreset files for VST3 (fxgrad's own and ZamEQ2) and LV2 preset
bundles (fxgrad's own and ZamComp), written from a plugin's state, read back by lilv (lv2info
lists them) and loaded into a fresh instance that then renders bit for bit the same."""

import os
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

import fxgrad
from fxgrad.io.presets import (
    PresetError,
    load_preset,
    read_vstpreset,
    vst3_class_id,
    write_lv2_preset,
    write_presets,
    write_vstpreset,
)

ZAM_EQ2_VST3 = "/usr/lib/vst3/ZamEQ2.vst3"
ZAM_COMP_LV2 = "urn:zamaudio:ZamComp"
OPTIONS = dict(sample_rate=44100, block_size=512, channels=2)


def plugin_for(kind):
    if kind.startswith("own"):
        fmt = kind.split()[1]
        try:
            return fxgrad.load(str(fxgrad.own_plugin_path("Compressor", fmt)), **OPTIONS)
        except FileNotFoundError as error:
            pytest.skip(str(error))
    if kind == "ZamEQ2 vst3":
        if not Path(ZAM_EQ2_VST3).is_dir():
            pytest.skip("zam-plugins (VST3) not installed")
        return fxgrad.load(ZAM_EQ2_VST3, **OPTIONS)
    return fxgrad.load(ZAM_COMP_LV2, **OPTIONS)


# DPF's VST3 wrapper shows host-side values (buffer size, sample rate, program) and meters as
# parameters; they are not settings.
DPF_INFORMATION = {"buffer_size", "sample_rate", "current_program", "gain_reduction", "output_level", "peaks_on"}


def adjust(plugin, seed):
    """Move every continuous setting to a random in-range value."""
    rng = np.random.default_rng(seed)
    for p in plugin.parameters:
        if p.automatable and not (p.is_bypass or p.choices or p.is_toggle or p.steps or p.id in DPF_INFORMATION):
            plugin.set(p.index, float(rng.uniform(0.2, 0.8)), normalized=True)


def rendered(plugin, audio):
    plugin.reset()
    return plugin.process(audio)


@pytest.mark.parametrize("kind", ["own vst3", "ZamEQ2 vst3", "own lv2", "ZamComp lv2"])
def test_a_preset_loaded_into_a_fresh_instance_renders_the_same(kind, tmp_path, noise):
    plugin = plugin_for(kind)
    adjust(plugin, seed=3)
    audio = noise(channels=2, seconds=0.5, level_db=-8)
    if plugin.format == "VST3":
        path = write_vstpreset(plugin, tmp_path / "mine.vstpreset", name="mine")
    else:
        path = write_lv2_preset(plugin, tmp_path / "mine.preset.lv2", name="mine")
    expected = rendered(plugin, audio)
    fresh = plugin_for(kind)
    assert not np.array_equal(rendered(fresh, audio), expected)  # the defaults sound different
    fresh = plugin_for(kind)
    load_preset(fresh, path)
    assert np.array_equal(rendered(fresh, audio), expected)
    for p in plugin.parameters:
        if p.id in DPF_INFORMATION:
            continue
        assert fresh.get(p.index, normalized=True) == pytest.approx(plugin.get(p.index, normalized=True), abs=1e-6), (
            p.id
        )


@pytest.mark.parametrize("kind", ["own vst3", "ZamEQ2 vst3"])
def test_vstpreset_layout_follows_steinbergs_format(kind, tmp_path):
    plugin = plugin_for(kind)
    path = write_vstpreset(plugin, tmp_path / "p.vstpreset")
    data = path.read_bytes()
    assert data[:4] == b"VST3" and struct.unpack_from("<i", data, 4)[0] == 1
    class_id = data[8:40].decode()
    assert class_id == vst3_class_id(plugin) and len(class_id) == 32
    (list_at,) = struct.unpack_from("<q", data, 40)
    assert data[list_at : list_at + 4] == b"List"
    (count,) = struct.unpack_from("<i", data, list_at + 4)
    ids = [data[list_at + 8 + 20 * k : list_at + 12 + 20 * k] for k in range(count)]
    assert ids[0] == b"Comp" and b"Info" in ids
    assert len(data) == list_at + 8 + 20 * count
    preset = read_vstpreset(path)
    assert b"VstPreset" in preset.meta_info.encode()
    if kind == "ZamEQ2 vst3":  # DPF's class IDs spell the plugin's code
        assert class_id == "2046504473616C633251455A00000000"


def test_a_preset_for_another_plugin_is_refused(tmp_path):
    zam = plugin_for("ZamEQ2 vst3")
    own = plugin_for("own vst3")
    path = write_vstpreset(zam, tmp_path / "zam.vstpreset")
    with pytest.raises(PresetError, match="is for the VST3 class"):
        load_preset(own, path)
    bundle = write_lv2_preset(plugin_for("ZamComp lv2"), tmp_path / "zc.preset.lv2")
    with pytest.raises(PresetError, match="applies to urn:zamaudio:ZamComp"):
        load_preset(plugin_for("own lv2"), bundle)
    (tmp_path / "junk.vstpreset").write_bytes(b"not a preset at all, just some bytes" * 3)
    with pytest.raises(PresetError, match="not a .vstpreset"):
        load_preset(own, tmp_path / "junk.vstpreset")


@pytest.mark.skipif(shutil.which("lv2info") is None, reason="lilv-utils (lv2info) not installed")
def test_lilv_finds_the_lv2_presets_of_a_chain(tmp_path):
    chain = fxgrad.Chain([plugin_for("own lv2"), plugin_for("ZamComp lv2"), plugin_for("own vst3")])
    written = write_presets(chain, tmp_path / "presets", "my match")
    assert [p.format for p in written] == ["LV2", "LV2", "VST3"]
    assert written[2].path.suffix == ".vstpreset"
    folders = [str(tmp_path / "presets"), "/usr/lib/lv2", str(fxgrad.own_plugin_path("Compressor").parent)]
    environment = {**os.environ, "LV2_PATH": os.pathsep.join(folders)}
    for preset in written[:2]:
        uri = chain.plugins[preset.plugin].identifier
        shown = subprocess.run(["lv2info", uri], capture_output=True, text=True, env=environment, timeout=60).stdout
        presets = shown.split("Presets:", 1)[1].split("Port 0:", 1)[0]
        assert "my match" in presets, presets
