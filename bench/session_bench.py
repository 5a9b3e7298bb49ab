"""How close an Ardour session's headless export comes to fxgrad's own render, per automation
mode and plugin format: fxgrad's demo chain (its Compressor -> its ParametricEQ, 22,050 Hz mono,
frames of 1024) on generated program material, the threshold and high-shelf gain automated per
frame like a model's raw predictions (slow curves plus frame-to-frame jitter).

    .venv/bin/python bench/session_bench.py                     # 10 s, LV2 and VST3, steps and linear
    .venv/bin/python bench/session_bench.py --seconds 4 --formats lv2 --modes steps

Each row writes a session (``fxgrad.io.session.write_session``), exports it with
``ardour7-export`` and compares it with ``render_automation`` of the same chain: the largest
sample difference (dB re the render's peak), the RMS of the difference (dB re the render's RMS)
and the multi-resolution STFT error (fxgrad.nn.metrics.mrstft_error; 0 for identical audio).
A static row (no automation) shows the plugins themselves render alike in both hosts.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fxgrad  # noqa: E402
from fxgrad.host.render import frame_count, render_automation  # noqa: E402
from fxgrad.io.session import compare_renders, export_to_array, write_session  # noqa: E402
from fxgrad.nn.metrics import mrstft_error  # noqa: E402

RATE, FRAME = 22050, 1024
PINNED = {"0.ratio": 6.0, "0.attack_ms": 5.0, "0.release_ms": 80.0, "0.knee_db": 6.0, "1.high_shelf_freq_hz": 3000.0}


def demo_chain(fmt: str) -> dict:
    suffix = "" if fmt == "lv2" else "/vst3"
    return {
        "plugins": [f"fxgrad:Compressor{suffix}", f"fxgrad:ParametricEQ{suffix}"],
        "learned": ["0.threshold_db", "1.high_shelf_gain_db"],
        "pinned": PINNED,
        "sample_rate": RATE,
        "channels": 1,
        "block_size": 256,
    }


def automation(frames: int, jitter: float, rng: np.random.Generator) -> np.ndarray:
    from gradient_fidelity import smooth_trajectory

    curves = smooth_trajectory(frames, 2, FRAME / RATE, rng)
    return np.clip(curves + jitter * rng.standard_normal(curves.shape), 0, 1).astype(np.float32)


def row(fmt: str, mode: str, audio: np.ndarray, thetas, folder: Path) -> str:
    config = demo_chain(fmt)
    chain = fxgrad.Chain.from_config(config)
    started = time.perf_counter()
    if thetas is None:
        chain.set_learned(np.array([0.5, 0.7], np.float32))
        reference = chain.clone().process(audio)
        session = write_session(folder / f"{fmt}-static", audio, chain)
    else:
        reference = render_automation(fxgrad.Chain.from_config(config), audio, thetas, FRAME)
        session = write_session(folder / f"{fmt}-{mode}", audio, chain, thetas, FRAME, automation=mode)
    exported = export_to_array(session)[:1]
    seconds = time.perf_counter() - started
    figures = compare_renders(reference, exported)
    mrstft = mrstft_error(exported, reference[:, : exported.shape[1]])
    shown = "identical" if figures["max_abs"] == 0 else f"{figures['max_db']:7.1f} dB"
    error = "-" if figures["max_abs"] == 0 else f"{figures['error_db']:7.1f} dB"
    return f"{fmt:5} {mode:7} {shown:>11} {error:>11} {mrstft:10.2e} {seconds:7.1f} s"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--jitter", type=float, default=0.02, help="frame-to-frame noise, normalised (default 0.02)")
    parser.add_argument("--formats", default="lv2,vst3")
    parser.add_argument("--modes", default="static,steps,linear")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from gradient_fidelity import program_material

    rng = np.random.default_rng(args.seed)
    audio = program_material(args.seconds, RATE, args.seed)
    thetas = automation(frame_count(audio.shape[1], FRAME), args.jitter, rng)
    print(f"{args.seconds:g} s of program material at {RATE} Hz, frames of {FRAME}, jitter {args.jitter}")
    print(f"{'format':5} {'mode':7} {'max |diff|':>11} {'RMS error':>11} {'MRSTFT':>10} {'time':>9}")
    with tempfile.TemporaryDirectory(prefix="fxgrad-session-bench-") as folder:
        for fmt in args.formats.split(","):
            for mode in args.modes.split(","):
                print(row(fmt, mode, audio, None if mode == "static" else thetas, Path(folder)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
