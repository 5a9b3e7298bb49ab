"""Bad input that used to crash, hang or silently mislead (issue 17), on real plugins: each case
now gets a clear exception or one-line CLI error naming the bad value, or correct behaviour, and
nothing is written before the inputs are checked. Cases that could crash or hang run in a fresh
interpreter with a timeout. The last test is a property-based sweep (hypothesis) over
``Plugin.process``, ``load_state`` and ``PluginLayer``."""

import contextlib
import io
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fxgrad
from fxgrad.cli import main
from fxgrad.config import Config
from fxgrad.torch import MAX_PERTURBATIONS, MIN_EPS, PluginLayer, chains_per_lane
from fxgrad.train import BEST, CHECKPOINT, LOCK, Trainer, TrainingError

sys.path.insert(0, str(Path(__file__).parent))
from test_host import CALF, MB_COMP, ZAMCOMP, ZAMCOMP_VST3, needs  # noqa: E402
from test_train import tiny_raw  # noqa: E402

torch.set_num_threads(1)

ZAMCOMP_LADSPA = Path("/usr/lib/ladspa/ZamComp-ladspa.so")
MONOSYNTH = CALF + "Monosynth"
SR = 22050
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def python(tmp_path, code, timeout=90, name="case.py"):
    """Run ``code`` in a fresh interpreter (the tests' own) in ``tmp_path``; a crash or a hang
    fails the test instead of taking the suite down."""
    script = tmp_path / name
    script.write_text(textwrap.dedent(code))
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=timeout, env=ENV
    )
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def cli(tmp_path, *argv, timeout=90):
    return subprocess.run(
        [sys.executable, "-m", "fxgrad", *map(str, argv)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=ENV,
    )


def one_line_error(result, code=1):
    """The CLI's promise: exit status ``code`` and a single 'fxgrad: ...' line, no traceback."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == code, result.stdout + result.stderr
    assert len(lines) == 1 and lines[0].startswith("fxgrad: "), result.stderr
    return lines[0]


# --- crashes: load_state ------------------------------------------------------------------------


@needs(ZAMCOMP, MB_COMP)
def test_bad_states_are_refused_and_leave_the_plugin_as_it_was(tmp_path):
    """Turtle that is not a preset used to segfault JUCE's LV2 host; garbage, another plugin's or
    half a state reset an LV2 plugin to its defaults; a LADSPA plugin read parameters from
    uninitialised memory; half a VST3 state changed a parameter."""
    out = python(
        tmp_path,
        f"""
        import numpy as np, fxgrad
        rng = np.random.default_rng(0)
        x = (rng.standard_normal((1, 4096)) * 0.3).astype(np.float32)
        plugins = {{
            "ZamComp LV2": lambda: fxgrad.load("{ZAMCOMP}", channels=1),
            "Calf MB LV2": lambda: fxgrad.load("{MB_COMP}", channels=1),
            "fxgrad Compressor LV2": lambda: fxgrad.load("fxgrad:Compressor", channels=1),
            "fxgrad Compressor VST3": lambda: fxgrad.load("fxgrad:Compressor/vst3", channels=1),
            "ZamComp VST3": lambda: fxgrad.load("{ZAMCOMP_VST3}", channels=1),
            "ZamComp LADSPA": lambda: fxgrad.load("{ZAMCOMP_LADSPA}", channels=1),
        }}
        other = fxgrad.load("fxgrad:Gain", channels=1).state
        for label, make in plugins.items():
            plugin = make()
            first = plugin.parameters[0]
            setting = first.minimum + 0.3 * (first.maximum - first.minimum) if not first.choices else first.maximum
            plugin.set(0, setting)
            good = plugin.state
            *lines, payload = good.split(b"\\n", 3)
            header = b"\\n".join(lines) + b"\\n"
            flipped = bytearray(good)
            flipped[-3] ^= 0x80
            bad = {{
                "turtle triple": b"<urn:x> <urn:p> 1 .",
                "empty": b"",
                "random": rng.bytes(3000),
                "5 MB": rng.bytes(5 << 20),
                "another plugin's": other,
                "half": good[: len(good) // 2],
                "the plugin's data without the header": payload,
                "a byte flipped": bytes(flipped),
                "header and garbage": header + rng.bytes(len(payload)),
            }}
            for name, blob in bad.items():
                try:
                    plugin.load_state(blob)
                    print("ACCEPTED", label, name)
                except ValueError as error:
                    assert str(error).startswith("load_state: "), error
            assert plugin.state == good, label
            reference = make()
            reference.set(0, setting)
            assert np.array_equal(plugin.process(x), reference.process(x)), label
            reference.load_state(good)   # a real state still loads
            print("OK", label)
    """,
        timeout=120,
    )
    assert "ACCEPTED" not in out, out
    assert out.count("OK ") == 6, out


def test_state_errors_name_the_problem():
    comp, gain = fxgrad.load("fxgrad:Compressor", channels=1), fxgrad.load("fxgrad:Gain", channels=1)
    with pytest.raises(ValueError, match=r"not a plugin state from fxgrad .* 19 bytes starting '<urn:x> <urn:p> 1 \.'"):
        comp.load_state(b"<urn:x> <urn:p> 1 .")
    with pytest.raises(
        ValueError,
        match=r"belongs to another plugin \(LV2 https://fxgrad\.org/plugins/Gain\), not to "
        r"'FxgradCompressor'",
    ):
        comp.load_state(gain.state)
    good = comp.state
    with pytest.raises(ValueError, match=r"is truncated: its header declares \d+ bytes of plugin data, \d+ follow"):
        comp.load_state(good[:-10])
    with pytest.raises(ValueError, match="is corrupted"):
        comp.load_state(good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(TypeError, match="state must be bytes"):
        comp.load_state("a string")
    comp.load_state(bytearray(good))  # bytes-like objects are fine
    comp.load_state(memoryview(good))


# --- hangs ---------------------------------------------------------------------------------------


def test_fifos_and_devices_are_never_opened_as_plugins(tmp_path):
    """dlopen of a FIFO blocked for ever (fxgrad.load and fxgrad scan)."""
    os.mkfifo(tmp_path / "x.so")
    bundle = tmp_path / "Fake.lv2"
    bundle.mkdir()
    (bundle / "manifest.ttl").write_text("@prefix lv2: <http://lv2plug.in/ns/lv2core#> .\n")
    os.mkfifo(bundle / "fake.so")
    out = python(
        tmp_path,
        f"""
        import fxgrad
        for path in ("x.so", "/dev/zero", "{bundle}"):
            try:
                fxgrad.load(path)
            except fxgrad.PluginLoadError as error:
                assert "is not a regular file" in str(error), error
                print("refused", path)
        try:
            fxgrad.scan(["x.so"], include_own=False)
        except fxgrad.PluginLoadError as error:
            print("scan refused", "is not a regular file" in str(error))
    """,
        timeout=60,
    )
    assert out.count("refused ") == 4 and "scan refused True" in out, out
    line = one_line_error(cli(tmp_path, "scan", tmp_path / "x.so", timeout=60))
    assert "x.so' is not a regular file (a FIFO" in line


def test_oversized_racks_are_refused_at_once_with_the_figures(tmp_path):
    """lanes=10**6 or threads=100000 ran for minutes and starved the machine."""
    out = python(
        tmp_path,
        """
        import fxgrad
        from fxgrad.torch import PluginLayer
        chain = fxgrad.Chain([fxgrad.load("fxgrad:Gain", channels=1)])
        for kwargs in (dict(lanes=10**6), dict(lanes=4, threads=100000), dict(lanes=2, perturbations=10**6),
                       dict(lanes=2**40)):
            try:
                PluginLayer(chain, **kwargs)
                print("BUILT", kwargs)
            except ValueError as error:
                print(error)
    """,
        timeout=60,
    )
    lines = out.splitlines()
    assert len(lines) == 4 and "BUILT" not in out, out
    assert lines[0].startswith("lanes=1000000 needs 3000000 plugin chain instances (3 per lane")
    assert "lanes would fit" in lines[0]
    assert "of memory is available" in lines[0]
    assert lines[1].startswith("threads=100000 is more than this machine can run: at most ")
    assert lines[2] == f"perturbations must be between 1 and {MAX_PERTURBATIONS}, got 1000000"
    assert lines[3].startswith("lanes=1099511627776 needs ")


def test_rack_sizes_the_layer_checks_match_the_native_rack():
    chain = fxgrad.Chain([fxgrad.load("fxgrad:Gain", channels=1), fxgrad.load("fxgrad:Compressor", channels=1)])
    for strategy in ("lockstep", "replay", "snapshot"):
        for estimator in ("two-sided", "one-sided", "fd"):
            if strategy == "lockstep" and estimator == "one-sided":
                continue
            layer = PluginLayer(chain, 1, perturbations=3, strategy=strategy, estimator=estimator, threads=1)
            assert chains_per_lane(strategy, estimator, 3, chain.num_parameters) == layer.rack.evaluators_per_lane + 1


def test_threads_the_os_refuses_are_one_clear_error(tmp_path):
    """Worker threads the OS will not start raised std::system_error ("Resource temporarily
    unavailable") or aborted the process. Here the address space for their stacks runs out
    (RLIMIT_AS), past the layer's own checks."""
    out = python(
        tmp_path,
        """
        import resource, fxgrad
        from fxgrad import _native
        chain = fxgrad.Chain([fxgrad.load("fxgrad:Gain", channels=1)])
        mapped = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmSize:"))
        resource.setrlimit(resource.RLIMIT_AS, (mapped + (96 << 20), resource.RLIM_INFINITY))
        try:
            _native.Rack(chain, 1, 0.01, 1, "lockstep", "two-sided", 0, 64, 0)
            print("BUILT")
        except RuntimeError as error:
            print(error)
        resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        print("after:", _native.Rack(chain, 2, 0.01, 1, "lockstep", "two-sided", 0, 2, 0).threads)
    """,
        timeout=60,
    )
    refused, after = out.splitlines()
    assert refused.startswith("out of threads: the OS refused worker thread ") and "use fewer threads" in refused, out
    assert after == "after: 2"


def test_forked_children_raise_at_once_and_exit_cleanly(tmp_path):
    """A child forked after plugins were loaded waited for ever in _native (load, clone)."""
    out = python(
        tmp_path,
        """
        import gc, os, sys
        import numpy as np, fxgrad
        from fxgrad import _native
        plugin = fxgrad.load("fxgrad:Gain", channels=1)
        plugin.set("gain_db", 6.0)
        chain = fxgrad.Chain([plugin.clone()])
        rack = _native.Rack(chain, 2, 0.01, 1, "lockstep", "two-sided", 0, 2, 0)
        x = np.ones((1, 256), np.float32)
        pid = os.fork()
        if pid == 0:
            calls = {"load": lambda: fxgrad.load("fxgrad:Gain", channels=1), "clone": plugin.clone,
                     "process": lambda: plugin.process(x), "scan": fxgrad.scan, "state": lambda: plugin.state,
                     "rack": lambda: rack.forward(np.full((2, 1), 0.5, np.float32), np.ones((2, 1, 1024), np.float32))}
            for name, call in calls.items():
                try:
                    call()
                    print(name, "WORKED")
                except RuntimeError as error:
                    print(name, "refused:", "'spawn'" in str(error))
            sys.stdout.flush()
            del plugin, chain, rack   # freeing what the parent made must not hang either
            gc.collect()
            sys.exit(0)               # nor must the normal exit (fxgrad's atexit shutdown)
        _, status = os.waitpid(pid, 0)
        print("child exit", os.waitstatus_to_exitcode(status))
        print("parent still works:", round(float(plugin.process(x)[0, -1]), 3), chain.clone().num_parameters)
    """,
        timeout=60,
    )
    for name in ("load", "clone", "process", "scan", "state", "rack"):
        assert f"{name} refused: True" in out, out
    assert "child exit 0" in out and "parent still works: 1.995 1" in out, out


def test_dataloader_workers(tmp_path):
    """A torch DataLoader with workers forks by default on Linux: a dataset holding a plugin
    now fails at once saying to use 'spawn', and with 'spawn' it works (a plugin pickles as a
    fresh load of the same plugin with its state)."""
    out = python(
        tmp_path,
        """
        import numpy as np, torch, fxgrad

        class Rendered(torch.utils.data.Dataset):
            def __init__(self, plugin):
                self.plugin = plugin
            def __len__(self):
                return 4
            def __getitem__(self, i):
                return torch.from_numpy(self.plugin.process(np.full((1, 256), 0.1 * (i + 1), np.float32)))

        if __name__ == "__main__":
            plugin = fxgrad.load("fxgrad:Gain", channels=1)
            plugin.set("gain_db", -6.0)
            data = Rendered(plugin)
            expected = torch.stack([data[i] for i in range(len(data))])
            try:
                list(torch.utils.data.DataLoader(data, batch_size=2, num_workers=2))
                print("fork WORKED")
            except RuntimeError as error:
                print("fork refused:", "multiprocessing_context=\\"spawn\\"" in str(error))
            spawned = torch.cat(list(torch.utils.data.DataLoader(data, batch_size=2, num_workers=1,
                                                                 multiprocessing_context="spawn")))
            print("spawn equal:", torch.equal(spawned, expected))
    """,
        timeout=120,
    )
    assert "fork refused: True" in out and "spawn equal: True" in out, out


# --- silent garbage: the host ---------------------------------------------------------------------


def test_sizes_must_be_whole_numbers_in_range():
    for option, value in (("block_size", 256.7), ("channels", 1.9), ("block_size", True), ("channels", "2")):
        with pytest.raises(TypeError, match=rf"{option} must be an integer, got {value!r}"):
            fxgrad.load("fxgrad:Gain", **{option: value})
    with pytest.raises(ValueError, match=r"block_size must be between 1 and 65536, got 1099511627776"):
        fxgrad.load("fxgrad:Gain", block_size=2**40)
    with pytest.raises(ValueError, match=r"channels must be between 1 and 32, got 1099511627776"):
        fxgrad.load("fxgrad:Gain", channels=2**40)
    assert fxgrad.load("fxgrad:Gain", block_size=256.0, channels=np.int64(1)).block_size == 256
    plugin = fxgrad.load("fxgrad:Gain", channels=1)
    with pytest.raises(ValueError, match=r"index 1099511627776 out of range for 'FxgradGain' \(2 parameters\)"):
        plugin.set(2**40, 0.0)
    with pytest.raises(ValueError, match="parameter index -1 out of range"):
        plugin.get(-1)
    with pytest.raises(TypeError, match="str.*or index"):
        plugin.set(True, 0.0)
    plugin.set(np.int64(1), 3.0)
    assert plugin.get("gain_db") == pytest.approx(3.0)


def test_nul_inside_an_identifier_is_refused():
    with pytest.raises(ValueError, match=r"plugin identifier contains a NUL character at position 14"):
        fxgrad.load("urn:zamaudio:Z\0amComp")
    with pytest.raises(ValueError, match="NUL"):
        fxgrad.load("fxgrad:Gain", plugin="x\0y")
    with pytest.raises(ValueError, match="scan path contains a NUL"):
        fxgrad.scan(["/usr\0/lib"], include_own=False)


def test_integer_and_bool_audio_raise_type_error():
    plugin = fxgrad.load("fxgrad:Gain", channels=1)
    chain = fxgrad.Chain([plugin])
    for dtype in (np.int16, np.int32, np.bool_, np.float16, np.complex64):
        with pytest.raises(TypeError, match="float32"):
            plugin.process(np.zeros((1, 64), dtype))
        with pytest.raises(TypeError, match="float32"):
            chain.process(np.zeros((1, 64), dtype))
    layer = PluginLayer(chain, 2, threads=1)
    x, theta = torch.zeros(2, 1, 1024), torch.full((2, 1), 0.5)
    for bad in (x.short(), x.int(), x.bool(), x.to(torch.complex64)):
        with pytest.raises(TypeError, match=rf"x must be a floating-point tensor .* got {bad.dtype}"):
            layer(bad, theta)
    with pytest.raises(TypeError, match="theta must be a floating-point tensor"):
        layer(x, theta.long())
    assert layer(x.double(), theta).dtype == torch.float64  # other float types are fine


@needs(MONOSYNTH)
def test_a_plugin_without_audio_input_is_refused_as_an_effect():
    with pytest.raises(fxgrad.PluginLoadError, match=r"'Calf Monosynth' has no audio input .* hosts audio effects"):
        fxgrad.load(MONOSYNTH)


def test_layer_arguments_are_checked():
    chain = fxgrad.Chain([fxgrad.load("fxgrad:Gain", channels=1)])
    for kwargs, error, words in (
        (dict(lanes=2.5), TypeError, "lanes must be an integer, got 2.5"),
        (dict(lanes=True), TypeError, "lanes must be an integer"),
        (dict(lanes=0), ValueError, "lanes must be at least 1, got 0"),
        (dict(threads=0), ValueError, "threads must be at least 1"),
        (dict(perturbations=1.5), TypeError, "perturbations must be an integer"),
        (dict(seed=-1), ValueError, r"seed must be in \[0, 2\*\*64\)"),
        (dict(replay_samples=-5), ValueError, "replay_samples must be >= 0"),
        (dict(eps=1e-9), ValueError, r"eps must be in \[2\*\*-16 = 1.53e-05, 0.5\) .* got 1e-09"),
        (dict(eps=float("nan")), ValueError, "eps must be in"),
        (dict(eps="0.01"), TypeError, "eps must be a number"),
    ):
        with pytest.raises(error, match=words):
            PluginLayer(chain, **{"lanes": 1, **kwargs})


@pytest.mark.parametrize("estimator", ["two-sided", "one-sided", "fd"])
def test_the_smallest_eps_gives_finite_gradients(estimator):
    """eps=1e-9 gave NaN gradients for every estimator: theta +- eps rounded to theta."""
    chain = fxgrad.Chain([fxgrad.load("fxgrad:Gain", channels=1)])
    layer = PluginLayer(chain, 2, eps=MIN_EPS, estimator=estimator, strategy="replay", threads=1)
    theta = torch.tensor([[0.3], [0.999999]], requires_grad=True)
    x = torch.from_numpy(np.random.default_rng(1).standard_normal((2, 1, 1024)).astype(np.float32))
    layer(x, theta).pow(2).sum().backward()
    assert torch.isfinite(theta.grad).all() and (theta.grad > 0).all(), theta.grad


# --- silent garbage and unclear errors: training and the CLI --------------------------------------


def write_clips(folder, count, seconds=0.5, target_gain=0.5, seed=0):
    """count clips of noise in folder/input and (times target_gain) in folder/target."""
    rng = np.random.default_rng(seed)
    for sub in ("input", "target"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for k in range(count):
        x = (rng.standard_normal(int(seconds * SR)) * 0.2).astype(np.float32)
        soundfile.write(folder / "input" / f"clip{k}.wav", x, SR, subtype="FLOAT")
        soundfile.write(folder / "target" / f"clip{k}.wav", x * np.float32(target_gain), SR, subtype="FLOAT")
    return folder


def folder_config(tmp_path, clips, name="run", **sections):
    """The tests' tiny training config on the clips of a folder, one lane, 4 steps of 2 per epoch."""
    raw = tiny_raw(tmp_path, **sections)
    raw["data"] = {"train": str(clips)}
    raw["output_dir"] = str(tmp_path / name)
    raw["spsa"] = {"lanes": 1, "threads": 1}
    raw["train"].update(steps=4, steps_per_epoch=2, checkpoint_every=100)
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values)
    return raw


def write_yaml(path, raw):
    path.write_text(yaml.safe_dump(raw))
    return path


def run_main(*argv):
    """``fxgrad ARGV`` in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def main_error(*argv, code=1):
    """The CLI's promise, in this process: exit status ``code`` and one 'fxgrad: ...' line."""
    status, out, err = run_main(*argv)
    return one_line_error(subprocess.CompletedProcess(argv, status, out, err), code)


@pytest.fixture(scope="module")
def one_clip_run(tmp_path_factory):
    """A finished `fxgrad train` on a training set of one clip (so no validation split)."""
    root = tmp_path_factory.mktemp("one-clip")
    data = write_clips(root / "data", 1)
    config = write_yaml(root / "run.yaml", folder_config(root, data))
    code, out, err = run_main("train", config, "--no-progress")
    assert code == 0, out + err
    return root, config, out


def test_without_validation_clips_best_pt_follows_the_training_loss_and_says_so(one_clip_run):
    """'0 validation clips ... best validation loss 0.14271': that was the training loss."""
    root, _, out = one_clip_run
    assert "no validation clips" in out and "each epoch's mean training loss" in out
    assert "best epoch training loss" in out and "validation loss" not in out
    assert (root / "run" / BEST).is_file()


def test_checkpoint_checksums_are_verified_by_apply_evaluate_and_resume(one_clip_run, tmp_path):
    """Sign bits flipped in a weight record of best.pt: `fxgrad apply` exited 0 with other curves."""
    root, config, _ = one_clip_run
    damaged = tmp_path / "best.pt"
    data = bytearray((root / "run" / BEST).read_bytes())
    state = torch.load(root / "run" / BEST, weights_only=True)
    weight = next(t for k, t in state["model"].items() if t.dtype == torch.float32 and t.numel() >= 8)
    raw = weight.numpy().tobytes()
    at = bytes(data).index(raw[:32])
    for k in range(8):  # the sign bits of eight float32 weights
        data[at + 4 * k + 3] ^= 0x80
    damaged.write_bytes(bytes(data))
    assert torch.load(damaged, weights_only=True)["format"] == "fxgrad-checkpoint"  # torch reads it without a word
    clip = root / "data" / "input" / "clip0.wav"
    out = tmp_path / "out.wav"
    line = main_error("apply", damaged, clip, out)
    assert "is damaged: its content does not match the checksum" in line and not out.exists()
    line = main_error("evaluate", damaged, root / "data")
    assert "is damaged" in line
    run = tmp_path / "run"
    run.mkdir()
    (run / CHECKPOINT).write_bytes(bytes(data))
    raw_config = yaml.safe_load(config.read_text())
    raw_config["output_dir"] = str(run)
    with pytest.raises(Exception, match="is damaged"):
        Trainer(Config.from_dict(raw_config), resume=True, progress=False)


def test_apply_renders_a_very_short_input(one_clip_run, tmp_path):
    """A 22-sample input failed with a torch padding error after OUT was written."""
    root, _, _ = one_clip_run
    short = tmp_path / "short.wav"
    soundfile.write(short, np.linspace(-0.5, 0.5, 22).astype(np.float32), SR, subtype="FLOAT")
    assert run_main("apply", root / "run" / BEST, short, tmp_path / "short_out.wav")[0] == 0
    rendered, rate = soundfile.read(tmp_path / "short_out.wav")
    assert rate == SR and rendered.shape == (22,) and np.isfinite(rendered).all()
    assert (tmp_path / "short_out.png").is_file() and (tmp_path / "short_out.params.csv").is_file()


def test_apply_writes_nothing_when_an_input_is_bad(one_clip_run, tmp_path):
    root, _, _ = one_clip_run
    clip = root / "data" / "input" / "clip0.wav"
    line = main_error(
        "apply", root / "run" / BEST, clip, tmp_path / "o.wav", "--reference-params", tmp_path / "missing.csv"
    )
    assert "missing.csv" in line
    assert list(tmp_path.iterdir()) == []


def test_unusable_devices_are_one_line_errors(one_clip_run, tmp_path):
    root, config, _ = one_clip_run
    clip = root / "data" / "input" / "clip0.wav"
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    line = main_error("apply", root / "run" / BEST, clip, tmp_path / "o.wav", "--device", f"cuda:{count}")
    assert f"device 'cuda:{count}'" in line and not (tmp_path / "o.wav").exists()
    line = main_error("train", config, "--output", tmp_path / "r", "--set", f"device=cuda:{count}")
    assert f"device 'cuda:{count}'" in line and not (tmp_path / "r").exists()
    line = main_error("evaluate", root / "run" / BEST, root / "data", "--device", "nonsense")
    assert "device 'nonsense' is not a torch device" in line


@pytest.mark.parametrize(
    "override, code, words",
    [
        (
            "encoder.options={stem_channels: 8, blocks: 3}",
            2,
            "encoder.options: backbone 'inception' takes no option 'blocks'; it takes: stem_channels, block_channels",
        ),
        ("train.lr=.inf", 2, "train.lr must be a finite number, got inf"),
        ("train.grad_clip=.nan", 2, "train.grad_clip must be a finite number, got nan"),
        ("spsa.eps=1e-9", 1, "spsa: eps must be in [2**-16"),
        ("spsa.threads=100000", 1, "spsa: threads=100000 is more than this machine can run"),
    ],
)
def test_bad_settings_stop_before_anything_is_written(one_clip_run, tmp_path, override, code, words):
    root, config, _ = one_clip_run
    line = main_error("train", config, "--output", tmp_path / "r", "--set", override, code=code)
    assert words in line
    assert not (tmp_path / "r").exists()


def test_a_second_run_into_a_folder_in_use_is_refused(one_clip_run, tmp_path):
    """Two `fxgrad train` into one folder both exited 0 and left it mixed from both runs."""
    root, config, _ = one_clip_run
    raw = yaml.safe_load(config.read_text())
    raw["output_dir"] = str(tmp_path / "run")
    path = write_yaml(tmp_path / "c.yaml", raw)
    first = Trainer(Config.load(path), progress=False)  # holds the folder until it finishes
    files = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "run").iterdir()}
    assert (tmp_path / "run" / LOCK).read_text().strip() == str(os.getpid())
    line = one_line_error(cli(tmp_path, "train", path, "--overwrite"))
    assert f"is in use by another run (PID {os.getpid()}" in line
    assert "in use by another run" in main_error("train", path, "--no-progress")
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "run").iterdir()} == files
    first.fit()  # releases it
    assert (tmp_path / "run" / LOCK).read_text() == ""
    assert run_main("train", path, "--resume", "--no-progress", "--set", "train.steps=5")[0] == 0


