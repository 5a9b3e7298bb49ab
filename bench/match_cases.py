#!/usr/bin/env python3
"""Matching benchmark: which search strategy reaches the best loss with the fewest renders, and
the default (``fxgrad match --method auto``) against ST-ITO's loop, side by side.

Cases (CASES): chains of 1-3 plugins of every format (Calf, LSP, x42, guitarix, Zam LV2; caps
and Zam LADSPA; Zam VST2; Zam and fxgrad's own VST3; fxgrad's own LV2), on real audio
(bench/match_material.py: speech, music, a clean guitar, drums; 5 s at 44.1 kHz, mono unless a
case is stereo). The reference is the chain at hidden settings drawn uniformly in [0, 1] from
the seed (drawn again while the output would clip), written as a 16-bit file would hold it (so
that the best loss is not 0, as with any real reference). Every method starts from the chain's
own settings.

``--phase strategies``: each strategy (strategies(); fxgrad's renderer, the same batched loss)
on every case; per method, the renders and seconds it took to get within 1 % of the best loss
any method found on that case, its final loss, its parameter error (mean |found - hidden|,
normalised).

``--phase compare``: per case, in one process so both see the same load: ST-ITO's loop (CMA-ES,
population 32, up to 300 generations, pedalboard 0.9.26 in a multiprocessing pool of one
process per core, one render per task, the loss in the parent) on the cases pedalboard can load
(VST3), then ``fxgrad match`` itself (match_files, the default method) on every case: its wall
time and the renders / loss / other split it prints.

Results go to ``--out`` (one JSON per case, method and seed); ``--report`` reads them all and
prints the tables (bench/README.md, docs/matching.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

VST3 = "/usr/lib/vst3"
CALF, LSP, X42, GX = (
    "http://calf.sourceforge.net/plugins/",
    "http://lsp-plug.in/plugins/lv2/",
    "http://gareus.org/oss/lv2/",
    "http://guitarix.sourceforge.net/plugins/",
)


@dataclass(frozen=True)
class Case:
    name: str
    material: str
    plugins: Sequence[str]
    learned: Sequence[str]
    pinned: Dict[str, float] = field(default_factory=dict)
    channels: int = 1

    @property
    def vst3(self) -> bool:
        return all(p.endswith(".vst3") for p in self.plugins)

    def config(self, rate: int) -> Dict[str, Any]:
        import fxgrad

        own = Path(fxgrad.__file__).parent / "_plugins"  # fxgrad's own VST3 bundles, in place or installed
        return {
            "plugins": [str(own / p[len("own/") :]) if p.startswith("own/") else p for p in self.plugins],
            "learned": list(self.learned),
            "pinned": dict(self.pinned),
            "sample_rate": rate,
            "channels": self.channels,
            "block_size": 512,
        }


CASES = [
    Case("calf-comp/speech", "speech", [CALF + "Compressor"], ["threshold", "ratio", "attack", "release", "makeup"]),
    Case(
        "calf-eq5/music",
        "music",
        [CALF + "Equalizer5Band"],
        ["ls_freq", "p1_freq", "p1_q", "p2_freq", "hs_freq"],
        # Its levels are linear gains up to 64 (+36 dB): fixed, and the frequencies learned.
        {"ls_active": 1, "p1_active": 1, "p2_active": 1, "hs_active": 1}
        | {"ls_level": 2.0, "p1_level": 0.5, "p2_level": 2.0, "hs_level": 0.5},
        channels=2,
    ),
    Case("lsp-comp/drums", "drums", [LSP + "compressor_mono"], ["al", "at", "rt", "cr", "mk"]),
    Case(
        "lsp-comp+x42-eq/speech",
        "speech",
        [LSP + "compressor_mono", X42 + "fil4#mono"],
        ["0.al", "0.cr", "1.LSgain", "1.gain2", "1.HSgain"],
    ),
    Case("x42-eq/music", "music", [X42 + "fil4#stereo"], ["LSgain", "gain1", "freq1", "gain3", "HSgain"], channels=2),
    Case("x42-comp/speech", "speech", [X42 + "darc#mono"], ["inputgain", "threshold", "Ratio", "attack", "release"]),
    Case("gx-ts9/guitar", "guitar", [GX + "gxts9#ts9sim"], ["fslider0_", "fslider1_", "fslider2_"]),
    Case(
        "gx-comp/drums",
        "drums",
        [GX + "gx_compressor#_compressor"],
        ["RATIO", "KNEE", "THRESHOLD", "RELEASE", "ATTACK"],
    ),
    Case(
        "gx-ds1+calf-comp/guitar",
        "guitar",
        [GX + "gx_bossds1_#_bossds1_", CALF + "Compressor"],
        ["0.LEVEL", "0.TONE", "0.DRIVE", "1.threshold", "1.ratio"],
    ),
    Case("zam-comp-lv2/speech", "speech", ["urn:zamaudio:ZamComp"], ["att", "rel", "rat", "thr", "mak"]),
    Case("caps-amp/guitar", "guitar", ["/usr/lib/ladspa/caps.so#AmpVTS"], ["gain", "bright", "bass", "mid", "treble"]),
    Case(
        "caps-compress/drums",
        "drums",
        ["/usr/lib/ladspa/caps.so#Compress"],
        ["threshold", "strength", "attack", "release", "gain_db"],
    ),
    Case(
        "caps-tonestack+x42-eq/guitar",
        "guitar",
        ["/usr/lib/ladspa/caps.so#ToneStack", X42 + "fil4#mono"],
        ["0.bass", "0.mid", "0.treble", "1.HSgain"],
    ),
    Case(
        "zam-comp-ladspa/music",
        "music",
        ["/usr/lib/ladspa/ZamComp-ladspa.so"],
        ["attack", "release", "ratio", "threshold", "makeup"],
    ),
    Case(
        "zam-eq2-vst2/guitar",
        "guitar",
        ["/usr/lib/vst/ZamEQ2-vst.so"],
        ["boost_cut_l", "boost_cut_1", "frequency_1", "boost_cut_2", "boost_cut_h"],
    ),
    Case(
        "own-comp+eq-lv2/speech",
        "speech",
        ["fxgrad:Compressor", "fxgrad:ParametricEQ"],
        ["0.threshold_db", "0.ratio", "0.makeup_db", "1.low_shelf_gain_db", "1.high_shelf_gain_db"],
    ),
    Case(
        "own-tube+limiter-lv2/guitar",
        "guitar",
        ["fxgrad:TubeStage", "fxgrad:Limiter"],
        ["0.drive_db", "0.bias", "0.tone", "0.output_db", "1.ceiling_db"],
    ),
    Case(
        "zam-eq2-vst3/music",
        "music",
        [f"{VST3}/ZamEQ2.vst3"],
        ["boost_cut_l", "boost_cut_1", "frequency_1", "boost_cut_2", "boost_cut_h"],
    ),
    Case(
        "zam-comp-vst3/drums", "drums", [f"{VST3}/ZamComp.vst3"], ["attack", "release", "ratio", "threshold", "makeup"]
    ),
    Case(
        "zam-tube-vst3/guitar",
        "guitar",
        [f"{VST3}/ZamTube.vst3"],
        ["tube_drive", "bass", "mids", "treble", "input_level"],
    ),
    Case(
        "zam-eq2+comp-vst3/speech",
        "speech",
        [f"{VST3}/ZamEQ2.vst3", f"{VST3}/ZamComp.vst3"],
        ["0.boost_cut_l", "0.boost_cut_h", "1.ratio", "1.threshold", "1.makeup"],
    ),
    Case("zam-gate-vst3/drums", "drums", [f"{VST3}/ZamGate.vst3"], ["attack", "release", "threshold", "makeup"]),
    Case(
        "own-eq-vst3/music",
        "music",
        ["own/FxgradParametricEQ.vst3"],
        ["low_shelf_gain_db", "peak1_gain_db", "peak1_freq_hz", "peak2_gain_db", "high_shelf_gain_db"],
    ),
    Case(
        "own-comp-vst3/drums",
        "drums",
        ["own/FxgradCompressor.vst3"],
        ["threshold_db", "ratio", "attack_ms", "release_ms", "makeup_db"],
    ),
    Case(
        "own-tube+eq+zam-comp-vst3/guitar",
        "guitar",
        ["own/FxgradTubeStage.vst3", "own/FxgradParametricEQ.vst3", f"{VST3}/ZamComp.vst3"],
        ["0.drive_db", "0.tone", "1.low_shelf_gain_db", "1.high_shelf_gain_db", "2.threshold", "2.ratio"],
    ),
]


def sixteen_bit(audio: np.ndarray) -> np.ndarray:
    """``audio`` as a 16-bit PCM file holds it (rounded to 1/32768, clipped)."""
    return (np.clip(np.round(audio * 32768.0), -32768, 32767) / 32768.0).astype(np.float32)


@dataclass
class Prepared:
    case: Case
    config: Dict[str, Any]
    chain: Any
    audio: np.ndarray  # (C, N) input
    reference: np.ndarray  # (C, N)
    hidden: np.ndarray  # (P,)
    start: np.ndarray  # (P,) the chain's own settings


def prepare(case: Case, seed: int, rate: int, seconds: float, cache: Path) -> Prepared:
    from match_material import material

    import fxgrad
    from fxgrad.data.tasks._common import rng

    config = case.config(rate)
    chain = fxgrad.Chain.from_config(config)
    audio = material(case.material, seconds, rate, cache)
    audio = np.ascontiguousarray(audio if case.channels == 2 else audio.mean(axis=0, keepdims=True))
    draws = rng(seed, "match_cases", case.name)
    for _ in range(100):  # a setting whose output clips is drawn again: a reference peaks under 0 dBFS
        hidden = draws.uniform(0, 1, chain.num_parameters).astype(np.float32)
        rendered = fxgrad.render_batch(chain, hidden, audio)[0]
        if np.abs(rendered).max() < 1.0:
            break
    else:
        raise RuntimeError(f"{case.name}: 100 hidden settings drawn, every one clips")
    reference = sixteen_bit(rendered)
    start = np.asarray(chain.get_learned(), np.float32)
    return Prepared(case, config, chain, audio, reference, hidden, start)


# ---------------------------------------------------------------------------- the strategies


def strategies() -> Dict[str, Any]:
    """The strategies compared: ST-ITO's, fxgrad's former default and the candidates."""
    from dataclasses import replace

    from fxgrad.match.optimise import Plateau
    from fxgrad.match.strategy import AUTO, STITO, Strategy

    common = {"margin": 0.1, "sigma": 0.2, "plateau": Plateau()}  # cma's tolfunhist window
    return {
        s.name: s
        for s in [
            STITO,
            Strategy("cma32x30", population=32, sigma=0.1, iterations=30),  # fxgrad's former default
            Strategy("cma-inset", **common),
            Strategy("screen-polish", screen=4.0, polish=0.1, **common),
            Strategy("bipop", restarts=6, bipop=True, **common),
            Strategy("race4", screen=4.0, race=4, **common),
            Strategy("auto-r6", screen=4.0, restarts=6, **common),
            # restarts until two runs from different starts agree on the loss (within 0.5 %): they
            # agreed on the same local minimum too (zam-eq2-vst2)
            Strategy("agree-ipop", screen=4.0, restarts=6, agree=0.005, **common),
            Strategy("agree-bipop", screen=4.0, restarts=8, agree=0.005, bipop=True, **common),
            # a screen and IPOP restarts one run at a time, then a run from the best with a quarter of
            # the step on what the budget leaves (auto's strategy until 2026-12-08)
            Strategy("polish", screen=4.0, restarts=2, polish=0.25, **common),
            # the same with half the step throughout
            Strategy("s01-polish", screen=4.0, restarts=2, polish=0.25, **{**common, "sigma": 0.1}),
            # a screen, then IPOP (restarts from the screen's next best with twice the population),
            # two runs at a time (one batch per generation fills more render threads), a polish;
            # "polish" above is the same one run at a time (the default until 2026-12-08)
            AUTO,
            replace(AUTO, name="side3", side_by_side=3),  # three runs at a time
            # the former default with its restarts at the base population (no doubling)
            replace(AUTO, name="auto-same", grow=False, side_by_side=1),
            # two runs of the base population at a time, from the screen's four best starts
            Strategy("pair", screen=4.0, restarts=3, grow=False, side_by_side=2, polish=0.25, **common),
        ]
    }


def run_search(prepared: Prepared, strategy, seed: int, threads: int, max_renders: int, progress: bool):
    """One strategy on one case with fxgrad's renderer: the result row (see ``record``)."""
    from fxgrad.match.loss import MatchLoss
    from fxgrad.match.optimise import Objective, Progress, Search
    from fxgrad.match.strategy import run_strategy

    rate = int(prepared.config["sample_rate"])
    objective = Objective(prepared.chain, [prepared.audio], [MatchLoss(prepared.reference, rate, "aligned")], threads)
    objective(prepared.start[None])  # the renderer's instances made before the clock starts
    objective.renders = 0
    objective.render_seconds = objective.loss_seconds = 0.0
    search = Search(
        objective, len(prepared.start), max_renders, Progress(progress, f"{prepared.case.name} {strategy.name}")
    )
    notes = run_strategy(search, strategy, prepared.start, seed)
    seconds = time.perf_counter() - search.began
    return record(prepared, strategy.name, seed, threads, search, seconds, objective.render_seconds, notes) | {
        "loss_seconds": objective.loss_seconds
    }


