"""The oracle's results read against a model's: the share of the reachable improvement, and the report."""

from __future__ import annotations

import math
from typing import Any, Dict, Optional

from ..base.text import format_table
from .evaluate import METRIC_TITLES, METRICS, parameter_error_lines


def reachable_share(model: float, static: float, oracle: float) -> float:
    """The share of the reachable improvement the model achieved on one metric (lower is
    better): ``(static - model) / (static - oracle)``; 1 = the oracle's, 0 = no better than the
    static setting, negative = worse. NaN when the oracle does not improve on the static setting."""
    reachable = static - oracle
    if not all(math.isfinite(v) for v in (model, static, oracle)) or reachable <= 0:
        return math.nan
    return (static - model) / reachable


def shares(
    evaluation: Dict[str, Any], oracle: Dict[str, Any], static: str = "best static", ceiling: str = "oracle per-frame"
) -> Dict[str, float]:
    """:func:`reachable_share` per metric from an ``fxgrad evaluate`` result (``model`` and
    ``static``) and an oracle result (``ceiling``); both should cover the same clips."""
    model, base, top = evaluation["systems"]["model"], evaluation["systems"][static], oracle["systems"][ceiling]
    return {m: reachable_share(model[m], base[m], top[m]) for m in METRICS}


def report(result: Dict[str, Any], evaluation: Optional[Dict[str, Any]] = None) -> str:
    """The oracle as text: metric means per system (beside an evaluation's rows when given, and
    the model's share of the reachable improvement), parameter errors and the cost."""
    columns = ["system", *[METRIC_TITLES[m] for m in METRICS], f"loss ({result['settings']['loss']})"]
    rows = []
    systems = dict(evaluation["systems"]) if evaluation else {}
    systems.update(result["systems"])
    for system, values in systems.items():
        loss = values.get("loss")
        rows.append([system, *[f"{values[m]:.4f}" for m in METRICS], "" if loss is None else f"{loss:.4f}"])
    lines = [
        f"oracle on {len(result['clips'])} clips from {result['data']} (lower is better)",
        format_table(columns, rows),
    ]
    if evaluation and "best static" in evaluation["systems"]:
        if len(evaluation["clips"]) != len(result["clips"]):
            lines.append(f"(the evaluation covers {len(evaluation['clips'])} clips, the oracle {len(result['clips'])})")
        texts = ", ".join(f"{METRIC_TITLES[m]} {v:.0%}" for m, v in shares(evaluation, result).items())
        lines.append(f"model's share of the reachable improvement (best static -> oracle per-frame): {texts}")
    lines += parameter_error_lines(result)
    cost, settings = result["cost"], result["settings"]
    renders = sum(cost[stage]["frame_renders"] for stage in ("static", "per-frame", "render"))
    parts = [
        f"static ({settings['static']}) {cost['static']['seconds']:.1f} s",
        f"per-frame ({len(settings['stages_frames'])} stages x {settings['passes']} passes) "
        f"{cost['per-frame']['seconds']:.1f} s",
        f"{cost['static']['rack_steps'] + cost['per-frame']['rack_steps']:,} rack steps",
        f"{renders:,} frame renders",
    ]
    lines.append(f"cost: {cost['total']['seconds']:.1f} s in all; " + "; ".join(parts))
    fell_back = [
        sum(row.get("fell_back", {}).get(kind, False) for row in result["clips"]) for kind in ("static", "per-frame")
    ]
    if any(fell_back):
        lines.append(
            f"kept their starting point, the search ending worse: the static setting of {fell_back[0]} clip(s), "
            f"the static setting in place of the automation on {fell_back[1]}"
        )
    if cost["total"]["faults"]:
        lines.append(f"plugin faults: {cost['total']['faults']} (a faulted clip's pass is not kept)")
    return "\n".join(lines)
