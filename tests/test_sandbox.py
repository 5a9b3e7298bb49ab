"""isolation="sandbox" (cpp/worker/Sandbox.h): workers in their own user, mount and network
namespaces behind a seccomp filter. A fixture plugin that tries exec, a socket, a write outside
its temporary folder and a read of its parent's environment is refused each time and the run
goes on (the same plugin succeeds at the last three without the sandbox); faults are still
contained; outputs are bit-identical to in-process lanes; the parent's environment stays out."""

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import fxgrad
from fxgrad.torch import PluginLayer

FIXTURES = Path(__file__).parent / "fixtures" / "plugins"
ESCAPE = FIXTURES / "escape_attempts.so"  # plugins/fixtures/escape_attempts.c
MISBEHAVE = FIXTURES / "FxgradMisbehave.lv2"

torch.set_num_threads(1)


@pytest.fixture
def shared(tmp_path):
    """A folder this process may write and anyone may read (a sandboxed worker started by root
    runs as nobody, and pytest's own folders are private to their owner)."""
    folder = Path(tempfile.mkdtemp(prefix="fxgrad-sandbox-test-", dir="/var/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def escape_layer(folder, isolation, log):
    library = folder / "escape_attempts.so"  # beside it: a folder the test process may write
    shutil.copy(ESCAPE, library)
    plugin = fxgrad.load(str(library), sample_rate=44100, channels=1)
    chain = fxgrad.Chain([plugin])
    return PluginLayer(chain, lanes=2, threads=2, workers=2, isolation=isolation, worker_log=log)


@pytest.mark.parametrize("isolation", ["process", "sandbox"])
def test_a_plugin_that_tries_to_escape_is_refused_in_the_sandbox_and_the_run_goes_on(tmp_path, shared, isolation):
    layer = escape_layer(shared, isolation, tmp_path / "log")
    x = torch.full((2, 1, 1024), 0.25)
    for _ in range(3):
        y = layer(x, torch.full((2, 1), 0.5))  # gain 1
        assert not layer.faulted.any() and torch.equal(y, x)
    del layer
    log = (tmp_path / "log").read_text()
    escaped = list(shared.glob("escaped-*"))
    if isolation == "sandbox":
        for attempt, why in [
            ("exec", "Operation not permitted"),  # seccomp, before the path is even looked up
            ("socket", "Operation not permitted"),
            ("write", "Read-only file system"),
            ("environ", "Permission denied"),
        ]:
            assert log.count(f"escape_attempts: {attempt} refused ({why})") == 2, log  # once per lane
        assert escaped == []
    else:  # what the sandbox takes away
        assert "socket succeeded" in log and "write succeeded" in log and "environ succeeded" in log, log
        assert len(escaped) == 2


def test_the_sandbox_does_not_inherit_the_parent_s_environment(monkeypatch, tmp_path, shared):
    monkeypatch.setenv("FXGRAD_TEST_SECRET", "hunter2")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    layer = escape_layer(shared, "sandbox", tmp_path / "log")
    (pid,) = layer.rack.worker_pids[:1]
    variables = environment(pid)
    assert "FXGRAD_TEST_SECRET" not in variables and "PATH" not in variables
    private = Path(variables["TMPDIR"])  # in /tmp whatever the parent's TMPDIR: nobody can reach it
    assert private.parent == Path("/tmp") and private.name.startswith("fxgrad-worker-") and private.is_dir()
    del layer
    assert not private.exists()  # the parent removed it
    assert list(tmp_path.iterdir()) == [tmp_path / "log"]


def test_the_folders_of_sandboxed_workers_whose_parent_was_killed_are_removed_by_the_next_sandbox(run_python):
    """A worker of a parent killed by SIGKILL empties its folder, but cannot remove it (inside the
    sandbox it is a mount point in a read-only /tmp): the next process to start a sandbox does."""
    parent = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import time, fxgrad
            from fxgrad.torch import PluginLayer
            plugin = fxgrad.load({str(MISBEHAVE)!r}, sample_rate=22050, block_size=64, channels=1)
            layer = PluginLayer(fxgrad.Chain([plugin], ["gain_db"]), lanes=2, threads=2, workers=2, isolation="sandbox")
            print(" ".join(map(str, layer.rack.worker_pids)), flush=True)
            time.sleep(600)
        """)],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        pids = [int(p) for p in parent.stdout.readline().split()]
        folders = [Path(environment(pid)["TMPDIR"]) for pid in pids]
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(folders) == 2 and all(folder.parent == Path("/tmp") for folder in folders), folders
    result = run_python(f"""
        import fxgrad
        from fxgrad.torch import PluginLayer
        plugin = fxgrad.load({str(MISBEHAVE)!r}, sample_rate=22050, block_size=64, channels=1)
        PluginLayer(fxgrad.Chain([plugin], ["gain_db"]), lanes=1, threads=1, isolation="sandbox")
    """)
    assert result.returncode == 0, result.stderr
    assert [folder for folder in folders if folder.exists()] == []


def environment(pid):
    """The environment variables of process ``pid``."""
    text = Path(f"/proc/{pid}/environ").read_bytes().decode()
    return dict(item.split("=", 1) for item in text.split("\0") if "=" in item)


@pytest.mark.parametrize("fault,detail", [(1, "SIGSEGV"), (2, "SIGABRT"), (3, "no answer within 2 s")])
def test_faults_are_contained_in_the_sandbox_too(fault, detail):
    plugin = fxgrad.load(str(MISBEHAVE), sample_rate=22050, block_size=64, channels=1)
    chain = fxgrad.Chain([plugin], ["gain_db", "trigger"], {"fault": fault, "threshold": 0.6})
    layer = PluginLayer(chain, lanes=2, threads=2, workers=2, isolation="sandbox", timeout_s=2.0, max_faults=0)
    x = torch.from_numpy(np.random.default_rng(0).uniform(-0.5, 0.5, (2, 1, 256)).astype(np.float32))
    layer(x, torch.tensor([[0.5, 0.9], [0.5, 0.1]]))
    assert layer.faulted.tolist() == [True, False]
    (report,) = layer.take_faults()
    assert detail in report["detail"], report
    y = layer(x, torch.tensor([[0.5, 0.1], [0.5, 0.1]]))  # restarted, in a sandbox again
    assert not layer.faulted.any() and torch.allclose(y, x)


def test_sandboxed_outputs_and_gradients_are_bit_identical_to_in_process():
    chain = fxgrad.Chain(
        [fxgrad.load("urn:zamaudio:ZamComp", sample_rate=22050, block_size=128, channels=2)], ["thr", "rat", "rel"]
    )
    results = []
    for isolation in ("none", "sandbox"):
        rack = fxgrad._native.Rack(chain, 3, 0.02, 2, "replay", "two-sided", 2048, 2, 7, isolation=isolation, workers=2)
        rng = np.random.default_rng(5)
        runs = []
        for _ in range(3):
            theta = rng.uniform(0.1, 0.9, (3, 3)).astype(np.float32)
            x = rng.uniform(-0.5, 0.5, (3, 2, 256)).astype(np.float32)
            y = rack.forward(theta, x, True)
            runs.append((y, rack.vjp((y - 0.1 * x).astype(np.float32))))
        results.append(runs)
    for (y0, g0), (y1, g1) in zip(*results):
        assert np.array_equal(y0, y1) and np.array_equal(g0, g1) and np.abs(g0).sum() > 0


def test_the_sandbox_is_an_isolation_a_config_may_name():
    from fxgrad.config.schema import SpsaSection

    assert "sandbox" in fxgrad.torch.ISOLATIONS and SpsaSection(isolation="sandbox").isolation == "sandbox"
    assert os.path.exists(FIXTURES / "escape_attempts.so")


def test_a_plugin_under_tmp_runs_in_the_sandbox_as_in_a_process():
    """Inside, every path is what it is outside (only the worker's own folder is writable), so a
    plugin or a checkout under /tmp works."""
    folder = Path(tempfile.mkdtemp(prefix="fxgrad-sandbox-test-", dir="/tmp"))
    try:
        folder.chmod(0o755)
        shutil.copy("/usr/lib/ladspa/amp.so", folder / "amp.so")
        audio = torch.randn(2, 1, 1024, generator=torch.Generator().manual_seed(0))
        outputs = []
        for isolation in ("process", "sandbox"):
            plugin = fxgrad.load(f"{folder}/amp.so#amp_mono", sample_rate=44100, channels=1)
            layer = PluginLayer(fxgrad.Chain([plugin], ["gain"]), lanes=2, threads=1, isolation=isolation)
            outputs.append(layer(audio, torch.tensor([[0.25], [0.75]])))
        assert torch.equal(outputs[0], outputs[1]) and outputs[0].abs().max() > 0
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_plugin_named_by_uri_is_not_refused_when_the_working_folder_lies_under_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a URI resolved against the working folder would seem to lie under /tmp
    plugin = fxgrad.load("urn:zamaudio:ZamComp", sample_rate=22050, block_size=128, channels=2)
    layer = PluginLayer(fxgrad.Chain([plugin], ["thr"]), lanes=1, threads=1, isolation="sandbox")
    assert torch.isfinite(layer(torch.zeros(1, 2, 256), torch.full((1, 1), 0.5))).all()


def test_training_through_a_plugin_that_tries_to_escape_goes_on_and_nothing_of_it_runs_outside(
    tmp_path, shared, monkeypatch
):
    from test_isolation import defaults_config

    from fxgrad.config import Config
    from fxgrad.train import Trainer
    from fxgrad.train.files import PLUGIN_LOG

    monkeypatch.setenv("FXGRAD_PROBE_CACHE", str(tmp_path / "probes.json"))
    library = shared / "escape_attempts.so"
    shutil.copy(ESCAPE, library)
    config = Config.from_dict(defaults_config(tmp_path, "escape", isolation="sandbox", library=library))
    assert Trainer(config, progress=False).fit()["step"] == 2
    log = (config.run_dir / PLUGIN_LOG).read_text()
    assert "succeeded" not in log and log.count("escape_attempts: socket refused") >= 2, log  # each lane
    assert list(shared.glob("escaped-*")) == []  # not from the probe before the run either


def test_a_plugin_named_by_a_relative_path_is_found_by_a_sandboxed_worker(shared, monkeypatch):
    shutil.copy(ESCAPE, shared / "escape_attempts.so")
    monkeypatch.chdir(shared)  # the workers run in /: the chain must name the library by its full path
    plugin = fxgrad.load("escape_attempts.so#escape", sample_rate=44100, channels=1)
    assert plugin.identifier.startswith(f"{shared}/escape_attempts.so")
    layer = PluginLayer(fxgrad.Chain([plugin]), lanes=1, threads=1, isolation="sandbox", worker_log=os.devnull)
    assert torch.equal(layer(torch.full((1, 1, 1024), 0.25), torch.full((1, 1), 0.5)), torch.full((1, 1, 1024), 0.25))


def test_an_idle_sandboxed_worker_sleeps():
    """Between calls a worker waits on a futex and JUCE's message thread on its socket pair: a
    refused socket pair once left that thread polling at 100 % of a core."""
    plugin = fxgrad.load("/usr/lib/ladspa/amp.so#amp_mono", sample_rate=44100, channels=1)
    layer = PluginLayer(fxgrad.Chain([plugin], ["gain"]), lanes=2, threads=2, isolation="sandbox")
    layer(torch.randn(2, 1, 4096), torch.rand(2, 1))
    (pid,) = layer.rack.worker_pids

    def cpu_ticks():
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks

    before = cpu_ticks()
    time.sleep(1.0)
    ticks_per_second = os.sysconf("SC_CLK_TCK")
    assert cpu_ticks() - before < 0.2 * ticks_per_second  # a spinning thread would take them all
