"""The worker processes of ``fxgrad check``: a small pool that hands out tasks one by one and
replaces a worker that dies or misses its deadline, answering for its task as a crash or a hang.

Workers run ``python -m fxgrad.host.check_worker`` (:mod:`fxgrad.host.check_worker`): the pool writes a
JSON task per line to a worker's stdin and reads ``{"stage": ...}`` lines and one
``{"result": ...}`` line per task back from its stdout; what the plugins print goes to a log file
per worker, whose last lines a crash or hang report quotes.
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
from dataclasses import dataclass, field
from typing import IO, Any, Callable, Dict, List, Optional, Sequence

#: What a fresh worker may take to start (import fxgrad, start the host) on top of the timeout.
STARTUP_S = 60.0
#: A worker is replaced after this many plugins, so that what one plugin leaks (memory, threads)
#: does not pile up.
TASKS_PER_WORKER = 40


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

    def failure(self, status: str, message: str, output: str, **detail: Any) -> Dict[str, Any]:
        """The answer for its task when it crashed or hung: where it was and what it printed."""
        return {
            **self.plugin,
            "status": status,
            **detail,
            "stage": self.stage,
            "settings": self.settings,
            "output": output,
            "message": message,
        }


class Pool:
    """Worker processes that take tasks one by one; a dead or late worker is replaced."""

    # What one run() works through: tasks not handed out yet (the next one last), tasks not
    # answered yet, and whom to give each answer.
    _pending: List[_Task]
    _remaining: int
    _done: Callable[[int, Any], None]

    def __init__(self, jobs: int, timeout_s: float, worker: str = "fxgrad.host.check_worker"):
        self.jobs = max(1, jobs)
        self.timeout_s = timeout_s
        self.worker = worker  # the module a worker runs (``python -m WORKER``)
        self.selector = selectors.DefaultSelector()
        self.workers: List[_Worker] = []

    def run(self, payloads: Sequence[Dict[str, Any]], done: Callable[[int, Dict[str, Any]], None]) -> None:
        """Runs every payload; ``done(index, answer)`` receives the worker's result, or
        ``{"status": "crash"|"hang", ...}`` when its worker died or missed the deadline, with
        ``seconds`` (the task's wall time) added."""
        self._done = done
        self._pending = [_Task(i, p) for i, p in enumerate(payloads)][::-1]
        self._remaining = len(self._pending)
        try:
            while self._remaining:
                self._hand_out()
                waits = [w.deadline - time.monotonic() for w in self.workers if w.task is not None]
                for key, _ in self.selector.select(timeout=max(0.0, min(waits)) if waits else None):
                    self._read(key.data)
                self._expire()
        finally:
            for worker in list(self.workers):
                self._retire(worker, kill=worker.task is not None)

    # ------------------------------------------------------------------ workers

    def _spawn(self) -> _Worker:
        log = tempfile.NamedTemporaryFile(prefix="fxgrad-check-", suffix=".log", delete=False)
        # Plugins' output goes to the worker's log, where the probe reads it back.
        env = dict(os.environ, PYTHONUNBUFFERED="1", FXGRAD_PLUGIN_OUTPUT="show")
        package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        process = subprocess.Popen(
            [sys.executable, "-m", self.worker],
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

    # ------------------------------------------------------------------ tasks

    def _hand_out(self) -> None:
        """Give pending tasks to idle workers (a retried task always to a fresh one) while fewer
        than ``jobs`` are busy."""
        while self._pending and sum(w.task is not None for w in self.workers) < self.jobs:
            task = self._pending.pop()
            idle = None if task.retried else next((w for w in self.workers if w.task is None), None)
            if idle is None and len(self.workers) >= self.jobs:  # make room for a fresh one
                self._retire(next(w for w in self.workers if w.task is None), kill=False)
            self._assign(idle or self._spawn(), task)

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

    def _finish(self, task: _Task, answer: Any) -> None:
        if isinstance(answer, dict):
            answer["seconds"] = round(time.monotonic() - task.started, 3)
            if task.retried:
                answer["retried"] = task.retried
        self._done(task.id, answer)
        self._remaining -= 1

    def _read(self, worker: _Worker) -> None:
        """What a worker wrote: stages, results, or the end of its output (it is gone)."""
        try:
            chunk = os.read(worker.process.stdout.fileno(), 1 << 16)
        except BlockingIOError:
            return
        if not chunk:
            self._ended(worker)
            return
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
            self._finish(task, message["result"])
            if worker.served >= TASKS_PER_WORKER:
                self._retire(worker, kill=False)
                break

    def _ended(self, worker: _Worker) -> None:
        """A worker died: its task is a crash, or is run again in a fresh worker when the dead
        one had checked other plugins first (one of those may have left it broken)."""
        task, stage = worker.task, worker.stage
        tail = worker.log_tail()
        clean = worker.served == 1
        returncode = self._retire(worker, kill=True)
        if task is None:
            return
        if not clean and not task.retried:
            # It had run other plugins before: make sure this one is the culprit.
            task.retried = (
                f"its first worker, which had checked other plugins, ended with "
                f"{_signal_name(returncode)} during {stage}; checked again in a fresh one"
            )
            self._pending.append(task)
            return
        message = f"{_signal_name(returncode)} during {stage}"
        self._finish(task, worker.failure("crash", message, tail, signal=_signal_name(returncode)))

    def _expire(self) -> None:
        """Workers past their deadline are killed; their tasks are hangs."""
        now = time.monotonic()
        for worker in [w for w in self.workers if w.task is not None and w.deadline <= now]:
            task, stage = worker.task, worker.stage
            tail = worker.log_tail()
            self._retire(worker, kill=True)
            self._finish(task, worker.failure("hang", f"no answer within {self.timeout_s:g} s during {stage}", tail))
