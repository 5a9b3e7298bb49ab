"""``fxgrad check``: probe plugins in sandboxed worker processes before training with them.

Each plugin is loaded and exercised by a worker process (``python -m fxgrad.host.check_worker``) of a
small pool; a worker that dies (a signal, abort, exit) or misses the deadline is replaced and the
plugin reported as a crash (with the signal's name) or a hang, so a misbehaving plugin never ends
``check`` itself. Per plugin, in this order:

- load it (a clear error, e.g. ``PluginLoadError``, is reported with its message);
- render one second of noise at its default settings (finite output; the time this takes, per
  second of audio, is the plugin's cost);
- render noise at several random settings of its parameters (what SPSA visits, and more);
- two fresh instances at the same settings: identical output (determinism across instances,
  which the rack's lanes rely on); ``reset()`` reproduces a fresh instance;
- state round trip: a fresh instance given the first one's state has its parameter values and
  renders as the fresh ones;
- latency and DSP-state snapshot support;
- with ``fxgrad check``'s worker (:mod:`fxgrad.io.check_presets`): random settings, the last
  set just before saving, saved as the state and as the format's preset file, each loaded in a
  fresh instance in another process and rendered (equal to a fresh instance at those settings,
  or within the plugin's own run-to-run spread); an LV2 preset read by lilv; and whether
  ``reset()`` returns the plugin to a fresh instance's sound.

A crash is reported with the stage it happened in and the exact parameter values being rendered,
so that it can be reproduced (or the parameter pinned or clamped).

Here: the targets, the run and its report (the command's options are in :mod:`fxgrad.cli.plugins`). The probe and the
worker's task loop are in :mod:`fxgrad.host.check_worker`, the pool of worker processes (and the
JSON-lines protocol it speaks with them) in :mod:`fxgrad.host.check_pool`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

from .check_pool import Pool

#: Statuses, in the order the summary shows them.
STATUSES = ("ok", "error", "crash", "hang")

DEFAULT_TIMEOUT_S = 60.0


@dataclass
class Target:
    """A plugin to check: what ``fxgrad.load`` takes, and what a scan said about it."""

    identifier: str
    select: str = ""
    format: str = ""
    name: str = ""


def scan_targets(paths: Iterable[str] = (), include_own: bool = True, timeout_s: float = 600.0) -> List[Target]:
    """Every plugin a scan finds (hostable or not), scanned in a worker process so that a plugin
    that crashes while being scanned cannot end the caller. Raises ``RuntimeError`` if it does."""
    answers: List[Dict[str, Any]] = []
    Pool(1, timeout_s).run(
        [{"scan": {"paths": list(paths), "include_own": include_own}}], lambda index, answer: answers.append(answer)
    )
    found = answers[0]
    if isinstance(found, dict):
        raise RuntimeError(
            f"the plugin scan did not finish: {found['message']}"
            + (f" ({found['output']})" if found.get("output") else "")
        )
    return [Target(i["identifier"], format=i["format"], name=i["name"]) for i in found]


def check(
    targets: Sequence[Target],
    jobs: Optional[int] = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    seed: int = 0,
    sample_rate: float = 44100.0,
    block_size: int = 512,
    channels: int = 2,
    progress: Optional[Callable[[Dict[str, Any]], None]] = None,
    worker: str = "fxgrad.host.check_worker",
) -> List[Dict[str, Any]]:
    """Probe every target in worker processes (``jobs`` of them at a time; default: the CPU count,
    at most 4), each within ``timeout_s`` seconds. Returns one dict per target, in order, with
    ``status`` in :data:`STATUSES`, ``message`` unless ok, ``seconds`` (wall time) and what
    :func:`probe` found; crashes and hangs carry ``stage`` and ``settings`` (the plain values
    being rendered) and ``output`` (the plugin's last printed lines). ``progress(result)`` is
    called as each one finishes. ``worker`` is the module the workers run: this layer's probe, or
    ``fxgrad.io.check_presets``, which adds the state and preset round trip through another
    process and reset freshness (what ``fxgrad check`` runs)."""
    jobs = jobs or min(4, os.cpu_count() or 1)
    payloads = [
        {
            "probe": {
                "identifier": t.identifier,
                "select": t.select,
                "seed": seed,
                "sample_rate": sample_rate,
                "block_size": block_size,
                "channels": channels,
            }
        }
        for t in targets
    ]
    results: List[Optional[Dict[str, Any]]] = [None] * len(targets)

    def done(index: int, answer: Dict[str, Any]) -> None:
        target = targets[index]
        # What the probe learned (the loaded plugin's name and format) wins over the scan's.
        answer = {
            "identifier": target.identifier,
            **({"select": target.select} if target.select else {}),
            **{k: v for k, v in answer.items() if v is not None},
            "format": answer.get("format") or target.format,
            "name": answer.get("name") or target.name,
        }
        results[index] = answer
        if progress is not None:
            progress(answer)

    Pool(jobs, timeout_s, worker).run(payloads, done)
    return [r for r in results if r is not None]


def summarize(results: Sequence[Dict[str, Any]]) -> Dict[str, Dict[str, int]]:
    """Counts per format and status: ``{"LV2": {"ok": 3, "error": 1, "crash": 0, "hang": 0, "total": 4}, ...}``
    with an ``"all"`` row."""
    table: Dict[str, Dict[str, int]] = {}
    for r in results:
        for key in (r.get("format") or "?", "all"):
            row = table.setdefault(key, {**{s: 0 for s in STATUSES}, "total": 0})
            row[r["status"]] += 1
            row["total"] += 1
    return dict(sorted(table.items(), key=lambda kv: (kv[0] == "all", kv[0])))


#: The state/preset probe's findings, in the order the round-trip summary shows them.
ROUND_TRIPS = ("state_other_process", "preset_other_process", "preset_lilv", "reset_fresh")


def summarize_round_trips(results: Sequence[Dict[str, Any]]) -> Dict[str, Dict[str, str]]:
    """Per format (and ``"all"``), for each of :data:`ROUND_TRIPS`: ``"PASSED/CHECKED"`` over
    the plugins the state/preset probe ran on (a preset is checked where the format has a file,
    lilv for LV2 only), e.g. ``{"VST3": {"state_other_process": "16/16", ...}, ...}``."""
    counts: Dict[str, Dict[str, List[int]]] = {}
    for r in results:
        if r.get("status") != "ok" or "reset_fresh" not in r:
            continue
        for key in (r.get("format") or "?", "all"):
            row = counts.setdefault(key, {k: [0, 0] for k in ROUND_TRIPS})
            for k in ROUND_TRIPS:
                if r.get(k) is not None:
                    row[k][0] += bool(r[k])
                    row[k][1] += 1
    table = {fmt: {k: f"{good}/{checked}" for k, (good, checked) in row.items()} for fmt, row in counts.items()}
    return dict(sorted(table.items(), key=lambda kv: (kv[0] == "all", kv[0])))


def describe(result: Dict[str, Any]) -> str:
    """One line: status, format, name, identifier and what was found or went wrong."""
    status = result["status"]
    if status == "ok":
        notes = [
            f"latency {result['latency_samples']}",
            f"{100 * result['seconds_per_second']:.2g}% of real time",
            f"{result['learnable']} learnable",
        ]
        if result.get("dsp_snapshot"):
            notes.append("DSP snapshot")
        for key, problem in (
            ("deterministic", "two instances differ"),
            ("reset_exact", "reset differs from a fresh instance"),
            ("state_exact", "state round trip differs"),
            ("reset_fresh", "reset() leaves it unlike a fresh instance"),
            ("fresh_other_process", "a fresh instance in another process sounds different"),
            ("state_other_process", "its state loaded in another process sounds different"),
            ("preset_other_process", f"its {result.get('preset_file')} preset does not round-trip"),
            ("preset_lilv", "lilv does not read its preset's values"),
        ):
            if result.get(key, True) is False:
                notes.append(problem)
        if result.get("preset_note"):
            notes.append(f"({result['preset_note']})")
        if result.get("silent_at_defaults"):
            notes.append("silent at defaults")
        if result.get("retried"):
            notes.append(f"note: {result['retried']}")
        detail = ", ".join(notes)
    else:
        detail = result.get("message", "")
        if status == "error" and result.get("stage") not in (None, "load"):
            detail = f"{result.get('error', 'error')} during {result['stage']}: {detail}"
        if result.get("settings"):
            detail += " at " + ", ".join(f"{k}={v:.6g}" for k, v in result["settings"].items())
        if result.get("output"):
            detail += f" [plugin output: {result['output']}]"
    name = result.get("name") or "?"
    return f"{status:<5}  {result.get('format') or '?':<6}  {name}  ({result['identifier']})  {detail}"
