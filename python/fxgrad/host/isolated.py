"""One plugin (or chain) in a child process, for use outside training: a plugin that crashes or
hangs raises :class:`fxgrad.PluginCrashedError` / :class:`fxgrad.PluginTimeoutError` here instead
of ending this process, and :meth:`IsolatedPlugin.reload` brings up a fresh instance.

Training isolates its lanes natively (``PluginLayer(..., isolation="process")``, worker
processes sharing memory with the rack); this is the convenient form for one object at a time,
e.g. probing a plugin you do not trust in a notebook::

    plugin = fxgrad.load("/path/to/Unknown.vst3", isolated=True)
    try:
        y = plugin.process(x)
    except fxgrad.PluginCrashedError as error:
        print(error)          # "... died by SIGSEGV while processing ..."
        plugin.reload()

Calls and their results cross a socket (numpy arrays pickled): fine for interactive use, not for
a training loop. The child is a fresh interpreter (``python -c``, not ``multiprocessing``'s
spawn, which would run the caller's script again), so this works from a plain script without an
``if __name__ == "__main__"`` guard. It has its own process group (a Ctrl-C reaches only the
caller) and its own temporary folder (its TMPDIR), removed when it ends; it ends by itself when
the caller goes away, however that happens.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from multiprocessing.connection import Connection
from typing import Any, Dict, List, Optional

import numpy as np

from .. import _native

DEFAULT_TIMEOUT_S = _native.DEFAULT_TIMEOUT_S
"""Deadline of one call (a load, a process call...) before the child counts as hung, in seconds
(the same default as isolated training lanes')."""

_METHOD = "<fxgrad.host.isolated: a method>"  # what an attribute read answers for a method
#: What a fresh child may take to start (the interpreter, numpy and fxgrad's imports), in seconds.
STARTUP_S = 60.0
# The child's program: the caller's import path, then serve the connection on inherited fd argv[1].
_CHILD = (
    "import json, sys; sys.path[:] = json.loads(sys.argv[2]); "
    "from fxgrad.host.isolated import _child; _child(int(sys.argv[1]))"
)


def _child(fd: int) -> None:
    """The child process: say it started, then build the object and serve calls."""
    connection = Connection(fd)
    connection.send(("started", os.getpid()))
    try:
        build = connection.recv()
    except EOFError:
        return
    _serve(connection, build)


def _serve(connection, build: Dict[str, Any]) -> None:
    """The child: build the object, then run calls until the pipe closes."""
    from . import plugins

    try:
        if build["kind"] == "plugin":
            target: Any = plugins.load_in_process(build["identifier"], **build["options"])
        elif build["kind"] == "probe":
            target = _probe(connection, build["config"], build.get("render", True))
        else:
            target = plugins.Chain.from_config(build["config"])
    except BaseException as error:  # reported to the parent, which raises it
        connection.send(("error", error))
        return
    connection.send(("ok", _describe(target)))
    while True:
        try:
            method, args, kwargs = connection.recv()
        except EOFError:
            return
        try:
            if method == "__getattr__":
                value = getattr(target, args[0])
                if callable(value):
                    value = _METHOD
            elif method == "__setattr__":
                setattr(target, args[0], args[1])
                value = None
            else:
                value = getattr(target, method)(*args, **kwargs)
            if isinstance(value, (_native.Plugin, _native.Chain)):
                raise TypeError(f"{method} returns a native object, which cannot leave the isolated process")
            connection.send(("ok", value))
        except BaseException as error:
            connection.send(("error", error))


def _probe(connection, config: Dict[str, Any], render: bool = True) -> Any:
    """The child of :func:`probe_chain`: each plugin loaded, then (``render``) a few blocks of
    noise through each in turn at the chain's preset and pinned settings, saying before each step
    what it does (so that a death or a hang names the plugin)."""
    from . import plugins

    options = {key: config[key] for key in ("sample_rate", "block_size", "channels") if key in config}
    loaded = []
    for k, entry in enumerate(config["plugins"]):
        identifier, select = (entry["plugin"], entry.get("select", "")) if isinstance(entry, dict) else (entry, "")
        connection.send(("progress", f"loading plugin {k} ({identifier})"))
        loaded.append(plugins.load_in_process(identifier, plugin=select, **options))
    chain = plugins.Chain(loaded, config.get("learned"), config.get("pinned"))
    if not render:
        return chain
    noise = np.random.default_rng(0).uniform(-0.5, 0.5, (chain.channels, 4 * chain.block_size)).astype(np.float32)
    for k, plugin in enumerate(chain.plugins):
        name = getattr(loaded[k], "_source", plugin.identifier)
        connection.send(
            (
                "progress",
                f"processing audio through plugin {k} ('{plugin.name}', {name}) at its preset and pinned settings",
            )
        )
        noise = plugin.process(noise)
    return chain


def _describe(target: Any) -> Dict[str, Any]:
    """What the parent caches: names and parameters do not change."""
    if isinstance(target, _native.Plugin):
        return {"name": target.name, "parameters": [_parameter_dict(p) for p in target.parameters]}
    return {"name": " -> ".join(p.name for p in target.plugins), "learned": list(target.learned)}


def _parameter_dict(p: _native.ParameterInfo) -> Dict[str, Any]:
    return {
        key: getattr(p, key)
        for key in (
            "index",
            "id",
            "name",
            "unit",
            "minimum",
            "maximum",
            "default",
            "normalized_default",
            "logarithmic",
            "steps",
            "is_toggle",
            "is_integer",
            "automatable",
            "is_bypass",
            "choices",
        )
    }


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(code).name
    except ValueError:
        return f"signal {code}"


class _Isolated:
    """A proxy: attribute reads and method calls run on the object in the child."""

    _advice = " (call reload() for a fresh instance)"  # what an error says to do

    def __init__(self, build: Dict[str, Any], timeout_s: Optional[float]):
        object.__setattr__(self, "_build", build)
        object.__setattr__(self, "_timeout_s", float(timeout_s if timeout_s is not None else DEFAULT_TIMEOUT_S))
        if not self._timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0 seconds, got {timeout_s}")
        object.__setattr__(self, "_process", None)
        self._start()

    # ---------------------------------------------------------------- the child

    def _start(self) -> None:
        # A fresh interpreter, not a fork: a forked child would inherit this process's plugin
        # host and threads; nor multiprocessing's spawn, which re-runs the caller's main script.
        mine, theirs = socket.socketpair()
        folder = tempfile.mkdtemp(prefix="fxgrad-isolated-")
        try:
            process = subprocess.Popen(
                [sys.executable, "-c", _CHILD, str(theirs.fileno()), json.dumps(sys.path)],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                env={**os.environ, "TMPDIR": folder},
                start_new_session=True,
            )
        except BaseException:
            mine.close()
            shutil.rmtree(folder, ignore_errors=True)
            raise
        finally:
            theirs.close()
        object.__setattr__(self, "_process", process)
        object.__setattr__(self, "_folder", folder)
        object.__setattr__(self, "_connection", Connection(mine.detach()))
        self._receive("starting", STARTUP_S, started=True)
        self._connection.send(self._build)
        object.__setattr__(self, "_description", self._receive("loading"))

    def _receive(self, doing: str, timeout_s: Optional[float] = None, started: bool = False) -> Any:
        """The child's answer; ``started``: the first message, before any plugin code ran. A
        ``progress`` message says what the child does next (and gets a deadline of its own)."""
        connection, process = self._connection, self._process
        timeout_s = self._timeout_s if timeout_s is None else timeout_s
        status = "progress"
        while status == "progress":
            if not connection.poll(timeout_s):
                self._end()
                raise _native.PluginTimeoutError(
                    f"{self._what()} did not answer within {timeout_s:g} s while {doing}; its process was killed"
                    + self._advice.replace(")", ", or pass a larger timeout_s)")
                )
            try:
                status, value = connection.recv()
            except (EOFError, ConnectionError, OSError):
                status = "gone"
                break
            if status == "progress":
                doing = value
        if status == "gone":
            try:
                code = process.wait(5)
            except subprocess.TimeoutExpired:
                code = None
            self._end()
            how = f"died by {_signal_name(-code)}" if code is not None and code < 0 else f"exited with status {code}"
            if started:  # no plugin code ran yet: not the plugin's fault
                raise RuntimeError(
                    f"fxgrad's child process for {self._what()} {how} before it loaded anything (its output above "
                    f"says why; the interpreter was {sys.executable})"
                ) from None
            raise _native.PluginCrashedError(f"{self._what()} {how} while {doing}{self._advice}") from None
        if status == "error":
            raise value
        return value

    def _end(self) -> None:
        """Kill and reap the child, and remove its temporary folder."""
        process = self._process
        if process is not None:
            if process.poll() is None:
                process.kill()
            process.wait()
            self._connection.close()
            shutil.rmtree(self._folder, ignore_errors=True)
            object.__setattr__(self, "_process", None)

    def _what(self) -> str:
        name = getattr(self, "_description", None)
        label = name["name"] if name else self._build.get("identifier", "the chain")
        return f"isolated plugin '{label}'"

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        process = self._process
        if process is None or process.poll() is not None:
            code = None if process is None else process.returncode
            raise _native.PluginCrashedError(
                f"{self._what()} is not running (exit code {code}); call reload() for a fresh instance"
            )
        try:
            self._connection.send((method, args, kwargs))
        except (BrokenPipeError, ConnectionError, OSError):
            pass  # it died; _receive says how
        return self._receive(f"calling {method}")

    def reload(self) -> None:
        """Stops the child (if it still runs) and starts a fresh instance, loaded as before."""
        self.close()
        self._start()

    def close(self) -> None:
        """Ends the child process (and removes its temporary folder)."""
        self._end()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---------------------------------------------------------------- the object's API

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        value = self._call("__getattr__", name)
        if isinstance(value, str) and value == _METHOD:
            return lambda *args, **kwargs: self._call(name, *args, **kwargs)
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        self._call("__setattr__", name, value)


class IsolatedPlugin(_Isolated):
    """A plugin in a child process with the :class:`fxgrad.Plugin` API (``set``, ``get``,
    ``process``, ``reset``, ``state``, ``load_state``, ``latency_samples``...). Made by
    ``fxgrad.load(..., isolated=True)``.

    Args:
        identifier, sample_rate, block_size, channels, plugin: as :func:`fxgrad.load`.
        timeout_s: deadline of each call in seconds (default 30).
    """

    def __init__(
        self,
        identifier: str,
        sample_rate: float = 44100,
        block_size: int = 1024,
        channels: int = 2,
        plugin: str = "",
        timeout_s: Optional[float] = None,
    ):
        super().__init__(
            {
                "kind": "plugin",
                "identifier": os.fspath(identifier),
                "options": dict(sample_rate=sample_rate, block_size=block_size, channels=channels, plugin=plugin),
            },
            timeout_s,
        )

    @property
    def name(self) -> str:
        return self._description["name"]

    @property
    def parameters(self) -> List[Dict[str, Any]]:
        """The parameters as dicts (the fields of :class:`fxgrad.ParameterInfo`)."""
        return self._description["parameters"]

    def process(self, audio: np.ndarray) -> np.ndarray:
        """(channels, samples) float32 -> processed audio; raises PluginCrashedError /
        PluginTimeoutError when the plugin crashes or hangs."""
        return self._call("process", audio)

    def __repr__(self) -> str:
        return f"<IsolatedPlugin {self.name}>"


class IsolatedChain(_Isolated):
    """A chain in a child process, from a chain config (as :meth:`fxgrad.Chain.from_config`),
    with the :class:`fxgrad.Chain` API (``process``, ``reset``, ``set_learned``...)."""

    def __init__(self, config: Any, timeout_s: Optional[float] = None):
        from ..base.configfile import load_config

        if not isinstance(config, dict):
            config = load_config(config)
        super().__init__({"kind": "chain", "config": config}, timeout_s)

    def process(self, audio: np.ndarray) -> np.ndarray:
        return self._call("process", audio)

    def __repr__(self) -> str:
        return f"<IsolatedChain {self._description['name']}>"


class _ChainProbe(_Isolated):
    _advice = ""

    def _what(self) -> str:
        return "the chain"


def probe_chain(config: Dict[str, Any], timeout_s: Optional[float] = None, render: bool = True) -> None:
    """Loads the chain of ``config`` (a chain config dict, as :meth:`fxgrad.Chain.from_config`
    takes) in a child process and (``render``) renders a few blocks of noise through each plugin
    in turn at its preset and pinned settings, each step within ``timeout_s`` (default 30 s). A
    plugin that crashes, aborts or hangs there raises ``PluginCrashedError`` /
    ``PluginTimeoutError`` naming it and what it was doing, instead of ending or hanging the
    caller that loads it next."""
    _ChainProbe({"kind": "probe", "config": dict(config), "render": render}, timeout_s).close()