def record(prepared: Prepared, method: str, seed: int, threads: int, search, seconds, render_seconds, notes):
    theta = np.asarray(search.best_theta, np.float64)
    return {
        "case": prepared.case.name,
        "method": method,
        "seed": seed,
        "threads": threads,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg()[0],
        "renders": search.renders,
        "seconds": seconds,
        "render_seconds": render_seconds,
        "final_loss": search.best_loss,
        "theta": theta.tolist(),
        "hidden": prepared.hidden.tolist(),
        "parameter_error": float(np.abs(theta - prepared.hidden).mean()),
        "trace": [[h["renders"], h["best"], h["seconds"]] for h in search.history],
        "notes": notes,
    }


# ---------------------------------------------------------------------------- ST-ITO's loop on pedalboard

_board = None  # per pool process: (pedalboard.Pedalboard, [(plugin, parameter key)], audio, rate)


def _pool_start(paths, names, audio, rate) -> None:
    import pedalboard

    global _board
    plugins = [pedalboard.load_plugin(p) for p in paths]
    learned = []
    for plugin, wanted in zip(plugins, names):
        keys = {parameter.name: key for key, parameter in plugin.parameters.items()}
        learned += [(plugin, keys[name]) for name in wanted]
    _board = (pedalboard.Pedalboard(plugins), learned, audio, rate)


