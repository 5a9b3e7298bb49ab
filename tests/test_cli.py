"""The fxgrad command: scan/info output, clear errors for bad configs, python -m fxgrad, and
Ctrl-C during training writing a checkpoint before exiting."""

import copy
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from fxgrad.cli import main
from fxgrad.train.checkpoint import load_checkpoint

sys.path.insert(0, str(Path(__file__).parent))
from test_train import tiny_raw  # noqa: E402

torch.set_num_threads(1)


def run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_scan_prints_a_table_including_fxgrads_own_plugins(capsys):
    code, out, _ = run_cli(capsys, "scan")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["format", "name", "vendor", "identifier", "ins/outs", "notes"]
    assert set(lines[1]) <= {"-", " "}
    own = [line.split() for line in lines if "fxgrad:Compressor" in line]
    assert sorted((o[0], o[3], o[-1]) for o in own) == [
        ("LV2", "fxgrad:Compressor", "2/2"),
        ("VST3", "fxgrad:Compressor/vst3", "2/2"),
    ]
    assert any("http://calf.sourceforge.net/plugins/Compressor" in line for line in lines)
    assert lines[-1].endswith("--all lists them")  # MIDI-only plugins are left out


def test_info_lists_every_parameter_with_ranges(capsys):
    code, out, _ = run_cli(capsys, "info", "fxgrad:Compressor", "--sample-rate", "22050")
    assert code == 0
    assert out.startswith("FxgradCompressor (LV2) by fxgrad")
    header = next(line for line in out.splitlines() if line.startswith("id "))
    assert header.split() == ["id", "name", "unit", "min", "max", "default", "log", "steps/choices", "notes"]
    threshold = next(line for line in out.splitlines() if line.startswith("threshold_db "))
    assert "-60" in threshold and "-20" in threshold and "dB" in threshold
    assert "toggle" in next(line for line in out.splitlines() if line.startswith("enabled "))

    code, out, _ = run_cli(capsys, "info", "urn:zamaudio:ZamComp", "--json")
    described = json.loads(out)
    ratio = next(p for p in described["parameters"] if p["id"] == "rat")
    assert (ratio["min"], ratio["max"], ratio["log"]) == (1.0, 20.0, True)


def test_info_runs_without_importing_torch(run_python):
    """The host commands start fast and work where torch is not installed (a wheel without it;
    make wheel-check runs `fxgrad scan` there too)."""
    result = run_python("""
        import sys
        from fxgrad.cli import main
        assert main(["info", "fxgrad:Gain"]) == 0
        print("torch imported:", "torch" in sys.modules)
    """)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("torch imported: False")


def test_info_on_a_missing_plugin_is_a_clear_error(capsys):
    code, _, err = run_cli(capsys, "info", "urn:fxgrad:no-such-plugin")
    assert code == 1
    assert err.startswith("fxgrad: error:") and "urn:fxgrad:no-such-plugin" in err


def write_config(tmp_path, raw, name="bad.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw))
    return str(path)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda r: r["train"].update(stpes=10), "unknown key 'train.stpes' (did you mean 'steps'?)"),
        (lambda r: r.update(learning_rate=1), "unknown key 'learning_rate'"),
        (lambda r: r["train"].update(lr="fast"), "train.lr must be a number, got 'fast'"),
        (lambda r: r["spsa"].update(lanes=2.5), "spsa.lanes must be an integer, got 2.5"),
        (lambda r: r["train"].update(pipeline="yes"), "train.pipeline must be true or false, got 'yes'"),
        (lambda r: r["spsa"].update(strategy="fast"), "spsa.strategy must be one of 'lockstep', 'replay', 'snapshot'"),
        (lambda r: r["chain"].pop("plugins"), "chain.plugins is required"),
        (lambda r: r["chain"].update(block_size=300), "chain.block_size (300) must divide frame_size (512)"),
        (lambda r: r.update(data={"train": "/no/such/folder"}), "data.train: /no/such/folder must be a folder holding"),
        (
            lambda r: r.update(data={"train": {"input": "/no/such/in", "target": "/no/such/out"}}),
            "input folder does not exist",
        ),
        (lambda r: r["chain"].update(plugins=["urn:fxgrad:missing"]), "urn:fxgrad:missing"),
        (lambda r: r["chain"].update(learned=["0.threshold_db", "0.no_such_parameter"]), "no_such_parameter"),
    ],
)
def test_bad_configs_fail_with_a_clear_message(tmp_path, capsys, mutate, message):
    raw = tiny_raw(tmp_path)
    mutate(raw)
    code, _, err = run_cli(capsys, "train", write_config(tmp_path, raw), "--no-progress")
    assert code in (1, 2), err
    assert message in err, err
    assert "Traceback" not in err


def test_missing_config_and_bad_yaml(tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", str(tmp_path / "nope.yaml"))
    assert code == 2 and "no such config file" in err
    broken = tmp_path / "broken.yaml"
    broken.write_text("train: [unclosed\n")
    code, _, err = run_cli(capsys, "train", str(broken))
    assert code == 2 and "cannot parse" in err
    code, _, err = run_cli(capsys, "train", write_config(tmp_path, tiny_raw(tmp_path)), "--set", "train.steps")
    assert code == 2 and "key.subkey=value" in err


def test_set_overrides_and_yaml_numbers_written_as_text(tmp_path):
    from fxgrad.config import Config

    raw = tiny_raw(tmp_path)
    raw["train"]["lr"] = "1e-4"  # YAML 1.1 reads this as a string; accepted as a number
    config = Config.load(write_config(tmp_path, raw), ["train.steps=7", "spsa.eps=2e-3"])
    assert config.train.lr == 1e-4 and config.train.steps == 7 and config.spsa.eps == 2e-3


def test_python_dash_m_fxgrad_runs_the_cli():
    result = subprocess.run([sys.executable, "-m", "fxgrad", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for command in ("scan", "info", "train", "fit-static", "evaluate", "apply", "demo"):
        assert command in result.stdout


def test_python_dash_m_fxgrad_cli_is_the_same_command():
    helps = [
        subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=60)
        for module in ("fxgrad", "fxgrad.cli")
    ]
    assert [h.returncode for h in helps] == [0, 0]
    assert helps[0].stdout == helps[1].stdout


def test_ctrl_c_during_training_writes_a_checkpoint_then_resume_continues(tmp_path):
    raw = tiny_raw(tmp_path, train={"steps": 100000, "steps_per_epoch": 100000, "checkpoint_every": 100000})
    config = write_config(tmp_path, raw, "long.yaml")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "fxgrad", "train", config, "--no-progress"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    log = Path(raw["output_dir"]) / "log.csv"
    deadline = time.time() + 60
    while time.time() < deadline and (not log.is_file() or len(log.read_text().splitlines()) < 4):
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, out + err
    assert "SIGINT received at train step" in err
    # the hint repeats the command line as given (its --output and --set name the run), plus --resume
    assert f"resume with: {shlex.join(['fxgrad', 'train', str(config), '--no-progress', '--resume'])}" in err
    state = load_checkpoint(Path(raw["output_dir"]) / "checkpoint.pt")
    assert state["step"] >= 3
    rows = log.read_text().splitlines()
    assert int(rows[-1].split(",")[1]) == state["step"]

    more = copy.deepcopy(raw)
    more["train"]["steps"] = state["step"] + 2
    code = main(["train", write_config(tmp_path, more, "more.yaml"), "--resume", "--no-progress"])
    assert code == 0
    assert load_checkpoint(Path(raw["output_dir"]) / "checkpoint.pt")["step"] == state["step"] + 2