def test_a_loss_that_is_not_finite_stops_before_any_checkpoint(tmp_path):
    """A target of 1e30 passed validation and failed later naming the symptom."""
    data = write_clips(tmp_path / "data", 2, target_gain=1e30)
    config = Config.from_dict(folder_config(tmp_path, data, data={"valid_split": 0.0}))
    trainer = Trainer(config, progress=False)
    with pytest.raises(
        TrainingError,
        match=r"train step 1: the loss is (inf|nan) \(loss.type=delay_invariant\); the "
        r"target frames peak at \d\.\d+e\+(29|30) .*nothing was saved",
    ):
        trainer.fit()
    assert not (tmp_path / "run" / CHECKPOINT).exists() and not (tmp_path / "run" / BEST).exists()


def test_a_gradient_that_is_not_finite_stops_the_step_naming_the_settings(tmp_path):
    """eps=1e-9 through the CLI wrote a checkpoint with 61 non-finite tensors before it stopped."""
    data = write_clips(tmp_path / "data", 2)
    config = Config.from_dict(folder_config(tmp_path, data, data={"valid_split": 0.0}, train={"checkpoint_every": 1}))
    trainer = Trainer(config, progress=False)
    weight = next(trainer.encoder.parameters())
    steps = []
    trainer.callbacks.append(lambda t, record: steps.append(record["step"]))
    # From step 3 on, a numerically broken model: one weight's gradient turns NaN.
    weight.register_hook(lambda grad: grad * math.nan if len(steps) >= 2 else grad)
    before = None

    def remember(t, record):
        nonlocal before
        before = {k: v.detach().clone() for k, v in t.encoder.named_parameters()}

    trainer.callbacks.append(remember)
    with pytest.raises(
        TrainingError,
        match=r"train step 3: the encoder's gradient is nan \(spsa.eps=0.01, "
        r"spsa.estimator=two-sided, .*train.lr=0.001.*optimiser step was not "
        r"applied",
    ):
        trainer.fit()
    for key, value in trainer.encoder.named_parameters():
        assert torch.equal(value, before[key]), key
    from fxgrad.train.checkpoint import load_checkpoint

    saved = load_checkpoint(tmp_path / "run" / CHECKPOINT)
    assert saved["step"] == 2 and all(torch.isfinite(t).all() for t in saved["model"].values() if t.is_floating_point())


