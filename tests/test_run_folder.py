"""The run folder under a clumsy or hostile user (issue 26): links planted where the trainer
writes are never followed, stale temporaries are cleared, a folder holding a run is never
overwritten unasked, a start that fails leaves nothing behind, and --resume accepts the changes
the fault-budget message recommends (a pinned value, a larger budget)."""

import os
import sys
from pathlib import Path

import pytest
import torch

from fxgrad.base.files import FolderLock, append_no_follow, atomic_write_bytes, temporary_name
from fxgrad.config import Config
from fxgrad.train import BEST, CHECKPOINT, FAULTS, LOCK, LOG, PLUGIN_LOG, Trainer, TrainingError
from fxgrad.train.checkpoint import CheckpointError, load_checkpoint

sys.path.insert(0, str(Path(__file__).parent))
from test_train import tiny_raw  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("run-folder-data")


def config(tmp_path, data_dir, **sections):
    sections.setdefault("train", {}).setdefault("steps", 2)
    return Config.from_dict(tiny_raw(tmp_path, data_dir, **sections))


@pytest.mark.parametrize("name", [LOCK, FAULTS, PLUGIN_LOG, LOG, "config.yaml", CHECKPOINT])
def test_a_link_planted_in_the_run_folder_is_never_followed(tmp_path, data_dir, name):
    precious = tmp_path / "precious.txt"
    precious.write_text("another program's file\n")
    cfg = config(tmp_path, data_dir)
    cfg.run_dir.mkdir(parents=True)
    (cfg.run_dir / name).symlink_to(precious)
    for resume in (False, True):
        with pytest.raises(TrainingError, match=f"{name} is a symbolic link"):
            Trainer(cfg, resume=resume, progress=False)
    assert precious.read_text() == "another program's file\n"
    assert (cfg.run_dir / name).is_symlink()


def test_the_run_folder_s_writers_refuse_links_themselves(tmp_path):
    """Defence in depth, for a link planted after the trainer's check: the lock, the appended
    logs and the atomic writes open without following links."""
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me\n")
    (tmp_path / LOCK).symlink_to(precious)
    with pytest.raises(OSError, match="symbolic link"):
        FolderLock(tmp_path, LOCK)
    (tmp_path / FAULTS).symlink_to(precious)
    with pytest.raises(OSError, match="symbolic link"):
        append_no_follow(tmp_path / FAULTS)
    # A link where the temporary file goes, and one at the destination: neither is written through.
    (tmp_path / temporary_name(CHECKPOINT)).symlink_to(precious)
    (tmp_path / BEST).symlink_to(precious)
    atomic_write_bytes(tmp_path / CHECKPOINT, b"new")
    atomic_write_bytes(tmp_path / BEST, b"newer")
    assert precious.read_text() == "keep me\n"
    assert (tmp_path / CHECKPOINT).read_bytes() == b"new" and not (tmp_path / CHECKPOINT).is_symlink()
    assert (tmp_path / BEST).read_bytes() == b"newer" and not (tmp_path / BEST).is_symlink()


def test_stale_temporaries_of_a_killed_write_are_cleared_at_start(tmp_path, data_dir):
    cfg = config(tmp_path, data_dir)
    cfg.run_dir.mkdir(parents=True)
    stale = [f".{CHECKPOINT}.tmp-99999", f".{BEST}.tmp-4", f".{LOG}.tmp-123"]
    for name in stale:
        (cfg.run_dir / name).write_bytes(b"half a checkpoint")
    (cfg.run_dir / ".notes.tmp-1").write_text("not ours")
    Trainer(cfg, progress=False).close()
    left = set(os.listdir(cfg.run_dir))
    assert not left & set(stale), left
    assert ".notes.tmp-1" in left


def test_a_folder_holding_a_run_is_not_overwritten_unasked(tmp_path, data_dir):
    cfg = config(tmp_path, data_dir)
    cfg.run_dir.mkdir(parents=True)
    (cfg.run_dir / BEST).write_bytes(b"the best model of an earlier run")
    with pytest.raises(TrainingError, match="already holds best.pt"):
        Trainer(cfg, progress=False)
    with pytest.raises(TrainingError, match="holds best.pt but no checkpoint.pt"):
        Trainer(cfg, resume=True, progress=False)
    (cfg.run_dir / CHECKPOINT).mkdir()
    with pytest.raises(TrainingError, match="checkpoint.pt is not a checkpoint file but a folder"):
        Trainer(cfg, resume=True, progress=False)
    assert (cfg.run_dir / BEST).read_bytes() == b"the best model of an earlier run"
    (cfg.run_dir / CHECKPOINT).rmdir()
    Trainer(cfg, overwrite=True, progress=False).close()  # asked: it may
    assert not (cfg.run_dir / BEST).exists()


def test_a_start_that_fails_after_opening_the_folder_leaves_nothing(tmp_path, data_dir):
    # Clips of 0.75 s hold 33 frames of 512 samples: no clip is long enough, an error found
    # only once the data is read, after the plugin layer was built and the folder locked.
    cfg = config(tmp_path, data_dir, data={"min_clip_frames": 1000})
    with pytest.raises(TrainingError, match="no clip has at least 1000 frames"):
        Trainer(cfg, progress=False)
    assert not cfg.run_dir.exists()
    cfg.run_dir.mkdir()
    (cfg.run_dir / "mine.txt").write_text("a user's file")
    with pytest.raises(TrainingError):
        Trainer(cfg, progress=False)
    assert os.listdir(cfg.run_dir) == ["mine.txt"]


def test_a_checkpoint_of_random_bytes_gets_a_one_line_error(tmp_path):
    path = tmp_path / CHECKPOINT
    path.write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(path)
    assert "not an fxgrad checkpoint" in str(error.value) and "\n" not in str(error.value)


def test_resume_accepts_a_pinned_value_and_a_larger_fault_budget(tmp_path, data_dir):
    cfg = config(tmp_path, data_dir)
    Trainer(cfg, progress=False).fit()
    raw = tiny_raw(tmp_path, data_dir, train={"steps": 3})
    raw["chain"]["pinned"]["0.ratio"] = 4.0  # "chain.pinned.0.ratio: 6.0 -> 4.0"
    raw["spsa"].update(max_faults=5000, max_faults_per_minute=100, timeout_s=5)
    summary = Trainer(Config.from_dict(raw), resume=True, progress=False).fit()
    assert summary["step"] == 3
    raw["chain"]["pinned"]["0.attack_ms"] = 2.0
    raw["chain"]["plugins"].append("fxgrad:Gain")  # a structural change is still refused
    with pytest.raises(TrainingError, match="cannot resume"):
        Trainer(Config.from_dict(raw), resume=True, progress=False)
