"""Metadata that would mislead the default ``learned`` set or the caller (issue 26): output ports,
knobs named like switches, a VST3 host's pseudo-parameters, and values of the wrong type."""

from pathlib import Path

import pytest

import fxgrad
from fxgrad.config import Config, ConfigError

CAPS = Path("/usr/lib/ladspa/caps.so")
ZAMVERB_VST3 = Path("/usr/lib/vst3/ZamVerb.vst3")


def needs(path):
    return pytest.mark.skipif(not path.exists(), reason=f"{path} is not installed")


@needs(CAPS)
def test_a_ladspa_output_port_is_no_parameter():
    compress = fxgrad.load(f"{CAPS}#Compress", channels=1)
    assert "state (dB)" not in [p.name for p in compress.parameters]  # caps' gain-reduction meter
    compress.set("gain (dB)", 6.0)  # the ports after it still map to the right values
    assert compress.get("gain (dB)") == pytest.approx(6.0)


@needs(CAPS)
def test_a_continuous_knob_named_like_a_switch_is_learned():
    amp = fxgrad.load(f"{CAPS}#AmpVTS", channels=1)
    power = next(p for p in amp.parameters if p.id == "power")
    assert not power.is_toggle and power.steps == 0 and not power.is_bypass
    assert "0.power" in fxgrad.Chain([amp]).learned


@needs(ZAMVERB_VST3)
def test_a_vst3_host_s_pseudo_parameters_are_not_learned():
    verb = fxgrad.load(str(ZAMVERB_VST3))
    ids = {p.id: p for p in verb.parameters}
    assert "buffer_size" not in ids and "sample_rate" not in ids  # DPF's reports of the host's settings
    assert not ids["current_program"].automatable  # a preset selector
    assert list(fxgrad.Chain([verb]).learned) == ["0.master_level", "0.wet_dry"]


def test_a_value_of_the_wrong_type_is_a_clear_type_error():
    gain = fxgrad.load("fxgrad:Gain")
    with pytest.raises(TypeError, match=r"the value for 'gain_db' must be a number, got str '-10'"):
        gain.set("gain_db", "-10")
    with pytest.raises(TypeError, match="got bool"):
        gain.set("gain_db", True)
    gain.set("gain_db", -10)  # an int is a number
    assert gain.get("gain_db") == pytest.approx(-10.0)


@pytest.mark.parametrize(
    "section,values,message",
    [
        ("chain", {"block_size": 0}, "chain.block_size must be > 0"),
        ("encoder", {"n_mels": 100000}, r"encoder.n_mels \(100000\) must be at most n_fft // 2 \+ 1 = 513"),
    ],
)
def test_config_values_that_cannot_work_are_refused(tmp_path, section, values, message):
    raw = {"chain": {"plugins": ["fxgrad:Gain"]}, "data": {"train": {"input": str(tmp_path), "target": str(tmp_path)}}}
    raw.setdefault(section, {}).update(values)
    with pytest.raises(ConfigError, match=message):
        Config.from_dict(raw)
