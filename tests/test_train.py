"""The trainer on tiny runs through fxgrad's own Compressor -> ParametricEQ: streaming and lane
resets as the trainer sees them, resume, atomic checkpoints, DDP on CPU, the pipelined mode,
pretraining/progressive stages, and apply/evaluate on a tiny checkpoint."""

import copy
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from fxgrad.config import Config
from fxgrad.train import (
    CHECKPOINT,
    Trainer,
    TrainingError,
    TrainingInterrupted,
    build_chain,
    read_log,
)
from fxgrad.train import checkpoint as checkpoint_module
from fxgrad.train.averaging import WeightAverage
from fxgrad.train.checkpoint import CheckpointError, load_checkpoint
from fxgrad.train.files import BEST

torch.set_num_threads(1)

TINY = {
    "name": "tiny",
    "seed": 3,
    "sample_rate": 22050,
    "channels": 1,
    "frame_size": 512,
    "chain": {
        "plugins": ["fxgrad:Compressor", "fxgrad:ParametricEQ"],
        "learned": ["0.threshold_db", "1.high_shelf_gain_db"],
        "pinned": {"0.ratio": 6.0, "0.attack_ms": 5.0, "1.high_shelf_freq_hz": 3000.0},
        "block_size": 128,
    },
    "data": {
        "synthetic": {
            "train_clips": 5,
            "valid_clips": 2,
            "test_clips": 2,
            "seconds": 0.75,
            "knot_seconds": 0.5,
            "hidden": {
                "0.threshold_db": {"curve": "level", "from": -46, "to": -18},
                "1.high_shelf_gain_db": {"curve": "tone", "from": 9, "to": -9},
            },
        }
    },
    "encoder": {
        "context": 2048,
        "n_fft": 512,
        "hop": 128,
        "n_mels": 16,
        "options": {"stem_channels": 8, "block_channels": [8]},
    },
    "spsa": {"lanes": 3, "threads": 1},
    "train": {
        "steps": 12,
        "steps_per_epoch": 6,
        "lr": 1e-3,
        "log_every": 1,
        "checkpoint_every": 4,
        "resume_preroll": 0.5,
        "tensorboard": False,
    },
    "fit_static": {"steps": 10, "lr": 0.05},
}


def tiny_raw(tmp_path, data_dir=None, **sections):
    raw = copy.deepcopy(TINY)
    raw["output_dir"] = str(tmp_path / "run")
    # Every test shares one data folder per session so clips are generated once.
    raw["data"]["synthetic"]["folder"] = str(data_dir or tmp_path / "data")
    for section, values in sections.items():
        if isinstance(values, dict):
            raw.setdefault(section, {}).update(values)
        else:
            raw[section] = values
    return raw


def tiny_config(tmp_path, data_dir=None, **sections):
    return Config.from_dict(tiny_raw(tmp_path, data_dir, **sections))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tiny-data")


def losses(run_dir, phase="train"):
    return [(int(r["step"]), float(r["loss"])) for r in read_log(Path(run_dir) / "log.csv") if r["phase"] == phase]


class Spy:
    """Stands in for the trainer's PluginLayer and records what reaches it, in order."""

    def __init__(self, layer):
        self.layer = layer
        self.events = []

    def __call__(self, frame, theta):
        self.events.append(("forward", frame.clone()))
        return self.layer(frame, theta)

    def reset_lanes(self, mask, preroll=None):
        self.events.append(("reset", torch.as_tensor(np.asarray(mask)).clone()))
        return self.layer.reset_lanes(mask, preroll)

    def __getattr__(self, name):
        return getattr(self.layer, name)