# --- property-based: clear exception or correct output ---------------------------------------------

ERRORS = (TypeError, ValueError, fxgrad.PluginOutputError)
# Subnormals are left out of the drawn floats: a plugin library built with -ffast-math, loaded by
# an earlier scan, may have set flush-to-zero for the whole process (hypothesis refuses then).
# The audio values include one explicitly.
GAIN_DB = -3.0


@pytest.fixture(scope="module")
def gain():
    plugin = fxgrad.load("fxgrad:Gain", channels=1, block_size=64)
    plugin.set("gain_db", GAIN_DB)
    return plugin


audio_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=False, width=32),
    st.sampled_from([0.0, 1e38, -3e38, 1e-45]),
)


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    dtype=st.sampled_from(["float32", "float64", "int16", "bool", "float16"]),
    shape=st.one_of(
        st.tuples(st.integers(0, 3), st.integers(0, 300)),
        st.tuples(st.integers(0, 300)),
        st.tuples(st.just(1), st.just(1), st.integers(0, 10)),
    ),
    values=st.lists(audio_values, min_size=1, max_size=8),
    transpose=st.booleans(),
)
def test_property_process_gives_a_clear_error_or_the_right_output(gain, dtype, shape, values, transpose):
    size = int(np.prod(shape))
    flat = np.resize(np.asarray(values, np.float64), size)
    with np.errstate(all="ignore"):
        audio = flat.reshape(shape).astype(dtype)
    if transpose and audio.ndim == 2:
        audio = np.ascontiguousarray(audio.T).T  # the same values, not C-contiguous
    gain.reset()
    try:
        out = gain.process(audio)
    except ERRORS as error:
        assert str(error)
        return
    assert dtype == "float32" and audio.shape == out.shape and audio.shape[0] == 1
    expected = audio.astype(np.float64) * 10 ** (GAIN_DB / 20)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-30)


