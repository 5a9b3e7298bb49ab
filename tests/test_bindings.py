"""The native module's surface: its type stubs match what it binds, and the rack's option names
have one source (the native table) that fxgrad.torch, fxgrad.config.schema and the rack all use."""

import ast
import dataclasses
from pathlib import Path

import pytest

import fxgrad
from fxgrad import _native

STUBS = Path(fxgrad.__file__).with_name("_native.pyi")


def stub_names():
    """{top-level name: set of member names, or None for a function or a constant}."""
    names = {}
    for node in ast.parse(STUBS.read_text()).body:
        if isinstance(node, ast.ClassDef):
            members = set()
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    members.add(item.name)
                elif isinstance(item, ast.AnnAssign):
                    members.add(item.target.id)
            names[node.name] = members
        elif isinstance(node, ast.FunctionDef):
            names[node.name] = None
        elif isinstance(node, ast.AnnAssign):
            names[node.target.id] = None
    return names


def test_stubs_name_what_the_module_binds():
    stubs = stub_names()
    bound = {name for name in dir(_native) if not name.startswith("_")}
    assert bound == set(stubs)
    for name, members in stubs.items():
        obj = getattr(_native, name)
        if members is None or issubclass(obj, BaseException):
            continue
        public = {m for m in dir(obj) if not m.startswith("_")}
        assert public == members - {"__init__"}, name


def test_option_names_come_from_the_native_table():
    import fxgrad.config.schema as config
    import fxgrad.torch as fxtorch

    assert _native.STRATEGIES == ("lockstep", "replay", "snapshot")
    assert _native.ESTIMATORS == ("two-sided", "one-sided", "fd")
    assert _native.ISOLATIONS == ("none", "process", "sandbox")
    assert (fxtorch.STRATEGIES, fxtorch.ESTIMATORS, fxtorch.ISOLATIONS) == (
        _native.STRATEGIES,
        _native.ESTIMATORS,
        _native.ISOLATIONS,
    )
    choices = {f.name: f.metadata.get("choices") for f in dataclasses.fields(config.SpsaSection)}
    assert choices["strategy"] == _native.STRATEGIES
    assert choices["estimator"] == _native.ESTIMATORS


@pytest.fixture
def gain_chain():
    try:
        path = fxgrad.own_plugin_path("Gain", "lv2")
    except FileNotFoundError as error:
        pytest.skip(str(error))
    return _native.Chain([_native.Plugin.load(str(path), 44100, 256, 1)], None, [])


def rack(chain, strategy="replay", estimator="two-sided", isolation="none"):
    return _native.Rack(chain, 1, 0.01, 1, strategy, estimator, 256, 1, 0, isolation)


def test_rack_takes_every_name_of_the_table(gain_chain):
    for strategy in _native.STRATEGIES:
        assert rack(gain_chain, strategy=strategy).lanes == 1
    for estimator in _native.ESTIMATORS:
        assert rack(gain_chain, estimator=estimator).lanes == 1
    for isolation in _native.ISOLATIONS:
        assert rack(gain_chain, isolation=isolation).lanes == 1


@pytest.mark.parametrize(
    "option, message",
    [
        ("strategy", "strategy must be 'lockstep', 'replay' or 'snapshot', got 'bogus'"),
        ("estimator", "estimator must be 'two-sided', 'one-sided' or 'fd', got 'bogus'"),
        ("isolation", "isolation must be 'none', 'process' or 'sandbox', got 'bogus'"),
    ],
)
def test_rack_refuses_other_names_listing_the_table(gain_chain, option, message):
    with pytest.raises(ValueError) as error:
        rack(gain_chain, **{option: "bogus"})
    assert str(error.value) == message
