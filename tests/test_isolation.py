"""Isolated lanes (cpp/fxgrad/IsolatedLanes.h): a plugin that crashes, aborts, exits, hangs or
emits NaN costs the lanes it hit for one step, never the process; isolated racks are
bit-identical to in-process ones; workers never outlive their parent; restarts leak nothing.

The misbehaving plugin is the test fixture plugins/fixtures/Misbehave (built into
tests/fixtures/plugins/ by `make build`): it faults when `trigger` or its gain (as a fraction of
its range) exceeds `threshold`. It is never loaded in the test process itself except where the
fault mode is harmless (none, NaN).
"""

import gc
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

import fxgrad
from fxgrad import _native
from fxgrad.config import Config
from fxgrad.config.schema import SpsaSection
from fxgrad.torch import PluginLayer
from fxgrad.train import FAULTS, Trainer, TrainingError, read_log

FIXTURES = Path(__file__).parent / "fixtures" / "plugins"
MISBEHAVE = FIXTURES / "FxgradMisbehave.lv2"
FAULT = {"none": 0, "segfault": 1, "abort": 2, "hang": 3, "exit": 4, "nan": 5}

torch.set_num_threads(1)


@pytest.fixture(scope="module", autouse=True)
def built_fixture():
    if not MISBEHAVE.is_dir():
        pytest.fail(f"the test fixture plugin is not built ({MISBEHAVE}); run `make build`")


def misbehave_chain(fault="none", threshold=0.5, learned=("gain_db", "trigger"), channels=1, block_size=64):
    plugin = fxgrad.load(str(MISBEHAVE), sample_rate=22050, block_size=block_size, channels=channels)
    return fxgrad.Chain([plugin], list(learned), {"fault": FAULT[fault], "threshold": threshold})


def frames(lanes, channels=1, samples=256, seed=0):
    return np.random.default_rng(seed).uniform(-0.5, 0.5, (lanes, channels, samples)).astype(np.float32)


# ------------------------------------------------------------------------------- bit identity


def own(effect, **kw):
    return fxgrad.load(f"fxgrad:{effect}", sample_rate=22050, block_size=128, channels=2, **kw)


CHAINS = {
    "gain": lambda: fxgrad.Chain([own("Gain")]),
    "compressor": lambda: fxgrad.Chain([own("Compressor")], ["threshold_db", "ratio", "release_ms"]),
    "zamcomp-lv2": lambda: fxgrad.Chain(
        [fxgrad.load("urn:zamaudio:ZamComp", sample_rate=22050, block_size=128, channels=2)], ["thr", "rat", "rel"]
    ),
}


