"""Fixtures shared by fxgrad's tests: seeded noise and a fresh-interpreter runner."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def noise():
    """``noise(channels=2, seconds=1.0, level_db=-10.0, seed=0, sample_rate=44100)``: white
    Gaussian noise as float32 ``(channels, samples)`` with the given RMS level in dBFS."""

    def make(channels=2, seconds=1.0, level_db=-10.0, seed=0, sample_rate=44100):
        samples = int(round(seconds * sample_rate))
        x = np.random.default_rng(seed).standard_normal((channels, samples)) * 10 ** (level_db / 20)
        return x.astype(np.float32)

    return make


@pytest.fixture
def run_python(tmp_path):
    """``run_python(code, timeout=120)``: runs ``code`` in a fresh interpreter (the one running
    the tests) in a temporary folder and returns the CompletedProcess (text stdout/stderr)."""

    def run(code, timeout=120):
        script = tmp_path / "script.py"
        script.write_text(textwrap.dedent(code))
        return subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    return run
