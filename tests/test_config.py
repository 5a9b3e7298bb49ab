"""The one config reader (fxgrad.base.configfile): JSON, YAML and TOML files read alike by training
configs and chain files, with the errors each caller has always given."""

import json

import pytest
import yaml

import fxgrad
from fxgrad.base.configfile import load_config
from fxgrad.config import Config, ConfigError

CHAIN = {"plugins": ["fxgrad:Gain"], "learned": ["0.gain_db"], "sample_rate": 22050, "block_size": 256, "channels": 1}
TOML = """\
plugins = ["fxgrad:Gain"]
learned = ["0.gain_db"]
sample_rate = 22050
block_size = 256
channels = 1
"""


def write_all(tmp_path, value, toml_text):
    (tmp_path / "c.json").write_text(json.dumps(value))
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(value))
    (tmp_path / "c.yml").write_text(yaml.safe_dump(value))
    (tmp_path / "c.toml").write_text(toml_text)
    return [tmp_path / f"c.{suffix}" for suffix in ("json", "yaml", "yml", "toml")]


def test_every_format_reads_to_the_same_dict(tmp_path):
    for path in write_all(tmp_path, CHAIN, TOML):
        assert load_config(path) == CHAIN, path
        assert load_config(str(path)) == CHAIN, path


def test_an_empty_file_is_an_empty_mapping(tmp_path):
    (tmp_path / "empty.yaml").write_text("")
    assert load_config(tmp_path / "empty.yaml") == {}


def test_missing_files_and_unknown_suffixes(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such config file"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "chain.txt").write_text(yaml.safe_dump(CHAIN))
    with pytest.raises(ValueError, match=r"must be \.json, \.yaml/\.yml or \.toml"):
        load_config(tmp_path / "chain.txt")
    assert load_config(tmp_path / "chain.txt", default_format="yaml") == CHAIN


def test_chain_files_and_training_configs_share_the_reader(tmp_path):
    for path in write_all(tmp_path, CHAIN, TOML):
        chain = fxgrad.Chain.from_config(path)
        assert list(chain.learned) == ["0.gain_db"] and chain.sample_rate == 22050
    with pytest.raises(FileNotFoundError, match="no such config file"):
        fxgrad.Chain.from_config(tmp_path / "nope.json")

    raw = {"chain": {"plugins": ["fxgrad:Gain"]}, "data": {"synthetic": {"hidden": {"0.gain_db": {}}}}}
    toml_text = '[chain]\nplugins = ["fxgrad:Gain"]\n\n[data.synthetic.hidden."0.gain_db"]\n'
    loaded = [Config.load(path).to_dict() for path in write_all(tmp_path, raw, toml_text)]
    assert all(c == loaded[0] for c in loaded) and loaded[0]["chain"]["plugins"] == ["fxgrad:Gain"]
    # A training config of another suffix is read as YAML, as it always was.
    (tmp_path / "run.cfg").write_text(yaml.safe_dump(raw))
    assert Config.load(tmp_path / "run.cfg").to_dict() == loaded[0]


def test_config_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        Config.load(tmp_path / "nope.yaml")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ConfigError, match=r"broken\.json: cannot parse"):
        Config.load(tmp_path / "broken.json")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ConfigError, match="the top level must be a mapping of keys, got list"):
        Config.load(tmp_path / "list.yaml")