def run_rack(chain, strategy, estimator, steps, **kw):
    rack = _native.Rack(chain, 4, 0.02, 2, strategy, estimator, 22050 // 8, kw.pop("threads", 1), 7, **kw)
    rng = np.random.default_rng(5)
    outputs = []
    for step in range(steps):
        if step == 2:
            rack.reset_lanes(np.array([True, False, True, False]), frames(4, 2, 256, seed=99))
        theta = rng.uniform(0.1, 0.9, (4, rack.num_parameters)).astype(np.float32)
        x = frames(4, 2, 256, seed=step)
        y = rack.forward(theta, x, True)
        grad = rack.vjp((y - 0.1 * x).astype(np.float32))
        outputs.append((y, grad))
    return outputs


@pytest.mark.parametrize(
    "subject,strategy,estimator",
    [
        ("gain", "lockstep", "two-sided"),
        ("compressor", "replay", "one-sided"),
        ("compressor", "snapshot", "two-sided"),
        ("zamcomp-lv2", "replay", "two-sided"),
        ("zamcomp-lv2", "lockstep", "two-sided"),
    ],
)
def test_isolated_outputs_and_gradients_are_bit_identical_to_in_process(subject, strategy, estimator):
    chain = CHAINS[subject]()
    reference = run_rack(chain, strategy, estimator, 4, threads=2)
    for workers, threads in ((1, 1), (3, 3), (4, 2)):
        isolated = run_rack(chain, strategy, estimator, 4, threads=threads, isolation="process", workers=workers)
        for step, ((y0, g0), (y1, g1)) in enumerate(zip(reference, isolated)):
            assert np.array_equal(y0, y1), (subject, strategy, workers, step)
            assert np.array_equal(g0, g1), (subject, strategy, workers, step)
            assert np.abs(g0).sum() > 0


# ------------------------------------------------------------------------------- contained faults


@pytest.mark.parametrize(
    "fault,kind,detail",
    [
        ("segfault", "crash", "SIGSEGV"),
        ("abort", "crash", "SIGABRT"),
        ("exit", "exit", "exit status 3"),
        ("hang", "timeout", "no answer within"),
        ("nan", "nan", "NaN"),
    ],
)
def test_a_fault_costs_one_worker_s_lanes_for_one_step(fault, kind, detail):
    chain = misbehave_chain(fault, threshold=0.6)  # gain 0.5 +- eps stays clear of it
    layer = PluginLayer(
        chain,
        lanes=3,
        eps=0.01,
        threads=3,
        isolation="process",
        workers=3,
        timeout_s=2.0,
        max_faults=0,
        max_faults_per_minute=0,
    )
    x = torch.from_numpy(frames(3))
    gain = 10 ** ((0.5 * 48 - 24) / 20)  # gain_db at normalised 0.5: 0 dB
    theta = torch.tensor([[0.5, 0.1], [0.5, 0.9], [0.5, 0.2]], requires_grad=True)  # lane 1 trips the fault
    started = time.monotonic()
    y = layer(x, theta)
    took = time.monotonic() - started
    assert layer.faulted.tolist() == [False, True, False]
    assert torch.equal(y[1], torch.zeros_like(y[1]))
    np.testing.assert_allclose(y[0].detach().numpy(), x[0].numpy() * gain, rtol=1e-6)
    np.testing.assert_allclose(y[2].detach().numpy(), x[2].numpy() * gain, rtol=1e-6)
    assert took < (6.0 if fault == "hang" else 4.0)
    (report,) = layer.take_faults()
    assert report["kind"] == kind and detail in report["detail"], report
    assert report["lane"] == 1 and report["lanes"] == [1] and report["phase"] == "forward"
    assert report["plugin"] == "FxgradMisbehave" and report["plugin_index"] == 0
    assert report["normalized"]["0.trigger"] == pytest.approx(0.9)
    assert report["plain"]["0.trigger"] == pytest.approx(0.9) and report["plain"]["0.gain_db"] == pytest.approx(0.0)
    y.sum().backward()
    assert theta.grad[1].abs().sum() == 0  # the faulted lane contributes nothing
    stats = layer.rack.stats()
    assert stats["faults"] == 1 and stats["restarts"] == (0 if fault == "nan" else 1)

    # The restarted lane works again at harmless settings.
    y = layer(x, torch.tensor([[0.5, 0.1]] * 3))
    assert not layer.faulted.any()
    np.testing.assert_allclose(y[1].numpy(), x[1].numpy() * gain, rtol=1e-6)


def test_a_fault_in_a_perturbed_evaluation_is_reported_with_the_perturbed_settings():
    chain = misbehave_chain("segfault", threshold=0.5)
    layer = PluginLayer(
        chain,
        lanes=2,
        eps=0.05,
        threads=2,
        isolation="process",
        workers=2,
        seed=3,
        max_faults=0,
        max_faults_per_minute=0,
    )
    theta = torch.tensor([[0.3, 0.47], [0.3, 0.2]], requires_grad=True)  # lane 0: trigger + eps > 0.5
    y = layer(torch.from_numpy(frames(2)), theta)
    assert not layer.faulted.any()
    y.pow(2).sum().backward()
    assert layer.faulted.tolist() == [True, False]
    (report,) = layer.take_faults()
    assert report["phase"] == "evaluate" and report["detail"] == "SIGSEGV"
    assert report["normalized"]["0.trigger"] == pytest.approx(0.52)  # the perturbed value, not the centre
    assert theta.grad[0].abs().sum() == 0 and theta.grad[1].abs().sum() > 0


def test_nan_is_contained_in_process_too():
    layer = PluginLayer(misbehave_chain("nan", threshold=0.6), lanes=2, threads=1)
    y = layer(torch.from_numpy(frames(2)), torch.tensor([[0.5, 0.9], [0.5, 0.1]]))
    assert layer.faulted.tolist() == [True, False]
    assert torch.isfinite(y).all()
    (report,) = layer.take_faults()
    assert report["kind"] == "nan" and "FxgradMisbehave" in report["detail"]


def test_the_fault_budget_ends_in_one_clear_error():
    layer = PluginLayer(misbehave_chain("exit", threshold=0.6), lanes=1, threads=1, isolation="process", max_faults=2)
    theta = torch.tensor([[0.5, 0.9]])
    x = torch.from_numpy(frames(1))
    layer(x, theta)
    layer(x, theta)
    with pytest.raises(fxgrad.PluginCrashedError, match=r"plugin 0 \('FxgradMisbehave'\) keeps failing: 3 faults"):
        layer(x, theta)
    assert issubclass(fxgrad.PluginCrashedError, fxgrad.PluginError)


def test_a_worker_that_cannot_load_the_chain_raises_at_construction(tmp_path):
    # A worker that cannot even load the chain (here: the bundle vanished since) is one clear
    # error from the constructor, not a restart loop.
    bundle = tmp_path / "Gone.lv2"
    os.symlink(MISBEHAVE, bundle)
    moved = fxgrad.Chain([fxgrad.load(str(bundle), sample_rate=22050, block_size=64, channels=1)], ["gain_db"])
    bundle.unlink()
    with pytest.raises(FileNotFoundError, match="Gone.lv2"):
        PluginLayer(moved, lanes=1, threads=1, isolation="process")


# ------------------------------------------------------------------------------- single plugins


def test_a_child_that_dies_before_loading_anything_does_not_blame_the_plugin(monkeypatch):
    monkeypatch.setattr(sys, "executable", "/bin/false")  # an interpreter that cannot start
    with pytest.raises(RuntimeError, match="exited with status 1 before it loaded anything") as error:
        fxgrad.load(str(MISBEHAVE), sample_rate=22050, channels=1, isolated=True)
    assert not isinstance(error.value, fxgrad.PluginError), error.value
    assert "the interpreter was /bin/false" in str(error.value)


@pytest.mark.parametrize(
    "fault,error,message",
    [
        ("segfault", fxgrad.PluginCrashedError, "died by SIGSEGV while calling process"),
        ("abort", fxgrad.PluginCrashedError, "died by SIGABRT"),
        ("exit", fxgrad.PluginCrashedError, "exited with status 3"),
        ("hang", fxgrad.PluginTimeoutError, "did not answer within 3 s"),
        ("nan", fxgrad.PluginOutputError, "NaN or Inf"),
    ],
)
def test_an_isolated_plugin_raises_and_reloads(fault, error, message):
    plugin = fxgrad.load(str(MISBEHAVE), sample_rate=22050, block_size=64, channels=1, isolated=True, timeout_s=3)
    try:
        assert {"gain_db", "fault", "trigger", "threshold"} <= {p["id"] for p in plugin.parameters}
        x = frames(1)[0]
        plugin.set("gain_db", 6.0)
        np.testing.assert_allclose(plugin.process(x), x * np.float32(10 ** (6 / 20)), rtol=1e-6)
        assert plugin.get("gain_db") == pytest.approx(6.0)
        with pytest.raises(KeyError, match="close matches"):
            plugin.set("gain_dbb", 1.0)
        plugin.set("fault", FAULT[fault])
        plugin.set("threshold", 0.5)
        plugin.set("trigger", 0.9)
        started = time.monotonic()
        with pytest.raises(error, match=message) as raised:
            plugin.process(x)
        assert "FxgradMisbehave" in str(raised.value) and time.monotonic() - started < 10
        if fault != "nan":  # the plugin's process is gone until reloaded
            with pytest.raises(fxgrad.PluginCrashedError, match="reload"):
                plugin.process(x)
        plugin.reload()
        np.testing.assert_allclose(plugin.process(x), x, rtol=1e-6)  # a fresh instance at defaults
    finally:
        plugin.close()


# ------------------------------------------------------------------------------- workers' lives


def children_of(pid):
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def test_workers_die_with_a_parent_killed_by_sigkill(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(
        textwrap.dedent(f"""
        import sys, time, fxgrad
        from fxgrad import _native
        plugin = fxgrad.load({str(MISBEHAVE)!r}, sample_rate=22050, block_size=64, channels=1)
        chain = fxgrad.Chain([plugin], ["gain_db"])
        rack = _native.Rack(chain, 3, 0.01, 1, "lockstep", "two-sided", 0, 3, 0, isolation="process", workers=3)
        print(" ".join(map(str, rack.worker_pids)), flush=True)
        time.sleep(600)
    """)
    )
    shm_before = set(os.listdir("/dev/shm"))
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 3 and set(pids) <= set(children_of(parent.pid))
        for pid in pids:
            assert Path(f"/proc/{pid}/exe").resolve().name == "fxgrad-worker"
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 10
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [
            pid
            for pid in pids
            if Path(f"/proc/{pid}").exists()
            and not (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z")
        ]
    assert not alive, f"workers {alive} outlived their parent"
    assert set(os.listdir("/dev/shm")) == shm_before  # memfds only: nothing named to leak


def open_fds():
    return len(os.listdir("/proc/self/fd"))


def rss_kib():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def test_a_hundred_fault_and_restart_cycles_leak_nothing(tmp_path, monkeypatch):
    # Each worker gets a private TMPDIR (where JUCE's LV2 host writes its scratch files) that the
    # parent removes when the worker ends, however it ends.
    chain = misbehave_chain("exit", threshold=0.6)  # loaded here with this process's TMPDIR
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    layer = PluginLayer(
        chain,
        lanes=1,
        threads=1,
        isolation="process",
        max_faults=0,
        max_faults_per_minute=0,
    )
    x = torch.from_numpy(frames(1))
    bad, good = torch.tensor([[0.5, 0.9]]), torch.tensor([[0.5, 0.1]])

    def cycles(layer, n):
        for _ in range(n):
            layer(x, bad)
            assert layer.faulted.all()
            layer(x, good)
            assert not layer.faulted.any()
        layer.take_faults()
        gc.collect()

    cycles(layer, 10)  # warm-up: caches, allocator pools
    fds, shm, rss = open_fds(), set(os.listdir("/dev/shm")), rss_kib()
    started = time.monotonic()
    cycles(layer, 100)
    per_restart = (time.monotonic() - started) / 100
    assert layer.rack.stats()["restarts"] == 110
    assert open_fds() == fds
    assert set(os.listdir("/dev/shm")) == shm
    assert rss_kib() - rss < 8 * 1024, (rss, rss_kib())
    children = children_of(os.getpid())
    workers = [pid for pid in children if Path(f"/proc/{pid}/exe").resolve().name == "fxgrad-worker"]
    assert len(workers) == 1, workers  # the live one; the others were reaped (no zombies)
    assert [p.name[:14] for p in tmp_path.iterdir()] == ["fxgrad-worker-"]  # the live one's
    del layer
    gc.collect()
    assert list(tmp_path.iterdir()) == []
    print(f"restart cycle: {per_restart * 1e3:.0f} ms")


# ------------------------------------------------------------------------------- the trainer


def gain_pairs(folder, clips=8, seconds=0.5, sample_rate=22050):
    """A leveler's input/target pairs: noise at -30 to -9 dBFS in, the same at -19 dBFS out, so
    the gain to learn (+11 down to -10 dB) follows the input's level."""
    rng = np.random.default_rng(11)
    for role in ("input", "target"):
        (folder / role).mkdir(parents=True, exist_ok=True)
    for k in range(clips):
        level_db = -30 + 21 * k / (clips - 1)
        x = (rng.standard_normal(int(seconds * sample_rate)) * 10 ** (level_db / 20)).astype(np.float32)
        sf.write(folder / "input" / f"clip{k}.wav", x, sample_rate, subtype="FLOAT")
        sf.write(
            folder / "target" / f"clip{k}.wav",
            x * np.float32(10 ** ((-19 - level_db) / 20)),
            sample_rate,
            subtype="FLOAT",
        )
    return folder


def isolated_training_config(tmp_path, **train):
    return Config.from_dict(
        {
            "name": "misbehave",
            "seed": 1,
            "sample_rate": 22050,
            "channels": 1,
            "frame_size": 512,
            "output_dir": str(tmp_path / "run"),
            # Misbehave segfaults once its gain passes 0.6 of its range (+4.8 dB): the quietest clips,
            # which want up to +11 dB, lead the encoder and SPSA's perturbations across it.
            "chain": {
                "plugins": [str(MISBEHAVE)],
                "learned": ["gain_db"],
                "pinned": {"fault": 1, "threshold": 0.6},
                "block_size": 128,
            },
            "data": {"train": str(gain_pairs(tmp_path / "data"))},
            "encoder": {
                "context": 2048,
                "n_fft": 512,
                "hop": 128,
                "n_mels": 16,
                "options": {"stem_channels": 8, "block_channels": [8]},
            },
            "spsa": {
                "lanes": 4,
                "threads": 2,
                "workers": 4,
                "eps": 0.02,
                "isolation": "process",
                "max_faults": 0,
                "max_faults_per_minute": 0,
            },
            "loss": {"type": "l1"},
            "train": {
                "steps": 60,
                "steps_per_epoch": 60,
                "lr": 3e-3,
                "log_every": 10,
                "checkpoint_every": 30,
                "tensorboard": False,
                **train,
            },
        }
    )


def fault_every_render(config, fault):
    """Misbehave faults at every render of the run but not at its preset: the gain pinned at
    -24 dB, the trigger learned (its preset 0 passes the check before the run; the encoder starts
    it near 0.5, past the threshold)."""
    config.chain.learned = ["trigger"]
    config.chain.pinned.update({"gain_db": -24.0, "fault": FAULT[fault], "threshold": 0.3})
    return config


def test_isolated_training_survives_a_crashing_plugin_and_a_killed_worker(tmp_path):
    killed = []

    def kill_a_worker(trainer, record):
        if record["step"] == 20:
            pid = trainer.layer.rack.worker_pids[2]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    config = isolated_training_config(tmp_path)
    summary = Trainer(config, progress=False, callbacks=[kill_a_worker]).fit()
    assert summary["step"] == 60 and killed
    reports = [json.loads(line) for line in (config.run_dir / FAULTS).read_text().splitlines()]
    crashes = [r for r in reports if r["detail"] == "SIGSEGV"]
    assert crashes, reports
    for report in crashes:
        assert report["plugin"] == "FxgradMisbehave"
        assert report["normalized"]["0.gain_db"] > 0.6 and report["plain"]["0.gain_db"] > 4.8
    assert any(r["detail"] == "SIGKILL" for r in reports)  # the one killed from outside
    rows = [r for r in read_log(config.run_dir / "log.csv") if r["phase"] == "train"]
    assert sum(int(r["faults"]) for r in rows) == sum(len(r["lanes"]) for r in reports)
    first, last = float(rows[0]["loss"]), float(rows[-1]["loss"])
    assert last < 0.7 * first, (first, last)


def test_a_plugin_past_the_budget_ends_training_with_a_resumable_checkpoint(tmp_path):
    config = isolated_training_config(tmp_path, steps=30)
    config.spsa.max_faults = 2
    fault_every_render(config, "segfault")
    with pytest.raises(TrainingError, match="keeps failing") as error:
        Trainer(config, progress=False).fit()
    assert "checkpoint of train step 0" in str(error.value)
    assert (config.run_dir / "checkpoint.pt").is_file()


# ------------------------------------------------------------------------------- deadlines and signals


def test_the_deadline_is_absolute_and_three_hangs_each_cost_it():
    default = PluginLayer(misbehave_chain(), lanes=1, threads=1, isolation="process")
    assert default.rack.timeout_s == _native.DEFAULT_TIMEOUT_S == SpsaSection().timeout_s == 30.0
    del default
    layer = PluginLayer(
        misbehave_chain("hang", threshold=0.6),
        lanes=1,
        threads=1,
        isolation="process",
        timeout_s=1.0,
        max_faults=0,
        max_faults_per_minute=0,
    )
    x = torch.from_numpy(frames(1))
    layer(x, torch.tensor([[0.5, 0.1]]))  # a quick call first: it must not shorten or lengthen the deadline
    for hang in range(3):
        started = time.monotonic()
        layer(x, torch.tensor([[0.5, 0.9]]))
        took = time.monotonic() - started
        assert layer.faulted.all()
        (report,) = layer.take_faults()
        assert report["detail"] == "no answer within 1 s", report
        assert 1.0 <= took < 3.0, (hang, took)  # the deadline and a restart, never more
    assert layer.rack.timeout_s == 1.0


def test_ctrl_c_ends_a_wait_on_a_hung_plugin_at_once(run_python):
    result = run_python(f"""
        import os, signal, threading, time
        import torch, fxgrad
        from fxgrad.torch import PluginLayer
        plugin = fxgrad.load({str(MISBEHAVE)!r}, sample_rate=22050, block_size=64, channels=1)
        chain = fxgrad.Chain([plugin], ["gain_db", "trigger"], {{"fault": 3, "threshold": 0.6}})
        layer = PluginLayer(chain, lanes=2, threads=2, workers=2, isolation="process", timeout_s=60)
        x = torch.zeros(2, 1, 256)
        # A shell's background job (`make test &`) starts with SIGINT ignored, and Python then
        # installs no handler of its own: put the usual one in place.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
        started = time.monotonic()
        try:
            layer(x, torch.tensor([[0.5, 0.9], [0.5, 0.1]]))
        except KeyboardInterrupt:
            print(f"interrupted after {{time.monotonic() - started:.2f}} s")
        y = layer(x + 0.1, torch.tensor([[0.5, 0.1], [0.5, 0.1]]))  # the stopped worker restarts
        print("restarted", [r["kind"] for r in layer.take_faults()], layer.faulted.tolist(), float(y[1].abs().max()))
    """)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2, f"stdout: {result.stdout!r}; stderr: {result.stderr[-2000:]!r}"
    first, second = lines
    assert first.startswith("interrupted after") and float(first.split()[2]) < 1.0, first
    assert second == "restarted ['interrupted'] [True, False] 0.10000000149011612", second


@pytest.mark.parametrize("sent", [signal.SIGINT, signal.SIGTERM])
def test_fxgrad_train_stops_within_a_second_on_a_signal_during_a_hang(tmp_path, sent):
    config = isolated_training_config(tmp_path, steps=4)
    fault_every_render(config, "hang")
    config.spsa.timeout_s = 60.0
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config.to_dict()))
    process = subprocess.Popen(
        [sys.executable, "-m", "fxgrad", "train", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    output = []
    for line in process.stdout:
        output.append(line)
        if "run folder" in line:
            break
    time.sleep(1.0)  # inside the first step's forward, waiting on a hung worker
    started = time.monotonic()
    process.send_signal(sent)
    stopped = None
    for line in process.stdout:  # the run has stopped once it says where its checkpoint is
        output.append(line)
        if stopped is None and "checkpoint written to" in line:
            stopped = time.monotonic() - started
    code = process.wait(10)
    text = "".join(output)
    assert code == 130 and stopped is not None and stopped < 1.0, (code, stopped, text)
    assert f"{sent.name} received at train step 0" in text and "resume with:" in text, text
    state = torch.load(config.run_dir / "checkpoint.pt", weights_only=True)
    assert state["step"] == 0


# ------------------------------------------------------------------------------- what faults report


def test_validation_faults_are_logged_with_reproducers_and_stop_a_run_past_the_budget(tmp_path):
    config = isolated_training_config(tmp_path, steps=2, steps_per_epoch=1)
    config.data.valid_split = 0.25  # two of the eight clips
    fault_every_render(config, "nan")
    config.spsa.max_faults = 6
    with pytest.raises(TrainingError, match="keeps failing") as error:
        Trainer(config, progress=False).fit()
    assert "fault reports in" in str(error.value)
    reports = [json.loads(line) for line in (config.run_dir / FAULTS).read_text().splitlines()]
    validation = [r for r in reports if r["stage"] == "validation"]
    assert validation, reports
    for report in reports:
        assert report["identifier"] == str(MISBEHAVE)
        assert report["pinned"] == {"0.gain_db": -24.0, "0.fault": 5.0, "0.threshold": pytest.approx(0.3)}
        assert Path(report["clip"]).parent.name == "input" and report["position_samples"] % 512 == 0
    assert not (config.run_dir / "best.pt").exists()  # a faulted validation never picks it


def test_a_fault_in_a_reset_reports_the_preset_values_it_rendered():
    chain = misbehave_chain("nan", threshold=0.45)  # 0 dB is 0.5 of the gain's range: a reset's preroll faults
    layer = PluginLayer(chain, lanes=2, threads=1)
    layer.reset_lanes(np.array([True, False]), torch.from_numpy(frames(2, samples=128)))
    (report,) = layer.take_faults()
    assert report["phase"] == "reset" and report["lane"] == 0
    assert report["plain"]["0.gain_db"] == pytest.approx(0.0) and report["normalized"]["0.trigger"] == 0.0


def test_nan_input_in_one_lane_is_refused_before_any_lane_renders():
    chain = fxgrad.Chain([own("Compressor")], ["threshold_db", "ratio"])
    theta = torch.full((4, 2), 0.3)
    x = torch.from_numpy(frames(4, 2, 256))
    bad = x.clone()
    bad[3, 1, 17] = float("nan")
    layer, reference = PluginLayer(chain, lanes=4, threads=1), PluginLayer(chain, lanes=4, threads=1)
    with pytest.raises(ValueError, match=r"x contains NaN or Inf \(lane 3, channel 1, sample 17\)"):
        layer(bad, theta)
    assert torch.equal(layer(x, theta), reference(x, theta))  # lanes 0-2 were not advanced


def test_a_float16_theta_whose_gradient_overflows_raises():
    layer = PluginLayer(fxgrad.Chain([own("Gain")]), lanes=1, threads=1)
    theta = torch.full((1, layer.num_parameters), 0.5, dtype=torch.float16, requires_grad=True)
    y = layer(torch.full((1, 2, 256), 1e30), theta)
    with pytest.raises(ValueError, match="not finite in theta's dtype torch.float16"):
        y.sum().backward()


# ------------------------------------------------------------------------------- faults at the defaults

FAULTS_AT_DEFAULTS = FIXTURES / "faults_at_defaults.so"  # plugins/fixtures/faults_at_defaults.c


def defaults_config(tmp_path, label, pinned=None, isolation="process", library=FAULTS_AT_DEFAULTS):
    """A run through one plugin of ``library`` (LADSPA: 44.1 kHz only)."""
    return {
        "name": label,
        "sample_rate": 44100,
        "channels": 1,
        "frame_size": 512,
        "output_dir": str(tmp_path / "run"),
        "chain": {"plugins": [f"{library}#{label}"], "learned": ["gain"], "pinned": pinned or {}},
        "data": {"train": str(gain_pairs(tmp_path / "data", clips=3, seconds=0.25, sample_rate=44100))},
        "encoder": {"context": 1024, "n_fft": 512, "hop": 128, "n_mels": 16, "options": {"stem_channels": 4}},
        "spsa": {"lanes": 2, "threads": 1, "timeout_s": 2.0, "isolation": isolation},
        "loss": {"type": "l1"},
        "train": {"steps": 2, "steps_per_epoch": 2, "tensorboard": False},
    }


def train_in_a_subprocess(tmp_path, config):
    """``fxgrad train`` of ``config`` in a fresh process that must end in an error (exit status
    1, never a signal or a hang): the result and its one ``fxgrad:`` line on stderr."""
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [sys.executable, "-m", "fxgrad", "train", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "FXGRAD_PROBE_CACHE": str(tmp_path / "probes.json")},
    )
    assert result.returncode == 1, (result.returncode, result.stderr)
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("fxgrad:")]
    return result, line


@pytest.mark.parametrize("isolation", ["process", "sandbox"])  # the sandbox probes in a sandboxed worker
@pytest.mark.parametrize(
    "label,how",
    [("crash", "died by SIGSEGV"), ("abort", "died by SIGABRT"), ("hang", "did not answer within 2 s")],
)
def test_train_with_a_plugin_that_faults_at_its_defaults_ends_in_one_clear_error(tmp_path, label, how, isolation):
    started = time.monotonic()
    result, line = train_in_a_subprocess(tmp_path, defaults_config(tmp_path, label, isolation=isolation))
    took = time.monotonic() - started
    assert line.startswith(
        f"fxgrad: error: chain: the chain {how} while processing audio through plugin 0 ('{label}', "
        f"{FAULTS_AT_DEFAULTS}#{label}) at its preset and pinned settings"
    ), line
    assert "Traceback" not in result.stderr and took < 30, took
    assert not (tmp_path / "run").exists()  # nothing was started


def test_a_pinned_value_that_avoids_a_fault_at_the_defaults_trains(tmp_path, monkeypatch):
    monkeypatch.setenv("FXGRAD_PROBE_CACHE", str(tmp_path / "probes.json"))
    config = Config.from_dict(defaults_config(tmp_path, "crash", pinned={"safe": 1}))
    assert Trainer(config, progress=False).fit()["step"] == 2
    records = json.loads((tmp_path / "probes.json").read_text())
    assert len(records) == 1  # the probe passed, and is not run again for the same files
    Trainer(config, overwrite=True, progress=False).close()
    assert json.loads((tmp_path / "probes.json").read_text()) == records


FAULTS_WHEN_LOADED = FIXTURES / "faults_when_loaded.so"  # plugins/fixtures/faults_when_loaded.c


@pytest.mark.parametrize("isolation", ["process", "sandbox"])  # the sandbox too loads the chain in this process
@pytest.mark.parametrize("fault,how", [("crash", "died by SIGSEGV"), ("hang", "did not answer within 2 s")])
def test_train_with_a_plugin_that_faults_when_loaded_ends_in_one_clear_error(tmp_path, fault, how, isolation):
    library = tmp_path / f"{fault}s_when_loaded.so"  # the file's name chooses the fault
    shutil.copy(FAULTS_WHEN_LOADED, library)
    result, line = train_in_a_subprocess(
        tmp_path, defaults_config(tmp_path, "gain", isolation=isolation, library=library)
    )
    assert line.startswith(f"fxgrad: error: chain: the chain {how} while loading plugin 0 ({library}#gain)"), line
    assert not (tmp_path / "run").exists()