@pytest.fixture(scope="module")
def states():
    """(plugin, its state) for two formats, and a state of another plugin."""
    lv2 = fxgrad.load("fxgrad:Compressor", channels=1)
    lv2.set("threshold_db", -30.0)
    vst3 = fxgrad.load("fxgrad:Compressor/vst3", channels=1)
    vst3.set("threshold_db", -30.0)
    return {"lv2": (lv2, lv2.state), "vst3": (vst3, vst3.state), "other": fxgrad.load("fxgrad:Gain").state}


@settings(max_examples=80, deadline=None, derandomize=True, database=None)
@given(
    which=st.sampled_from(["lv2", "vst3"]),
    edit=st.sampled_from(["truncate", "flip", "insert", "splice", "random", "other"]),
    position=st.floats(0, 1, allow_subnormal=False),
    byte=st.integers(0, 255),
    junk=st.binary(max_size=64),
)
def test_property_load_state_refuses_anything_but_a_valid_state(states, which, edit, position, byte, junk):
    plugin, good = states[which]
    at = int(position * (len(good) - 1))
    blob = {
        "truncate": good[:at],
        "flip": good[:at] + bytes([good[at] ^ (byte or 1)]) + good[at + 1 :],
        "insert": good[:at] + junk + good[at:],
        "splice": good[:at] + junk + good[at + len(junk) :],
        "random": junk,
        "other": states["other"],
    }[edit]
    try:
        plugin.load_state(blob)
    except ERRORS as error:
        assert str(error).startswith("load_state: ")
        assert plugin.state == good, "a refused state must leave the plugin as it was"
        return
    assert blob == good, f"accepted a changed state ({edit} at {at})"


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(
    lanes=st.one_of(st.integers(-1, 3), st.floats(-1, 3, allow_subnormal=False), st.booleans(), st.just(2**70)),
    eps=st.one_of(
        st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=False),
        st.sampled_from([1e-9, MIN_EPS, 0.01, 0.49]),
    ),
    perturbations=st.one_of(st.integers(0, 3), st.just(10**9)),
    estimator=st.sampled_from(["two-sided", "one-sided", "fd", "bogus"]),
    strategy=st.sampled_from(["lockstep", "replay", "snapshot"]),
    dtype=st.sampled_from([torch.float32, torch.float64, torch.int16, torch.bool]),
    samples=st.sampled_from([0, 64, 100, 128]),
    theta=st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=False, width=32),
)
def test_property_plugin_layer_gives_a_clear_error_or_a_gradient(
    gain, lanes, eps, perturbations, estimator, strategy, dtype, samples, theta
):
    try:
        layer = PluginLayer(
            gain, lanes, eps=eps, perturbations=perturbations, estimator=estimator, strategy=strategy, threads=1
        )
    except ERRORS as error:
        assert str(error)
        return
    assert float(lanes).is_integer() and not isinstance(lanes, bool) and 1 <= lanes <= 3
    assert MIN_EPS <= eps < 0.5 and 1 <= perturbations <= 3
    x = torch.full((int(lanes), 1, samples), 0.25).to(dtype)
    parameters = torch.full((int(lanes), 1), theta, requires_grad=True)
    try:
        y = layer(x, parameters)
        y.float().pow(2).sum().backward()
    except ERRORS as error:
        assert str(error)
        return
    assert dtype in (torch.float32, torch.float64) and samples in (64, 128) and 0 <= theta <= 1
    assert y.shape == x.shape and torch.isfinite(parameters.grad).all()