def _pool_render(theta: np.ndarray) -> np.ndarray:
    board, learned, audio, rate = _board
    for (plugin, key), value in zip(learned, theta):
        plugin.parameters[key].raw_value = float(value)
    return board(audio, rate, buffer_size=512, reset=True)


def run_stito_pedalboard(prepared: Prepared, seed: int, threads: int, progress: bool):
    """ST-ITO's loop as ST-ITO runs it: pedalboard in a pool of ``threads`` processes, one render
    per task, the loss (the same batched MatchLoss) in the parent."""
    import multiprocessing as mp

    from fxgrad.match.loss import MatchLoss
    from fxgrad.match.optimise import Progress, Search, cma_run
    from fxgrad.match.strategy import STITO

    chain, rate = prepared.chain, int(prepared.config["sample_rate"])
    names: List[List[str]] = [[] for _ in chain.plugins]
    for qualified in chain.learned:
        index, _, parameter = qualified.partition(".")
        plugin = chain.plugins[int(index)]
        names[int(index)].append(plugin.parameters[plugin.parameter_index(parameter)].name)
    loss = MatchLoss(prepared.reference, rate, "aligned")
    began = time.perf_counter()
    pool = mp.get_context("spawn").Pool(threads, _pool_start, (prepared.config["plugins"], names, prepared.audio, rate))
    try:
        probe = np.stack([prepared.start, prepared.hidden])
        theirs = np.stack(pool.map(_pool_render, list(probe)))  # also starts every process
        startup = time.perf_counter() - began
        import fxgrad

        difference = float(np.abs(theirs - fxgrad.render_batch(chain, probe, prepared.audio)).max())
        timing = {"render": 0.0}

        def evaluate(thetas):
            t = time.perf_counter()
            out = np.stack(pool.map(_pool_render, list(thetas), chunksize=1))
            timing["render"] += time.perf_counter() - t
            return loss(out)

        search = Search(
            evaluate, len(prepared.start), None, Progress(progress, f"{prepared.case.name} stito-pedalboard")
        )
        search.stage = "CMA-ES"
        why = cma_run(search, prepared.start, STITO.sigma, STITO.population, seed, STITO.iterations)
        seconds = time.perf_counter() - search.began
    finally:
        pool.close()
        pool.join()
    row = record(prepared, "stito-pedalboard", seed, threads, search, seconds, timing["render"], [why])
    return rescore(prepared, row | {"pool_start_seconds": startup, "max_abs_difference_of_renders": difference})