def test_trainer_streams_consecutive_frames_and_resets_lanes_on_clip_change(tmp_path, data_dir):
    config = tiny_config(tmp_path, data_dir, train={"steps": 40, "steps_per_epoch": 100})
    trainer = Trainer(config, progress=False)
    spy = trainer.layer = trainer.frame_step.layer = Spy(trainer.layer)
    batches = []
    streamer_next = trainer.streamer.__next__

    class Recording:
        def __next__(self):
            batch = streamer_next()
            batches.append(batch)
            return batch

        def state_dict(self):
            return trainer.streamer_real.state_dict()

    trainer.streamer_real = trainer.streamer
    trainer.streamer = Recording()
    trainer.fit()

    assert len(batches) == 40
    # Per step: reset (when a lane changed clip) strictly before the forward of that step's frame.
    forwards = [i for i, e in enumerate(spy.events) if e[0] == "forward"]
    assert len(forwards) == 40
    for step, batch in enumerate(batches):
        torch.testing.assert_close(spy.events[forwards[step]][1], batch.frame)
        before = spy.events[forwards[step - 1] + 1 if step else 0 : forwards[step]]
        if batch.reset.any():
            assert len(before) == 1 and before[0][0] == "reset"
            assert torch.equal(before[0][1], batch.reset)
        else:
            assert before == []
    # Each lane sees its clip's frames in order; a new clip starts at frame 0 with a reset.
    lanes = config.spsa.lanes
    dataset = trainer.splits.train
    for lane in range(lanes):
        for step, batch in enumerate(batches):
            clip, index = int(batch.clip_index[lane]), int(batch.frame_index[lane])
            if step == 0 or clip != int(batches[step - 1].clip_index[lane]) or index == 0:
                assert bool(batch.reset[lane]) and index == 0
            else:
                assert not bool(batch.reset[lane]) and index == int(batches[step - 1].frame_index[lane]) + 1
            audio = dataset[clip][0][:, index * 512 : (index + 1) * 512]
            torch.testing.assert_close(batch.frame[lane, :, : audio.shape[-1]], audio)
    assert any(bool(b.reset.any()) for b in batches[1:]), "the run should include a clip change"


def test_resume_continues_like_an_uninterrupted_run(tmp_path, data_dir):
    whole = tiny_config(tmp_path / "whole", data_dir)
    Trainer(whole, progress=False).fit()
    reference = losses(whole.run_dir)
    assert [s for s, _ in reference] == list(range(1, 13))

    split = tiny_config(tmp_path / "split", data_dir)
    stop_at = 5

    def stop(trainer, record):
        if record["step"] == stop_at:
            trainer.request_stop("test stop")

    with pytest.raises(TrainingInterrupted, match="test stop at train step 5"):
        Trainer(split, progress=False, callbacks=[stop]).fit()
    state = load_checkpoint(split.run_dir / CHECKPOINT)
    assert state["step"] == stop_at and state["ranks"][0]["layer_step"] == stop_at
    with pytest.raises(TrainingError, match="--resume"):
        Trainer(split, progress=False)
    resumed = Trainer(split, resume=True, progress=False)
    assert resumed.step == stop_at
    resumed.fit()
    continued = losses(split.run_dir)
    assert [s for s, _ in continued] == list(range(1, 13))  # rows past the checkpoint are not duplicated
    before, after = np.array(reference)[:, 1], np.array(continued)[:, 1]
    np.testing.assert_array_equal(before[:stop_at], after[:stop_at])
    # The resumed lanes are warmed up (preroll + re-rendered frames), not given their exact DSP state.
    np.testing.assert_allclose(after[stop_at:], before[stop_at:], rtol=0.01)
    final_a = load_checkpoint(whole.run_dir / CHECKPOINT)["model"]
    final_b = load_checkpoint(split.run_dir / CHECKPOINT)["model"]
    for key in final_a:  # Adam moves a weight by up to lr (1e-3) per step whatever its gradient's size
        torch.testing.assert_close(final_a[key].float(), final_b[key].float(), rtol=0.01, atol=5e-3)


