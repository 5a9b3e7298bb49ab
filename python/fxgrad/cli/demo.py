"""``fxgrad demo``: the whole method end to end on a fresh machine, in a few minutes on 2 cores.

1. Generate synthetic clips and render their targets through fxgrad's own Compressor ->
   ParametricEQ while a hidden hand rides the threshold (following the material's level) and
   the high-shelf gain (following its tone) (:mod:`fxgrad.data.synth`).
2. Train the encoder through the real plugins with SPSA (:class:`fxgrad.train.Trainer`).
3. Fit the best static setting with the same optimiser (:func:`fxgrad.train.fit_static`).
4. Evaluate on held-out clips against unprocessed / defaults / best static
   (:func:`fxgrad.evaluation.evaluate.evaluate`).
5. Render one held-out clip with the model's automation: audio, parameter CSV and plot.
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from ..base.text import format_table
from ..config.shipped import config_path


def find_demo_config(path: Optional[str] = None) -> Path:
    """The demo's config: ``path``, or the shipped ``demo.yaml`` (in the package, so that an
    installed wheel runs the demo with no source tree)."""
    found = config_path(path or "demo")
    if not found.is_file():
        raise FileNotFoundError(f"cannot find the demo config {found}; pass --config PATH")
    return found


def run_demo(
    config_path: Optional[str] = None,
    output: Optional[str] = None,
    overrides: Sequence[str] = (),
    progress: bool = True,
) -> int:
    """Run the demo with the config at ``config_path`` (:func:`find_demo_config`), print its
    summary and return the exit status: 0 when the model beats the best static setting on
    MFCC and MRSTFT error, else 1."""
    import torch

    from ..config.schema import Config

    if "OMP_NUM_THREADS" not in os.environ:
        # The demo's encoder is tiny: one thread is as fast as two on a 2-core machine whose
        # cores also run the plugins, and keeps the printed figures reproducible.
        torch.set_num_threads(1)
    started = time.perf_counter()
    path = find_demo_config(config_path)
    config = Config.load(path, overrides)
    if output:
        config.output_dir = output
    print(
        f"fxgrad demo ({path}): learn to automate {' -> '.join(str(p) for p in config.chain.plugins)} "
        f"({', '.join(config.chain.learned or [])}) from audio, through the real plugins, with SPSA gradients"
    )
    timings: Dict[str, float] = {}
    outcome = _run_steps(config, progress, timings)
    return _summarise(outcome, timings, time.perf_counter() - started)


def _run_steps(config, progress: bool, timings: Dict[str, float]) -> Dict[str, Any]:
    """The four steps, each one's seconds in ``timings``; returns what the summary reports."""
    from ..evaluation.apply import apply_file
    from ..evaluation.evaluate import SMOOTHING_DEFAULT, evaluate, resolve_smoothing
    from ..train import BEST, CHECKPOINT, Trainer, fit_static

    run_dir = config.run_dir
    print("\n[1/4] training (synthetic clips with a hidden automation are generated first)")
    mark = time.perf_counter()
    trainer = Trainer(config, overwrite=True, progress=progress)
    summary = trainer.fit()
    timings["train"] = time.perf_counter() - mark
    del trainer

    print("\n[2/4] fitting the best static setting with the same SPSA optimiser")
    mark = time.perf_counter()
    static = fit_static(config, progress=progress)
    timings["fit-static"] = time.perf_counter() - mark
    print(
        "  "
        + ", ".join(
            f"{n} = {p:.4g} {u}".rstrip() for n, p, u in zip(static["parameters"], static["plain"], static["units"])
        )
    )

    print("\n[3/4] evaluating on the held-out clips")
    mark = time.perf_counter()
    checkpoint = run_dir / BEST if (run_dir / BEST).is_file() else run_dir / CHECKPOINT
    test_dir = Path(config.data.synthetic.folder) if config.data.synthetic.folder else run_dir / "data"
    test_dir = test_dir / "test"
    # Smoothed as evaluate and apply smooth by default: the setting the validation clips prefer.
    smoothing = resolve_smoothing(checkpoint, SMOOTHING_DEFAULT, progress=progress)
    result = evaluate(checkpoint, test_dir, static=static["path"], progress=progress, smoothing=smoothing)
    timings["evaluate"] = time.perf_counter() - mark

    print("\n[4/4] rendering a held-out clip with the predicted automation")
    mark = time.perf_counter()
    clip = sorted((test_dir / "input").glob("*.wav"))[0]
    paths = apply_file(
        checkpoint,
        clip,
        run_dir / "demo_output.wav",
        target_path=test_dir / "target" / clip.name,
        reference_params=test_dir / "params" / f"{clip.stem}.csv",
        smoothing=smoothing,
    )
    timings["render"] = time.perf_counter() - mark
    files = [
        ("checkpoint", checkpoint),
        ("training log", run_dir / "log.csv"),
        ("static settings", static["path"]),
        ("evaluation", result["path"]),
        ("input clip", clip),
        ("target clip", test_dir / "target" / clip.name),
        ("model output", paths["audio"]),
        ("parameters", paths["params"]),
        ("plot", paths["plot"]),
    ]
    return {"summary": summary, "result": result, "files": files}


def _summarise(outcome: Dict[str, Any], timings: Dict[str, float], total: float) -> int:
    """Print the evaluation, the margins, the times and the files; 0 when the model beat the
    best static setting on MFCC and MRSTFT error, else 1 (with a line on stderr)."""
    from ..evaluation.evaluate import METRIC_TITLES, METRICS, margin, margins, report

    summary, result = outcome["summary"], outcome["result"]
    print("\n" + "=" * 78)
    print("fxgrad demo: summary")
    print("=" * 78)
    print(report(result))
    systems = result["systems"]
    gains = {m: margin(systems["model"][m], systems["best static"][m]) for m in METRICS}
    print("")
    texts = margins(systems)
    print(format_table(["model vs best static", "margin"], [[METRIC_TITLES[m], texts[m]] for m in METRICS], align="lr"))
    print("")
    print(
        f"trained {summary['step']} steps ({summary['epoch']} epochs), best {summary['best_by']} "
        f"{summary['best_loss']:.4g}; times: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
        + f"; total {total:.0f} s"
    )
    print("files:")
    for label, file in outcome["files"]:
        print(f"  {label:<16} {file}")
    beaten = gains["mfcc_cosine"] > 0 and gains["mrstft"] > 0
    if not beaten or any(math.isnan(v) for v in gains.values()):
        print("fxgrad demo: the model did NOT beat the best static setting on MFCC and MRSTFT error", file=sys.stderr)
        return 1
    print(
        f"the model beats the best static setting: MFCC distance {gains['mfcc_cosine']:+.1f}%, "
        f"MRSTFT error {gains['mrstft']:+.1f}%"
    )
    return 0