def rescore(prepared: Prepared, row: Dict[str, Any]) -> Dict[str, Any]:
    """ST-ITO's row with ``final_loss`` the loss of its final setting rendered by a fresh plugin
    (fxgrad's renderer), its search's own best in ``search_loss``. pedalboard resets a plugin
    between renders by switching it off and on, which some leave holding DSP state (ZamTube):
    the loop's best was then seen on a render that depended on the renders before it."""
    import fxgrad
    from fxgrad.match.loss import MatchLoss

    if "search_loss" in row:
        return row
    theta = np.asarray(row["theta"], np.float32)[None]
    output = fxgrad.render_batch(prepared.chain, theta, prepared.audio)
    fresh = float(MatchLoss(prepared.reference, int(prepared.config["sample_rate"]), "aligned")(output)[0])
    return row | {"search_loss": row["final_loss"], "final_loss": fresh}


# ---------------------------------------------------------------------------- fxgrad match itself


def run_tool(prepared: Prepared, seed: int, threads: int, folder: Path, progress: bool) -> Dict[str, Any]:
    """``fxgrad match`` (match_files, its defaults) on the case's files: the input as float WAV,
    the reference as 16-bit WAV; the row with the tool's own wall time and split."""
    import soundfile
    import yaml

    from fxgrad.match.search import match_files, match_report

    rate = int(prepared.config["sample_rate"])
    folder.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(folder / "input.wav"), prepared.audio.T, rate, subtype="FLOAT")
    soundfile.write(str(folder / "reference.wav"), prepared.reference.T, rate, subtype="PCM_16")
    (folder / "chain.yaml").write_text(yaml.safe_dump(prepared.config))
    began = time.perf_counter()
    result = match_files(
        folder / "input.wav",
        folder / "reference.wav",
        folder / "chain.yaml",
        folder / "out",
        seed=seed,
        threads=threads,
        progress=progress,
    )
    wall = time.perf_counter() - began
    summary = match_report(result).splitlines()[0]
    theta = np.asarray(result["normalised"], np.float64)
    return {
        "case": prepared.case.name,
        "method": "fxgrad-match",
        "seed": seed,
        "threads": threads,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg()[0],
        "renders": result["renders"],
        "seconds": wall,
        "tool_seconds": result["seconds"],
        "render_seconds": result["render_seconds"],
        "loss_seconds": result["loss_seconds"],
        "loss_share": result["loss_seconds"] / result["seconds"],
        "final_loss": result["final_loss"],
        "theta": theta.tolist(),
        "hidden": prepared.hidden.tolist(),
        "parameter_error": float(np.abs(theta - prepared.hidden).mean()),
        "trace": [[h["renders"], h["best"], h["seconds"]] for h in result["history"]],
        "notes": result["notes"],
        "summary": summary,
    }


