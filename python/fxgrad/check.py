"""``fxgrad check``: probe plugins in sandboxed worker processes before training with them.

Each plugin is loaded and exercised by a worker process (``python -m fxgrad.check --worker``) of a
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
- latency and DSP-state snapshot support.

A crash is reported with the stage it happened in and the exact parameter values being rendered,
so that it can be reproduced (or the parameter pinned or clamped).

The worker protocol: JSON lines; the parent writes a task per line to the worker's stdin, the
worker answers on its original stdout (which plugins cannot write to: their fd 1 and 2 go to a log
file) with ``{"stage": ...}`` lines as it proceeds and one ``{"result": ...}`` line per task.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from typing import IO, Any, Callable, Dict, Iterable, List, Optional, Sequence

#: Statuses, in the order the summary shows them.
STATUSES = ("ok", "error", "crash", "hang")

DEFAULT_TIMEOUT_S = 60.0
#: What a fresh worker may take to start (import fxgrad, start the host) on top of the timeout.
STARTUP_S = 60.0
#: A worker is replaced after this many plugins, so that what one plugin leaks (memory, threads)
#: does not pile up.
TASKS_PER_WORKER = 40


# ---------------------------------------------------------------------------------- the probe


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
    stage: Callable[[str, Optional[Dict[str, float]], Dict[str, str]], None] = lambda *_: None,
) -> Dict[str, Any]:
    """Exercise one plugin in this process and return what was found (see the module docstring).

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

    import fxgrad

    result: Dict[str, Any] = {"identifier": identifier, "status": "ok"}
    current = {"stage": "load"}

    def enter(name: str, settings: Optional[Dict[str, float]] = None) -> None:
        current["stage"] = name
        stage(name, settings, {k: result[k] for k in ("name", "format") if k in result})

    def load():
        return fxgrad.load(identifier, sample_rate=sample_rate, block_size=block_size, channels=channels, plugin=select)

    rng = np.random.default_rng([seed, zlib.crc32(f"{identifier}#{select}".encode())])
    short = max(block_size, int(sample_rate) // 4)
    try:
        enter("load")
        plugin = load()
        varied = _varied(plugin)
        result.update(
            name=plugin.name,
            format=plugin.format,
            vendor=plugin.vendor,
            parameters=len(plugin.parameters),
            learnable=sum(not p.is_bypass for p in varied),
            latency_samples=plugin.latency_samples,
            dsp_snapshot=plugin.has_dsp_snapshot,
        )

        enter("render at defaults")
        x = _noise(channels, int(sample_rate), seed)
        started = time.perf_counter()
        y = plugin.process(x)
        result["seconds_per_second"] = (time.perf_counter() - started) * sample_rate / x.shape[1]
        result["silent_at_defaults"] = bool(not np.any(y))

        settings: Dict[str, float] = {}
        x = _noise(channels, short, seed + 1)
        for k in range(random_settings):
            values = rng.random(len(varied))
            for p, v in zip(varied, values):
                plugin.set(p.index, float(v), normalized=True)
            settings = {p.id: plugin.get(p.index) for p in varied}
            enter(f"render at random settings {k + 1}/{random_settings}", settings)
            plugin.process(x)

        normalized = [plugin.get(p.index, normalized=True) for p in varied]
        plain = [plugin.get(p.index) for p in varied]
        enter("two fresh instances at the same settings", settings)
        first, second = load(), load()
        for instance in (first, second):
            for p, v in zip(varied, normalized):
                instance.set(p.index, v, normalized=True)
        y_first, y_second = first.process(x), second.process(x)
        result["deterministic"] = bool(np.array_equal(y_first, y_second))

        enter("reset", settings)
        second.reset()
        result["reset_exact"] = bool(np.array_equal(second.process(x), y_first))

        enter("state round trip", settings)
        del first, second
        third = load()
        third.load_state(plugin.state)
        # Plugins may snap a value they are given (a choice, a step): the sound decides, and the
        # values read back differently are listed.
        result["state_exact"] = bool(np.array_equal(third.process(x), y_first))
        result["state_values_differ"] = [
            p.id for p, v in zip(varied, plain) if not np.isclose(third.get(p.index), v, rtol=1e-6, atol=1e-6)
        ]
        del plugin, third
    except Exception as error:  # every fxgrad error is an exception with a message: report it
        result.update(status="error", error=type(error).__name__, message=str(error), stage=current["stage"])
    return result


# ---------------------------------------------------------------------------------- the worker


def _worker_main() -> int:
    """Serve tasks from stdin: one JSON object per line, ``{"id", "probe": {...}}`` or
    ``{"id", "scan": {...}}``; answers go to the original stdout, plugin output to stderr."""
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # what plugins print goes where stderr goes (the parent's log file)

    def send(message: Dict[str, Any]) -> None:
        protocol.write(json.dumps(message) + "\n")
        protocol.flush()

    import fxgrad

    for line in sys.stdin:
        task = json.loads(line)
        if "scan" in task:
            infos = fxgrad.scan(
                task["scan"].get("paths") or [],
                include_own=task["scan"].get("include_own", True),
                include_unsupported=True,
            )
            send(
                {
                    "id": task["id"],
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
            continue
        options = task["probe"]
        result = probe(
            **options,
            stage=lambda name, settings, plugin, task_id=task["id"]: send(
                {"id": task_id, "stage": name, "settings": settings, "plugin": plugin}
            ),
        )
        send({"id": task["id"], "result": result})
    return 0


# ---------------------------------------------------------------------------------- the pool


def _die_with_parent() -> None:
    """In the child before exec: a worker (hung in a plugin, say) goes when its parent does, even
    after kill -9 of the parent (Linux's PR_SET_PDEATHSIG; elsewhere it ends at its stdin's EOF)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _signal_name(returncode: int) -> str:
    if returncode < 0:
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            return f"signal {-returncode}"
    return f"exit status {returncode}"


@dataclass
class _Task:
    id: int
    payload: Dict[str, Any]
    retried: str = ""  # why it runs a second time
    started: float = 0.0


@dataclass
class _Worker:
    process: subprocess.Popen
    log: IO[bytes]
    buffer: bytes = b""
    task: Optional[_Task] = None
    deadline: float = 0.0
    stage: str = ""
    settings: Optional[Dict[str, float]] = None
    plugin: Dict[str, str] = field(default_factory=dict)  # name and format, once loaded
    log_offset: int = 0
    served: int = 0
    started: bool = False  # the current task has begun (the worker sent its first stage)

    def log_tail(self, lines: int = 4) -> str:
        """What the plugin printed while on the current task (its last lines)."""
        try:
            self.log.flush()
            with open(self.log.name, "rb") as handle:
                handle.seek(self.log_offset)
                text = handle.read().decode("utf-8", "replace")
        except OSError:
            return ""
        kept = [line.strip() for line in text.splitlines() if line.strip()]
        return " | ".join(kept[-lines:])


class _Pool:
    """Worker processes that take tasks one by one; a dead or late worker is replaced."""

    def __init__(self, jobs: int, timeout_s: float):
        self.jobs = max(1, jobs)
        self.timeout_s = timeout_s
        self.selector = selectors.DefaultSelector()
        self.workers: List[_Worker] = []

    def _spawn(self) -> _Worker:
        log = tempfile.NamedTemporaryFile(prefix="fxgrad-check-", suffix=".log", delete=False)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        process = subprocess.Popen(
            [sys.executable, "-m", "fxgrad.check", "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        os.set_blocking(process.stdout.fileno(), False)
        worker = _Worker(process, log)
        self.selector.register(process.stdout, selectors.EVENT_READ, worker)
        self.workers.append(worker)
        return worker

    def _retire(self, worker: _Worker, kill: bool) -> int:
        self.selector.unregister(worker.process.stdout)
        self.workers.remove(worker)
        if kill:
            try:
                os.killpg(worker.process.pid, signal.SIGKILL)  # the worker and whatever it started
            except ProcessLookupError:
                pass
        else:
            try:
                worker.process.stdin.close()
            except OSError:
                pass
        try:
            returncode = worker.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(worker.process.pid, signal.SIGKILL)
            returncode = worker.process.wait()
        worker.process.stdout.close()
        worker.log.close()
        os.unlink(worker.log.name)
        return returncode

    def _assign(self, worker: _Worker, task: _Task) -> bool:
        worker.task, worker.stage, worker.settings, worker.started = task, "start", None, False
        worker.plugin = {}
        task.started = time.monotonic()
        # The timeout counts from the task's first stage; a fresh worker first starts up.
        worker.deadline = task.started + self.timeout_s + (STARTUP_S if worker.served == 0 else 0.0)
        worker.log.flush()
        worker.log_offset = os.path.getsize(worker.log.name)
        worker.served += 1
        try:
            worker.process.stdin.write((json.dumps({"id": task.id, **task.payload}) + "\n").encode())
            worker.process.stdin.flush()
            return True
        except (BrokenPipeError, OSError):
            return False  # it died idle; the read loop sees it and answers for the task

    def run(self, payloads: Sequence[Dict[str, Any]], done: Callable[[int, Dict[str, Any]], None]) -> None:
        """Runs every payload; ``done(index, answer)`` receives the worker's result, or
        ``{"status": "crash"|"hang", ...}`` when its worker died or missed the deadline, with
        ``seconds`` (the task's wall time) added."""

        def finish(task: _Task, answer: Any) -> None:
            if isinstance(answer, dict):
                answer["seconds"] = round(time.monotonic() - task.started, 3)
                if task.retried:
                    answer["retried"] = task.retried
            done(task.id, answer)

        pending = [_Task(i, p) for i, p in enumerate(payloads)][::-1]
        remaining = len(pending)
        try:
            while remaining:
                while pending and sum(w.task is not None for w in self.workers) < self.jobs:
                    task = pending.pop()
                    idle = None if task.retried else next((w for w in self.workers if w.task is None), None)
                    if idle is None and len(self.workers) >= self.jobs:  # make room for a fresh one
                        self._retire(next(w for w in self.workers if w.task is None), kill=False)
                    self._assign(idle or self._spawn(), task)
                waits = [w.deadline - time.monotonic() for w in self.workers if w.task is not None]
                events = self.selector.select(timeout=max(0.0, min(waits)) if waits else None)
                for key, _ in events:
                    worker: _Worker = key.data
                    try:
                        chunk = os.read(worker.process.stdout.fileno(), 1 << 16)
                    except BlockingIOError:
                        continue
                    if not chunk:  # the worker is gone
                        task, stage, settings, plugin = worker.task, worker.stage, worker.settings, worker.plugin
                        tail = worker.log_tail()
                        clean = worker.served == 1
                        returncode = self._retire(worker, kill=True)
                        if task is None:
                            continue
                        if not clean and not task.retried:
                            # It had run other plugins before: make sure this one is the culprit.
                            task.retried = (
                                f"its first worker, which had checked other plugins, ended with "
                                f"{_signal_name(returncode)} during {stage}; checked again in a fresh one"
                            )
                            pending.append(task)
                            continue
                        finish(
                            task,
                            {
                                **plugin,
                                "status": "crash",
                                "signal": _signal_name(returncode),
                                "stage": stage,
                                "settings": settings,
                                "output": tail,
                                "message": f"{_signal_name(returncode)} during {stage}",
                            },
                        )
                        remaining -= 1
                        continue
                    worker.buffer += chunk
                    while b"\n" in worker.buffer:
                        line, worker.buffer = worker.buffer.split(b"\n", 1)
                        message = json.loads(line)
                        if "stage" in message:
                            worker.stage, worker.settings = message["stage"], message["settings"]
                            worker.plugin = message["plugin"]
                            if not worker.started:
                                worker.started = True
                                worker.task.started = time.monotonic()
                                worker.deadline = worker.task.started + self.timeout_s
                            continue
                        task = worker.task
                        worker.task = None
                        finish(task, message["result"])
                        remaining -= 1
                        if worker.served >= TASKS_PER_WORKER:
                            self._retire(worker, kill=False)
                            break
                now = time.monotonic()
                for worker in [w for w in self.workers if w.task is not None and w.deadline <= now]:
                    task, stage, settings, plugin = worker.task, worker.stage, worker.settings, worker.plugin
                    tail = worker.log_tail()
                    self._retire(worker, kill=True)
                    finish(
                        task,
                        {
                            **plugin,
                            "status": "hang",
                            "stage": stage,
                            "settings": settings,
                            "output": tail,
                            "message": f"no answer within {self.timeout_s:g} s during {stage}",
                        },
                    )
                    remaining -= 1
        finally:
            for worker in list(self.workers):
                self._retire(worker, kill=worker.task is not None)


# ---------------------------------------------------------------------------------- check


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
    _Pool(1, timeout_s).run(
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
) -> List[Dict[str, Any]]:
    """Probe every target in worker processes (``jobs`` of them at a time; default: the CPU count,
    at most 4), each within ``timeout_s`` seconds. Returns one dict per target, in order, with
    ``status`` in :data:`STATUSES`, ``message`` unless ok, ``seconds`` (wall time) and what
    :func:`probe` found; crashes and hangs carry ``stage`` and ``settings`` (the plain values
    being rendered) and ``output`` (the plugin's last printed lines). ``progress(result)`` is
    called as each one finishes."""
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

    _Pool(jobs, timeout_s).run(payloads, done)
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
        ):
            if not result.get(key, True):
                notes.append(problem)
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


def add_arguments(parser) -> None:
    """The options of ``fxgrad check``."""
    parser.add_argument(
        "plugins",
        nargs="*",
        metavar="PLUGIN",
        help="what `fxgrad.load` takes (a URI, a path, PATH#SELECTOR, fxgrad:NAME); "
        "default: every plugin `fxgrad scan --all` lists",
    )
    parser.add_argument("--format", help="only plugins of this format (lv2, vst3, vst2, ladspa)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="S",
        help=f"seconds a plugin may take before it counts as hung (default {DEFAULT_TIMEOUT_S:g})",
    )
    parser.add_argument("--jobs", type=int, help="worker processes (default: the CPU count, at most 4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise and the random settings")
    parser.add_argument("--sample-rate", type=float, default=44100.0)
    parser.add_argument("--block-size", type=int, default=512)
    parser.add_argument("--channels", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="machine-readable output (results and summary)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_command(args) -> int:
    """``fxgrad check``: one line per plugin as it finishes, then a summary per format. Exit status
    0 when every plugin is ok, 1 otherwise."""
    from ._text import format_table

    started = time.monotonic()
    if args.timeout <= 0:
        raise ValueError(f"--timeout must be positive, got {args.timeout:g}")
    if args.plugins:
        targets = [Target(p) for p in args.plugins]
    else:
        targets = scan_targets()
    if args.format:
        wanted = args.format.upper()
        targets = [t for t in targets if not t.format or t.format == wanted]
    bar = None
    if not args.no_progress and sys.stderr.isatty() and len(targets) > 1:
        from tqdm import tqdm

        bar = tqdm(total=len(targets), unit="plugin", file=sys.stderr, dynamic_ncols=True)

    def progress(result: Dict[str, Any]) -> None:
        if not args.json:
            (bar.write if bar is not None else print)(describe(result))
        if bar is not None:
            bar.set_postfix_str(result.get("name") or result["identifier"], refresh=False)
            bar.update()

    try:
        results = check(
            targets,
            jobs=args.jobs,
            timeout_s=args.timeout,
            seed=args.seed,
            sample_rate=args.sample_rate,
            block_size=args.block_size,
            channels=args.channels,
            progress=progress,
        )
    finally:
        if bar is not None:
            bar.close()
    summary = summarize(results)
    seconds = time.monotonic() - started
    if args.json:
        print(json.dumps({"results": results, "summary": summary, "seconds": round(seconds, 1)}, indent=2))
    else:
        rows = [[fmt, row["total"], *(row[s] for s in STATUSES)] for fmt, row in summary.items()]
        print()
        print(format_table(["format", "plugins", *STATUSES], rows, align="lrrrrr"))
        print(f"{len(results)} plugin(s) checked in {seconds:.0f} s")
    return 0 if all(r["status"] == "ok" for r in results) else 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv == ["--worker"]:
        return _worker_main()
    from .cli import main as cli_main

    return cli_main(["check", *argv])


if __name__ == "__main__":
    sys.exit(main())