def test_the_native_match_loss_refuses_what_does_not_fit():
    from fxgrad import _native

    reference = np.zeros((2, 4096), np.float32)
    window = np.hanning(512).astype(np.float32)
    weighting = np.ones(257, np.float32)
    with pytest.raises(ValueError, match=r"window must be shaped \(fft_size,\)"):
        _native.SpectralDistance(reference, [(512, 256, window[:100])], weighting, 1e-4)
    with pytest.raises(ValueError, match="even FFT size"):
        _native.SpectralDistance(reference, [(512, 0, window)], weighting, 1e-4)
    with pytest.raises(ValueError, match="one value per rfft bin"):
        _native.SpectralDistance(reference, [(512, 256, window)], weighting[:10], 1e-4)
    with pytest.raises(ValueError, match="floor"):
        _native.SpectralDistance(reference, [(512, 256, window)], weighting, 0.0)
    bad = reference.copy()
    bad[1, 7] = np.inf
    with pytest.raises(ValueError, match="reference holds NaN"):
        _native.SpectralDistance(bad, [(512, 256, window)], weighting, 1e-4)
    loss = _native.SpectralDistance(reference, [(512, 256, window)], weighting, 1e-4, threads=2)
    with pytest.raises(ValueError, match="outputs"):
        loss.evaluate(np.zeros((3, 1, 4096), np.float32))
    with pytest.raises(TypeError):
        loss.evaluate(np.zeros((3, 2, 4096), np.float64))
    assert loss.threads == 2 and (loss.channels, loss.samples) == (2, 4096)