def compare(cases: Sequence[Case], args, out: Path) -> None:
    """Per case, one after the other in this process: ST-ITO's loop on pedalboard (VST3 cases),
    then ``fxgrad match``."""
    import tempfile

    for case in cases:
        prepared = prepare(case, args.seed, args.sample_rate, args.seconds, Path(args.material))
        if case.vst3 and not args.no_pedalboard:
            path = result_path(out, case.name, "stito-pedalboard", args.seed, args.threads)
            if path.is_file() and not args.redo:
                kept = json.loads(path.read_text())
                if "search_loss" not in kept:  # a row from before the fresh re-scoring
                    save(out, rescore(prepared, kept))
            if args.redo or not path.is_file():
                row = run_stito_pedalboard(prepared, args.seed, args.threads, args.progress)
                save(out, row)
                print(
                    f"{case.name:34s} ST-ITO on pedalboard: loss {row['final_loss']:.5g}, {row['renders']} renders, "
                    f"{row['seconds']:.1f} s (rendering {row['render_seconds']:.1f}); renders differ from fxgrad's by "
                    f"{row['max_abs_difference_of_renders']:.2g}; load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
        if args.redo or not result_path(out, case.name, "fxgrad-match", args.seed, args.threads).is_file():
            with tempfile.TemporaryDirectory(prefix="fxgrad-match-bench-") as folder:
                row = run_tool(prepared, args.seed, args.threads, Path(folder), args.progress)
            save(out, row)
            print(f"{case.name:34s} fxgrad match: {row['summary']}; load {os.getloadavg()[0]:.1f}", flush=True)


# ---------------------------------------------------------------------------- results and the report


def result_path(out: Path, row_or_case, method=None, seed=None, threads=None) -> Path:
    if isinstance(row_or_case, dict):
        row = row_or_case
        row_or_case, method, seed, threads = row["case"], row["method"], row["seed"], row["threads"]
    return out / f"{row_or_case.replace('/', '_')}.{method}.seed{seed}.t{threads}.json"


def save(out: Path, row: Dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    result_path(out, row).write_text(json.dumps(row))


def load_rows(out: Path) -> List[Dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(Path(out).glob("*.json"))]


def to_target(row: Dict[str, Any], target: float):
    """(renders, seconds) when the row's search first got to ``target``, or None."""
    for renders, best, seconds in row["trace"]:
        if best <= target:
            return renders, seconds
    return None


TOLERANCE = 0.01
"""Within 1 % of the best loss any method found on the case."""


def report(rows: List[Dict[str, Any]], tolerance: float = TOLERANCE) -> str:
    """Per method over the cases it ran: how many got within ``tolerance`` of the case's best
    known loss, the median renders and seconds to get there (over those that did), the median
    final loss over the best, the median parameter error, the median renders and seconds."""
    best: Dict[tuple, float] = {}
    for row in rows:
        key = (row["case"], row["seed"])
        best[key] = min(best.get(key, np.inf), row["final_loss"])
    methods: Dict[str, List[Dict[str, Any]]] = {}
    for row in rows:
        methods.setdefault(f"{row['method']} (t{row['threads']})", []).append(row)
    lines = [
        "| method | cases | within 1 % | renders to 1 % | s to 1 % | final / best | parameter error | renders | s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for method, group in methods.items():
        reached, ratios = [], []
        for row in group:
            target = best[(row["case"], row["seed"])] * (1 + tolerance)
            got = to_target(row, target)
            if got is not None:
                reached.append(got)
            ratios.append(row["final_loss"] / max(best[(row["case"], row["seed"])], 1e-12))
        med = lambda values: float(np.median(values)) if len(values) else float("nan")  # noqa: E731
        lines.append(
            f"| {method} | {len(group)} | {len(reached)} ({100 * len(reached) / len(group):.0f} %) | "
            f"{med([r for r, _ in reached]):.0f} | {med([s for _, s in reached]):.1f} | {med(ratios):.4f} | "
            f"{med([r['parameter_error'] for r in group]):.3f} | {med([r['renders'] for r in group]):.0f} | "
            f"{med([r['seconds'] for r in group]):.1f} |"
        )
    return "\n".join(lines)


def verdict(rows: List[Dict[str, Any]], tolerance: float = TOLERANCE) -> str:
    """The issue's figures for ``fxgrad match`` (the default method) against the best known loss
    and ST-ITO's loop on pedalboard, per thread count: cases within ``tolerance`` of the best,
    cases worse than ST-ITO's final loss by more than ``tolerance``, the median wall-time ratio
    over the cases both ran, and the largest share of the tool's wall time its loss took."""
    best: Dict[tuple, float] = {}
    for row in rows:
        key = (row["case"], row["seed"])
        best[key] = min(best.get(key, np.inf), row["final_loss"])
    lines = []
    for threads in sorted({r["threads"] for r in rows}):
        tool = {r["case"]: r for r in rows if r["method"] == "fxgrad-match" and r["threads"] == threads}
        stito = {r["case"]: r for r in rows if r["method"] == "stito-pedalboard" and r["threads"] == threads}
        if not tool:
            continue
        within = [c for c, r in tool.items() if r["final_loss"] <= best[(c, r["seed"])] * (1 + tolerance)]
        both = sorted(set(tool) & set(stito))
        worse = [c for c in both if tool[c]["final_loss"] > stito[c]["final_loss"] * (1 + tolerance)]
        ratios = [stito[c]["seconds"] / tool[c]["seconds"] for c in both]
        share = max(tool.values(), key=lambda r: r["loss_share"])
        lines.append(
            f"{threads} threads: fxgrad match within {100 * tolerance:g} % of the best known loss on "
            f"{len(within)}/{len(tool)} cases ({100 * len(within) / len(tool):.0f} %; not: "
            f"{', '.join(sorted(set(tool) - set(within))) or 'none'}); more than {100 * tolerance:g} % worse than "
            f"ST-ITO's loop on {len(worse)}/{len(both)} ({', '.join(worse) or 'none'}); median wall time "
            f"{np.median([tool[c]['seconds'] for c in both]) if both else float('nan'):.1f} s against ST-ITO's "
            f"{np.median([stito[c]['seconds'] for c in both]) if both else float('nan'):.1f} s, median ratio "
            f"{np.median(ratios) if ratios else float('nan'):.2f}x (per case {min(ratios, default=float('nan')):.2f}-"
            f"{max(ratios, default=float('nan')):.2f}x); the loss took at most {100 * share['loss_share']:.0f} % "
            f"of the tool's wall time ({share['case']}), median "
            f"{100 * np.median([r['loss_share'] for r in tool.values()]):.0f} %"
        )
    return "\n".join(lines)


def case_table(rows: List[Dict[str, Any]], methods: Sequence[str]) -> str:
    """Per case: the best known loss and each method's final loss / best and renders."""
    by_case: Dict[str, Dict[str, Dict[str, Any]]] = {}
    for row in rows:
        by_case.setdefault(row["case"], {})[row["method"]] = row
    lines = ["| case | best loss | " + " | ".join(methods) + " |", "| --- | --- |" + " --- |" * len(methods)]
    for case, found in by_case.items():
        best = min(r["final_loss"] for r in found.values())
        cells = [f"{found[m]['final_loss'] / best:.3f} ({found[m]['renders']})" if m in found else "" for m in methods]
        lines.append(f"| {case} | {best:.4g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phase", choices=("strategies", "compare", "report"), default="report")
    parser.add_argument("--cases", help="comma-separated case names or substrings (default: all)")
    parser.add_argument("--methods", help="strategies to run (default: all; --phase strategies)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--sample-rate", type=int, default=44100)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--max-renders", type=int, default=4000, help="the most renders of a strategy but ST-ITO's")
    parser.add_argument("--material", default="runs/bench/match_material", help="the audio cache")
    parser.add_argument("--out", default="runs/bench/match_cases", help="result folder")
    parser.add_argument("--no-pedalboard", action="store_true")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--redo", action="store_true", help="run again what --out already holds")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    wanted = [w for w in (args.cases or "").split(",") if w]
    cases = [c for c in CASES if not wanted or any(w == c.name or w in c.name for w in wanted)]
    print(
        f"{len(cases)} case(s), seed {args.seed}, {args.seconds:g} s at {args.sample_rate} Hz, {args.threads} "
        f"threads, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, torch device "
        f"{'cuda' if torch.cuda.is_available() else 'cpu'}",
        flush=True,
    )
    if args.phase == "strategies":
        table = strategies()
        chosen = [table[m] for m in (args.methods.split(",") if args.methods else table)]
        for case in cases:
            prepared = prepare(case, args.seed, args.sample_rate, args.seconds, Path(args.material))
            for strategy in chosen:
                if result_path(out, case.name, strategy.name, args.seed, args.threads).is_file() and not args.redo:
                    continue
                limit = None if strategy.name == "stito" else args.max_renders  # ST-ITO: its 300 generations
                row = run_search(prepared, strategy, args.seed, args.threads, limit, args.progress)
                save(out, row)
                print(
                    f"{case.name:34s} {strategy.name:16s} loss {row['final_loss']:.5g} renders {row['renders']:5d} "
                    f"{row['seconds']:7.1f} s (rendering {row['render_seconds']:.1f}, loss {row['loss_seconds']:.1f}) "
                    f"load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
    elif args.phase == "compare":
        compare(cases, args, out)
    rows = [r for r in load_rows(out) if any(r["case"] == c.name for c in cases)]
    print(report(rows))
    print()
    print(case_table(rows, sorted({r["method"] for r in rows})))
    print()
    print(verdict(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