def test_the_weights_average_is_what_validation_measures_best_pt_holds_and_resume_continues(tmp_path, data_dir):
    """train.ema_decay: validation, checkpoints' model and best.pt are the moving average of the
    weights after each step; a resumed run goes on from the raw weights and the average."""
    decay = 0.8
    sections = dict(train={"ema_decay": decay, "steps": 12, "steps_per_epoch": 4})
    after_step, averaged_after = [], []

    def keep(trainer, record):
        if record["phase"] == "train":
            after_step.append({k: v.detach().clone() for k, v in trainer.encoder.state_dict().items()})
            averaged_after.append(
                {k: v.detach().clone() for k, v in trainer.average.module(trainer.encoder).state_dict().items()}
            )

    whole = tiny_config(tmp_path / "whole", data_dir, **sections)
    trainer = Trainer(whole, progress=False, callbacks=[keep])
    trainer.fit()
    expected = dict(after_step[0])
    for weights in after_step[1:]:
        for key, value in weights.items():
            if value.is_floating_point():
                expected[key] = torch.lerp(expected[key], value, 1 - decay)
    state = load_checkpoint(whole.run_dir / CHECKPOINT)
    assert state["averaging"]["steps"] == 12
    floats = [k for k, v in expected.items() if v.is_floating_point()]
    for key in floats:
        torch.testing.assert_close(state["model"][key], expected[key], rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(state["averaging"]["raw_model"][key], after_step[-1][key], rtol=0, atol=0)
    assert any(not torch.equal(state["model"][k], after_step[-1][k]) for k in floats)
    # The last epoch ended at the last step: its validation ran the average, not the raw weights.
    averaged = trainer.validate()
    assert averaged == trainer.history[-1]["valid_loss"]
    trainer.average = WeightAverage(trainer.encoder, 0.0)  # none: the raw weights
    assert trainer.validate() != averaged
    trainer.close()
    best = load_checkpoint(whole.run_dir / BEST)
    epoch = min(trainer.history, key=lambda h: h["valid_loss"])["epoch"]
    assert best["averaging"]["steps"] == 4 * epoch
    for key in floats:  # best.pt: the average as of the best epoch's end
        assert torch.equal(best["model"][key], averaged_after[4 * epoch - 1][key])

    split = tiny_config(tmp_path / "split", data_dir, **sections)

    def stop(trainer, record):
        if record["step"] == 5:
            trainer.request_stop("test stop")

    with pytest.raises(TrainingInterrupted):
        Trainer(split, progress=False, callbacks=[stop]).fit()
    Trainer(split, resume=True, progress=False).fit()
    resumed = load_checkpoint(split.run_dir / CHECKPOINT)
    assert resumed["averaging"]["steps"] == 12
    for key in floats:  # as test_resume_continues_like_an_uninterrupted_run allows
        torch.testing.assert_close(resumed["model"][key], state["model"][key], rtol=0.01, atol=5e-3)


def test_keyboard_interrupt_inside_a_step_saves_the_last_complete_step(tmp_path, data_dir):
    """A KeyboardInterrupt that lands inside a step (a second Ctrl-C, or no signal handler
    outside the main thread) saves the state of the last complete step; resuming redraws the
    interrupted step's batch."""
    whole = tiny_config(tmp_path / "whole", data_dir, train={"steps": 8, "steps_per_epoch": 100})
    Trainer(whole, progress=False).fit()
    config = tiny_config(tmp_path / "split", data_dir, train={"steps": 8, "steps_per_epoch": 100})
    trainer = Trainer(config, progress=False)
    forward = trainer.layer.forward
    calls = []

    def interrupting_forward(x, theta):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return forward(x, theta)

    trainer.layer.forward = interrupting_forward
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    assert load_checkpoint(config.run_dir / CHECKPOINT)["step"] == 3
    Trainer(config, resume=True, progress=False).fit()
    np.testing.assert_allclose(np.array(losses(config.run_dir))[:, 1], np.array(losses(whole.run_dir))[:, 1], rtol=0.01)


def test_time_limit_stops_after_the_step_that_passes_it_and_resume_continues(tmp_path, data_dir):
    config = tiny_config(tmp_path, data_dir, train={"steps": 12, "steps_per_epoch": 100, "max_seconds": 2.0})

    def slow(trainer, record):
        if record["step"] == 3:
            time.sleep(2.1)

    summary = Trainer(config, progress=False, callbacks=[slow]).fit()
    assert summary["out_of_time"] and summary["step"] == 3
    assert load_checkpoint(config.run_dir / CHECKPOINT)["step"] == 3
    # The steps since the last epoch were validated before the run stopped: there is a best.pt.
    assert summary["best_checkpoint"] is not None and len(summary["history"]) == 1
    longer = tiny_config(tmp_path, data_dir, train={"steps": 12, "steps_per_epoch": 100, "max_seconds": 600})
    summary = Trainer(longer, resume=True, progress=False).fit()
    assert summary["step"] == 12 and not summary["out_of_time"]
    assert [s for s, _ in losses(config.run_dir)] == list(range(1, 13))


def test_pretraining_takes_its_share_of_the_time_budget(tmp_path, data_dir):
    """With train.max_seconds, pretraining stops once it has used train.pretrain_share of it,
    training gets the rest (less what its closing validation takes) and ends with a best.pt;
    a resumed run does not go back to pretraining."""
    train = {"steps": 100000, "steps_per_epoch": 100000, "max_seconds": 3.0, "pretrain_steps": 100000}
    config = tiny_config(tmp_path, data_dir, train={**train, "pretrain_share": 0.2})
    trainer = Trainer(config, progress=False)
    started = time.monotonic()  # the budget counts from fit(), not from the set-up
    summary = trainer.fit()
    # The step and validation at the end, and a checkpoint; a busy 2-core machine slows them.
    assert time.monotonic() - started < 3.0 + 3.0
    rows = read_log(config.run_dir / "log.csv")
    pretrained = max(float(r["elapsed_s"]) for r in rows if r["phase"] == "pretrain")
    assert 0.1 < pretrained < 0.6 + 0.3, pretrained  # its steps (checkpoints come on top), within its 0.6 s
    assert summary["out_of_time"] and summary["step"] > 0 and summary["best_checkpoint"] is not None
    pretrain_steps = load_checkpoint(config.run_dir / CHECKPOINT)["pretrain_step"]
    assert 0 < pretrain_steps < 100000
    resumed = tiny_config(tmp_path, data_dir, train={**train, "pretrain_share": 0.2, "max_seconds": 1.0})
    again = Trainer(resumed, resume=True, progress=False).fit()
    assert load_checkpoint(config.run_dir / CHECKPOINT)["pretrain_step"] == pretrain_steps
    assert again["step"] > summary["step"]


def test_resume_refuses_a_structurally_different_config(tmp_path, data_dir):
    config = tiny_config(tmp_path, data_dir, train={"steps": 2})
    Trainer(config, progress=False).fit()
    changed = tiny_config(tmp_path, data_dir, train={"steps": 4}, spsa={"lanes": 2, "threads": 1})
    with pytest.raises(TrainingError, match=r"spsa\.lanes: 3 -> 2"):
        Trainer(changed, resume=True, progress=False)
    longer = tiny_config(tmp_path, data_dir, train={"steps": 4})  # more steps is fine
    assert Trainer(longer, resume=True, progress=False).fit()["step"] == 4


def test_resume_after_the_data_moved_needs_the_same_clips(tmp_path, data_dir):
    Trainer(tiny_config(tmp_path / "gen", data_dir, train={"steps": 1}), progress=False)  # makes the clips
    import shutil

    def explicit(root):
        raw = tiny_raw(tmp_path, data_dir, train={"steps": 4})
        raw["data"] = {split: str(root / split) for split in ("train", "valid")}
        return Config.from_dict(raw)

    first = tmp_path / "first"
    shutil.copytree(data_dir, first)
    Trainer(explicit(first), progress=False).fit()
    moved = tmp_path / "moved"
    shutil.move(first, moved)
    longer = explicit(moved)
    longer.train.steps = 6
    assert Trainer(longer, resume=True, progress=False).fit()["step"] == 6
    clip = sorted((moved / "train" / "input").iterdir())[0]
    clip.rename(clip.with_name("renamed" + clip.suffix))
    (moved / "train" / "target" / clip.name).rename(moved / "train" / "target" / ("renamed" + clip.suffix))
    with pytest.raises(TrainingError, match="not the run's"):
        Trainer(explicit(moved), resume=True, progress=False)


def test_crash_while_writing_a_checkpoint_keeps_the_previous_one(tmp_path, data_dir, monkeypatch):
    config = tiny_config(tmp_path, data_dir, train={"steps": 2})
    trainer = Trainer(config, progress=False)
    trainer.fit()
    path = config.run_dir / CHECKPOINT
    good = path.read_bytes()

    def partial_save(obj, handle, *args, **kwargs):
        handle.write(good[: len(good) // 3])
        handle.flush()
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(checkpoint_module.torch, "save", partial_save)
    trainer.step = 99
    with pytest.raises(OSError, match="simulated"):
        trainer.save()
    monkeypatch.undo()
    assert path.read_bytes() == good
    assert load_checkpoint(path)["step"] == 2
    assert not [p for p in config.run_dir.iterdir() if ".tmp-" in p.name]
    path.write_bytes(good[:100])  # a truncated file is reported clearly
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(path)


def test_pipelined_mode_overlaps_plugins_with_the_encoder(tmp_path, data_dir):
    """train.pipeline runs step t's plugins in a worker thread while the encoder computes step
    t+1's parameters. With both sides slowed by sleeps (which release the GIL, as the rack does),
    a pipelined step takes about the longer of the two, not their sum."""
    delay = 0.15  # long beside the step's own work, so that a loaded machine does not hide the overlap

    def timed(pipeline, folder):
        config = tiny_config(
            tmp_path / folder, data_dir, train={"steps": 6, "steps_per_epoch": 100, "pipeline": pipeline}
        )
        times = []
        trainer = Trainer(config, progress=False, callbacks=[lambda t, r: times.append(r["step_s"])])
        trainer.encoder.register_forward_pre_hook(lambda *_: time.sleep(delay))
        forward = trainer.layer.forward

        def slow_forward(x, theta):
            time.sleep(delay)
            return forward(x, theta)

        trainer.layer.forward = slow_forward
        trainer.fit()
        return float(np.mean(times[1:])), losses(config.run_dir)

    serial_time, serial = timed(False, "serial")
    pipelined_time, pipelined = timed(True, "pipelined")
    assert serial_time > 2 * delay
    assert pipelined_time < 0.8 * serial_time, (pipelined_time, serial_time)
    # The first step uses the same weights either way; later ones lag by one update.
    assert serial[0] == pipelined[0]
    assert np.all(np.isfinite([loss for _, loss in pipelined]))


def test_pipelined_run_resumes(tmp_path, data_dir):
    config = tiny_config(tmp_path, data_dir, train={"steps": 8, "pipeline": True})

    def stop(trainer, record):
        if record["step"] == 3:
            trainer.request_stop()

    with pytest.raises(TrainingInterrupted):
        Trainer(config, progress=False, callbacks=[stop]).fit()
    summary = Trainer(config, resume=True, progress=False).fit()
    assert summary["step"] == 8
    assert [s for s, _ in losses(config.run_dir)] == list(range(1, 9))


def test_pretraining_regresses_defaults_and_progressive_training_releases_plugins(tmp_path, data_dir):
    config = tiny_config(
        tmp_path, data_dir, train={"steps": 6, "pretrain_steps": 30, "pretrain_lr": 0.01, "progressive_steps": 3}
    )
    trainer = Trainer(config, progress=False)
    masks = []
    trainer.callbacks.append(lambda t, r: r["phase"] == "train" and masks.append(t.active_mask(r["step"] - 1).tolist()))
    trainer.fit()
    pretrain = losses(config.run_dir, "pretrain")
    assert len(pretrain) == 30 and pretrain[-1][1] < pretrain[0][1]
    assert masks == [[True, False]] * 3 + [[True, True]] * 3
    state = load_checkpoint(config.run_dir / CHECKPOINT)
    assert state["pretrain_step"] == 30 and state["active"] == [True, True]


def test_start_from_static_settings_pretrains_to_them_and_holds_unreleased_plugins_there(tmp_path, data_dir):
    config = tiny_config(
        tmp_path / "run",
        data_dir,
        train={"steps": 2, "pretrain_steps": 150, "pretrain_lr": 0.02, "progressive_steps": 10},
    )
    names = list(build_chain(config).learned)
    static = tmp_path / "static.json"
    static.write_text(json.dumps({"parameters": names, "normalised": [0.8, 0.15]}))
    config.train.start_from = str(static)
    trainer = Trainer(config, progress=False)
    trainer.fit()
    batch = next(iter(trainer.make_streamer(trainer.splits.train, stream=5)))
    with torch.no_grad():
        trainer.encoder.eval()
        theta = trainer.masked(trainer.encoder(batch.context))
    assert theta[:, 1].eq(0.15).all()  # the second plugin is not released yet: held at the static value
    assert abs(float(theta[:, 0].mean()) - 0.8) < 0.05
    # Evaluation's "plugin defaults" are the plugins' defaults, not the run's starting settings.
    from fxgrad.evaluation.evaluate import evaluate

    result = evaluate(config.run_dir / CHECKPOINT, Path(data_dir) / "test", static=static, progress=False)
    assert result["systems"]["plugin defaults"] != result["systems"]["best static"]
    defaults = np.asarray(build_chain(config).get_learned())
    hidden_error = np.asarray(result["parameter_mae"]["plugin defaults"])
    assert not np.allclose(hidden_error, np.asarray(result["parameter_mae"]["best static"]))
    assert defaults[1] != pytest.approx(0.15, abs=0.05)
    static.write_text(json.dumps({"parameters": names[::-1], "normalised": [0.8, 0.15]}))
    with pytest.raises(TrainingError, match="train.start_from: .*holds settings for"):
        Trainer(tiny_config(tmp_path / "other", data_dir, train={"start_from": str(static)}), progress=False)
    with pytest.raises(TrainingError, match="train.start_from: no such static settings file"):
        Trainer(
            tiny_config(tmp_path / "third", data_dir, train={"start_from": str(tmp_path / "none.json")}), progress=False
        )


@pytest.mark.parametrize("pipeline", [False, True], ids=["ddp", "ddp-pipelined"])
def test_ddp_on_two_cpu_processes(tmp_path, data_dir, pipeline):
    raw = tiny_raw(
        tmp_path, data_dir, train={"steps": 4, "steps_per_epoch": 2, "pipeline": pipeline, "pretrain_steps": 2}
    )
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(raw))
    Trainer(Config.from_dict(raw), progress=False).close()  # generates the data once, outside the ranks
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={port}",
        "-m",
        "fxgrad",
        "train",
        str(path),
        "--no-progress",
        "--overwrite",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "DDP: 2 ranks; encoder weights identical on every rank" in result.stdout + result.stderr
    state = load_checkpoint(Path(raw["output_dir"]) / CHECKPOINT)
    assert state["world_size"] == 2 and state["step"] == 4
    streams = [rank["stream"] for rank in state["ranks"]]
    assert streams[0]["order"] != streams[1]["order"] or streams[0]["lane_clip"] != streams[1]["lane_clip"]


def test_evaluation_margins_are_absolute_where_the_baseline_is_near_zero():
    from fxgrad.evaluation.evaluate import margins, report

    systems = {
        "model": {"mfcc_cosine": 0.002, "mrstft": 0.30, "loudness_lu": 0.95},
        "best static": {"mfcc_cosine": 0.006, "mrstft": 0.60, "loudness_lu": 0.0001},
        "plugin defaults": {"mfcc_cosine": 0.007, "mrstft": 0.7, "loudness_lu": 2.0},
        "unprocessed": {"mfcc_cosine": 0.008, "mrstft": 0.9, "loudness_lu": 4.0},
    }
    texts = margins(systems)
    assert texts == {"mfcc_cosine": "+66.7%", "mrstft": "+50.0%", "loudness_lu": "-0.9499 LU abs"}
    text = report({"systems": systems, "clips": [{}], "data": "clips"})
    assert "loudness err (LU) -0.9499 LU abs" in text and "under 1% of the unprocessed input's" in text


def test_apply_evaluate_and_fit_static_on_a_tiny_checkpoint(tmp_path, data_dir, capsys):
    from fxgrad.cli import main

    raw = tiny_raw(tmp_path, data_dir, train={"steps": 4})
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(raw))
    assert main(["train", str(config_path), "--no-progress"]) == 0
    assert main(["fit-static", str(config_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "0.threshold_db" in out and "static.json" in out
    run = Path(raw["output_dir"])
    test_dir = Path(raw["data"]["synthetic"]["folder"]) / "test"
    clip = sorted((test_dir / "input").glob("*.wav"))[0]
    output = tmp_path / "out" / "rendered.wav"
    capsys.readouterr()
    assert (
        main(["apply", str(run / CHECKPOINT), str(clip), str(output), "--target", str(test_dir / "target" / clip.name)])
        == 0
    )
    out = capsys.readouterr().out
    assert "input:" not in out and f"{output} (22050 Hz, 1 channel(s))" in out  # nothing converted
    # By default (auto) the automation is smoothed as the run's validation clips (not the test
    # clips) prefer: each candidate's score printed, the choice kept beside the checkpoint.
    valid_dir = Path(raw["data"]["synthetic"]["folder"]) / "valid"
    assert f"smoothing on {valid_dir} (MRSTFT err): none " in out and "one-pole:200" in out and "chosen: " in out
    kept = json.loads((run / "checkpoint.smoothing.json").read_text())
    assert kept["valid"] == str(valid_dir.resolve()) and set(kept["scores"]) >= {"none", "median:150"}
    import soundfile

    audio, rate = soundfile.read(output)
    assert rate == 22050 and len(audio) == soundfile.info(clip).frames
    rows = (tmp_path / "out" / "rendered.params.csv").read_text().splitlines()
    frames = int(np.ceil(len(audio) / 512))
    assert rows[0] == (
        "frame,time_s,0.threshold_db,1.high_shelf_gain_db,0.threshold_db [norm],1.high_shelf_gain_db [norm]"
    )
    assert len(rows) == frames + 1 and rows[2].startswith(f"1,{512 / 22050:.6f},")
    assert (tmp_path / "out" / "rendered.png").read_bytes()[:4] == b"\x89PNG"

    # A 44.1 kHz stereo file: apply says what it converts, and --source-rate writes 44.1 kHz.
    import soxr

    mono, _ = soundfile.read(clip, dtype="float32")
    stereo = soxr.resample(np.stack([mono, 0.5 * mono], axis=1), 22050, 44100)
    soundfile.write(tmp_path / "song.wav", stereo, 44100, subtype="FLOAT")
    capsys.readouterr()
    assert main(["apply", str(run / CHECKPOINT), str(tmp_path / "song.wav"), str(tmp_path / "song_out.flac")]) == 0
    out = capsys.readouterr().out
    assert "input:      resampled from 44100 Hz to 22050 Hz" in out
    assert "input:      downmixed from 2 channels to mono (their average)" in out
    assert "(22050 Hz, 1 channel(s); --source-rate writes 44100 Hz)" in out
    assert (tmp_path / "song_out.params.csv").is_file() and (tmp_path / "song_out.png").is_file()
    assert (
        main(
            [
                "apply",
                str(run / CHECKPOINT),
                str(tmp_path / "song.wav"),
                str(tmp_path / "song_src.wav"),
                "--source-rate",
            ]
        )
        == 0
    )
    assert "(44100 Hz, 1 channel(s))" in capsys.readouterr().out
    written, rate = soundfile.read(tmp_path / "song_src.wav")
    assert rate == 44100 and abs(len(written) - len(stereo)) <= 2

    capsys.readouterr()
    assert main(["evaluate", str(run / CHECKPOINT), str(test_dir), "--no-progress"]) == 0
    out = capsys.readouterr().out
    for system in ("model", "best static", "plugin defaults", "unprocessed"):
        assert system in out
    assert "model vs best static settings" in out and "parameter error" in out
    assert (run / "evaluation.json").is_file()
    # evaluate uses the choice apply made (and kept), the same way.
    assert f"smoothing: {kept['chosen']} (chosen on {valid_dir}, kept in " in out

    # Smoothing: a zero-length one leaves the automation as it is; auto again takes the kept choice.
    plain = json.loads((run / "evaluation.json").read_text())["systems"]["model"]
    assert main(["evaluate", str(run / CHECKPOINT), str(test_dir), "--smooth", "one-pole:0", "--no-progress"]) == 0
    smoothed = json.loads((run / "evaluation.json").read_text())["systems"]["model, smoothed"]
    assert smoothed == plain
    capsys.readouterr()
    assert main(["evaluate", str(run / CHECKPOINT), str(test_dir), "--smooth", "auto", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"smoothing: {kept['chosen']} (chosen on {valid_dir}, kept in " in out
    assert json.loads((run / "evaluation.json").read_text())["smoothing"] == (
        None if kept["chosen"] == "none" else kept["chosen"]
    )
    assert main(["evaluate", str(run / CHECKPOINT), str(test_dir), "--smooth", "cubic:10"]) != 0
    assert "fxgrad: error: smoothing kind must be one of" in capsys.readouterr().err

    # apply --smooth: the written automation moves less from frame to frame.
    def variation(csv_path):
        rows = np.loadtxt(csv_path, delimiter=",", skiprows=1)
        return np.abs(np.diff(rows[:, -2:], axis=0)).sum()

    smooth_out, raw_out = tmp_path / "out" / "smoothed.wav", tmp_path / "out" / "raw.wav"
    assert main(["apply", str(run / CHECKPOINT), str(clip), str(smooth_out), "--smooth", "one-pole:300"]) == 0
    assert main(["apply", str(run / CHECKPOINT), str(clip), str(raw_out), "--smooth", "none"]) == 0
    assert variation(smooth_out.with_suffix(".params.csv")) < variation(raw_out.with_suffix(".params.csv"))
