"""The worker side of ``fxgrad check``: the probe that exercises one plugin, and the task loop a
worker process (``python -m fxgrad.host.check_worker``) runs it in.

The task loop reads one JSON task per line from stdin and answers on its original stdout, which
plugins cannot write to (their fd 1 and 2 go where stderr goes: the pool's log file), with
``{"stage": ...}`` lines as the probe proceeds and one ``{"result": ...}`` line per task.
"""

from __future__ import annotations

import json
import os
import sys
import time
import zlib
from typing import Any, Callable, Dict, List, Optional

Stage = Callable[[str, Optional[Dict[str, float]], Dict[str, str]], None]


def _noise(channels: int, samples: int, seed: int):
    import numpy as np

    return (np.random.default_rng(seed).standard_normal((channels, samples)) * 0.3).astype(np.float32)


def _varied(plugin) -> List[Any]:
    """The parameters random settings vary: every automatable one that is not fixed, switches
    included (a training run learns all but the bypass-like ones, whose names fxgrad guesses)."""
    return [p for p in plugin.parameters if p.automatable and p.maximum > p.minimum]


def probe(
    identifier: str,
    select: str = "",
    seed: int = 0,
    sample_rate: float = 44100.0,
    block_size: int = 512,
    channels: int = 2,
    random_settings: int = 3,
    stage: Stage = lambda *_: None,
) -> Dict[str, Any]:
    """Exercise one plugin in this process and return what was found (see :mod:`fxgrad.host.check`).

    ``stage(name, settings, plugin)`` is called before each step, with the plain values of the
    varied parameters when the step renders at random settings, and the plugin's ``name`` and
    ``format`` once it is loaded. Returns a dict with ``status`` ("ok" or
    "error"), ``message`` (the error's), ``stage`` (where it happened) and, as far as the probe
    got: ``name``, ``format``, ``vendor``, ``parameters``, ``learnable``, ``latency_samples``,
    ``dsp_snapshot``, ``seconds_per_second`` (processing time per second of audio, at defaults),
    ``silent_at_defaults``, ``deterministic``, ``reset_exact``, ``state_exact`` (a fresh instance
    given the state renders identically), ``state_values_differ`` (parameters whose plain values
    read back differently after the round trip).
    """
    import numpy as np

    run = _Probe(identifier, select, sample_rate, block_size, channels, stage)
    rng = np.random.default_rng([seed, zlib.crc32(f"{identifier}#{select}".encode())])
    short = max(block_size, int(sample_rate) // 4)
    try:
        run.enter("load")
        plugin = run.load()
        varied = _varied(plugin)
        run.describe(plugin, varied)
        run.enter("render at defaults")
        run.time_at_defaults(plugin, _noise(channels, int(sample_rate), seed))
        x = _noise(channels, short, seed + 1)
        settings = run.render_at_random_settings(plugin, varied, x, rng, random_settings)
        normalized = [plugin.get(p.index, normalized=True) for p in varied]
        plain = [plugin.get(p.index) for p in varied]
        y_first = run.fresh_instances(varied, normalized, x, settings)
        run.state_round_trip(plugin, varied, plain, x, y_first, settings)
        del plugin
    except Exception as error:  # every fxgrad error is an exception with a message: report it
        run.result.update(status="error", error=type(error).__name__, message=str(error), stage=run.stage)
    return run.result


class _Probe:
    """One probe's steps, with what they share: how the plugin loads, what was found so far and
    the stage it is in (which an error is reported with)."""

    def __init__(self, identifier: str, select: str, sample_rate: float, block_size: int, channels: int, stage: Stage):
        self.identifier, self.select = identifier, select
        self.sample_rate, self.block_size, self.channels = sample_rate, block_size, channels
        self.report_stage = stage
        self.result: Dict[str, Any] = {"identifier": identifier, "status": "ok"}
        self.stage = "load"

    def enter(self, name: str, settings: Optional[Dict[str, float]] = None) -> None:
        self.stage = name
        self.report_stage(name, settings, {k: self.result[k] for k in ("name", "format") if k in self.result})

    def load(self):
        import fxgrad

        return fxgrad.load(
            self.identifier,
            sample_rate=self.sample_rate,
            block_size=self.block_size,
            channels=self.channels,
            plugin=self.select,
        )

    def describe(self, plugin, varied: List[Any]) -> None:
        self.result.update(
            name=plugin.name,
            format=plugin.format,
            vendor=plugin.vendor,
            parameters=len(plugin.parameters),
            learnable=sum(not p.is_bypass for p in varied),
            latency_samples=plugin.latency_samples,
            dsp_snapshot=plugin.has_dsp_snapshot,
        )

    def time_at_defaults(self, plugin, x) -> None:
        import numpy as np

        started = time.perf_counter()
        y = plugin.process(x)
        self.result["seconds_per_second"] = (time.perf_counter() - started) * self.sample_rate / x.shape[1]
        self.result["silent_at_defaults"] = bool(not np.any(y))

    def render_at_random_settings(self, plugin, varied: List[Any], x, rng, count: int) -> Dict[str, float]:
        """Renders ``x`` at ``count`` random settings; returns the last one's plain values."""
        settings: Dict[str, float] = {}
        for k in range(count):
            values = rng.random(len(varied))
            for p, v in zip(varied, values):
                plugin.set(p.index, float(v), normalized=True)
            settings = {p.id: plugin.get(p.index) for p in varied}
            self.enter(f"render at random settings {k + 1}/{count}", settings)
            plugin.process(x)
        return settings

    def fresh_instances(self, varied: List[Any], normalized: List[float], x, settings: Dict[str, float]):
        """Two fresh instances at the same settings render alike, and ``reset()`` reproduces a
        fresh one; returns the first one's output."""
        import numpy as np

        self.enter("two fresh instances at the same settings", settings)
        first, second = self.load(), self.load()
        for instance in (first, second):
            for p, v in zip(varied, normalized):
                instance.set(p.index, v, normalized=True)
        y_first, y_second = first.process(x), second.process(x)
        self.result["deterministic"] = bool(np.array_equal(y_first, y_second))

        self.enter("reset", settings)
        second.reset()
        self.result["reset_exact"] = bool(np.array_equal(second.process(x), y_first))
        return y_first

    def state_round_trip(self, plugin, varied: List[Any], plain: List[float], x, y_first, settings) -> None:
        import numpy as np

        self.enter("state round trip", settings)
        third = self.load()
        third.load_state(plugin.state)
        # Plugins may snap a value they are given (a choice, a step): the sound decides, and the
        # values read back differently are listed.
        self.result["state_exact"] = bool(np.array_equal(third.process(x), y_first))
        self.result["state_values_differ"] = [
            p.id for p, v in zip(varied, plain) if not np.isclose(third.get(p.index), v, rtol=1e-6, atol=1e-6)
        ]


def _send_scan(send: Callable[[Dict[str, Any]], None], task_id: Any, options: Dict[str, Any]) -> None:
    import fxgrad

    infos = fxgrad.scan(
        options.get("paths") or [], include_own=options.get("include_own", True), include_unsupported=True
    )
    send(
        {
            "id": task_id,
            "result": [
                {
                    "format": i.format,
                    "name": i.name,
                    "vendor": i.vendor,
                    "identifier": i.identifier,
                    "unsupported": i.unsupported,
                }
                for i in infos
            ],
        }
    )


def serve(run_probe: Callable[..., Dict[str, Any]] = probe) -> int:
    """Serve tasks from stdin: one JSON object per line, ``{"id", "probe": {...}}`` or
    ``{"id", "scan": {...}}``; answers go to the original stdout, plugin output to stderr.
    ``run_probe`` is :func:`probe` or one that adds steps to it (``fxgrad check``'s state and
    preset probe, :mod:`fxgrad.io.check_presets`)."""
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # what plugins print goes where stderr goes (the parent's log file)

    def send(message: Dict[str, Any]) -> None:
        protocol.write(json.dumps(message) + "\n")
        protocol.flush()

    for line in sys.stdin:
        task = json.loads(line)
        if "scan" in task:
            _send_scan(send, task["id"], task["scan"])
            continue
        result = run_probe(
            **task["probe"],
            stage=lambda name, settings, plugin, task_id=task["id"]: send(
                {"id": task_id, "stage": name, "settings": settings, "plugin": plugin}
            ),
        )
        send({"id": task["id"], "result": result})
    return 0


if __name__ == "__main__":
    sys.exit(serve())
