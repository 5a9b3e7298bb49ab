"""An Ardour 7 session from a chain: the input audio on a track, the chain's plugins on it at
their setting, and per-frame settings (a trained model's automation) as automation lanes.

Ardour writes the session itself: :func:`write_session` stages the audio and runs
``ardour_session.lua`` in ``ardour7-lua`` (see that file), then checks what Ardour reported:
the region reads back as the audio, each plugin is the bundle fxgrad loaded (the shared
objects the process mapped), every value holds. A session's plugins are found through
``fxgrad-plugins/`` in its folder (links to those bundles): :func:`session_environment` gives
the search paths that open or export it with exactly them.

Automation: fxgrad renders frame k (N samples) at its own setting, a step at every frame
boundary. ``steps`` (the default) writes two points per frame, the frame's value at its first
and its last sample, so Ardour's linear interpolation between points is a one-sample ramp at
each boundary; ``linear`` writes one point per frame, at its first sample, so Ardour ramps from
frame to frame (half the points; what it changes is measured in docs/daw.md).
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..base.files import PathLike
from ..host.plugins import Chain
from .ardour import SEARCH_PATHS, ArdourError, PluginPaths, ardour_environment, export_session, run_lua
from .session_spec import ardour_plugin, audio_files, lua_table, plugin_specs, session_xml

PLUGIN_FOLDER = "fxgrad-plugins"
"""The folder in a session's folder that links to the bundles of its plugins."""
_SCRIPT = Path(__file__).with_name("ardour_session.lua")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.-]*")


@dataclass
class Session:
    """A written session: its folder, name (``NAME.ardour`` in the folder), the track, its length
    in samples, and what Ardour reported: per plugin ``(instances, input channels, output
    channels)``, the parameters it has no control for (``skipped``, "PLUGIN: label"; never a
    learned or pinned one), the track's output count and fader gain (linear), the shared objects
    it loaded, the values it holds (label -> value in Ardour's units, per plugin), and ``notes``:
    where the session cannot sound like fxgrad's render, and why."""

    folder: Path
    name: str
    track: str
    samples: int
    plugins: List[Tuple[int, int, int]] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)
    outputs: int = 0
    fader: float = 1.0
    libraries: List[Path] = field(default_factory=list)
    values: List[Dict[str, float]] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    @property
    def file(self) -> Path:
        return self.folder / f"{self.name}.ardour"


def plugin_paths(folder: PathLike, chain: Chain) -> PluginPaths:
    """Links in ``folder`` to the bundles or files the chain's plugins were loaded from."""
    paths = PluginPaths(Path(folder))
    for plugin in chain.plugins:
        named = ardour_plugin(plugin)
        if named.bundle is not None:
            paths.add(named.format, named.bundle)
    return paths


def session_environment(folder: PathLike):
    """A context manager giving the environment in which Ardour's tools open a written session
    with the plugins in the bundles fxgrad used (its ``fxgrad-plugins/`` links)."""
    return ardour_environment(PluginPaths(Path(folder) / PLUGIN_FOLDER))


def _checked_name(name: str, what: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"{what} {name!r}: use letters, digits, spaces, '_', '.' and '-' (starting with one of the first)"
        )
    return name


def write_session(
    folder: PathLike,
    audio: np.ndarray,
    chain: Chain,
    thetas: Optional[np.ndarray] = None,
    frame_size: Optional[int] = None,
    name: Optional[str] = None,
    track: str = "fxgrad",
    automation: str = "steps",
    timeout_s: float = 300,
) -> Session:
    """Write an Ardour 7 session into ``folder`` (which must not exist yet).

    ``audio`` (C, samples) float32 at the chain's sample rate (C = the chain's channels, 1 or
    2) goes on a track named ``track``; the chain's plugins go on the track in order, at the
    values they hold now, or with ``thetas`` (frames, P) normalised per-frame values of the
    learned parameters (frames of ``frame_size`` samples) as automation lanes of those
    parameters (``automation``: ``steps`` or ``linear``, see the module). ``name`` is the
    session's (default: the folder's name). The folder appears whole or not at all.

    Raises ArdourError when Ardour is missing or refuses something, ValueError for bad input.
    """
    folder = Path(folder)
    name = _checked_name(name or folder.name, "session name")
    _checked_name(track, "track name")
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    if audio.ndim != 2 or audio.shape[0] != chain.channels or audio.shape[1] == 0:
        raise ValueError(f"audio must be shaped ({chain.channels}, samples), got {audio.shape}")
    if chain.channels not in (1, 2):
        raise ValueError(f"an Ardour session here takes a mono or stereo chain, not {chain.channels} channels")
    if not np.isfinite(audio).all():
        raise ValueError("the audio holds NaN or infinite samples")
    samples = audio.shape[1]
    if thetas is not None:
        thetas = np.asarray(thetas, np.float32)
        if not frame_size or int(frame_size) <= 0:
            raise ValueError("per-frame thetas need frame_size (samples per frame)")
        frames = -(-samples // int(frame_size))
        if thetas.shape != (frames, chain.num_parameters):
            raise ValueError(
                f"thetas must be shaped ({frames}, {chain.num_parameters}): a row per frame of {frame_size} "
                f"samples, a column per learned parameter; got {thetas.shape}"
            )
    if folder.exists():
        raise ValueError(f"{folder} exists: give a new folder for the session")
    folder.parent.mkdir(parents=True, exist_ok=True)
    # Ardour names the audio folder (interchange/FOLDER/) after the session's folder, so the
    # session is built in a folder of the final name, inside a hidden one that is then dropped.
    work = folder.with_name(f".{folder.name}.fxgrad-{os.getpid()}")
    partial, staging = work / folder.name, work / "staging"
    try:
        staging.mkdir(parents=True)
        plugins = plugin_paths(staging / PLUGIN_FOLDER, chain)
        files = audio_files(audio, track)
        _stage_audio(staging, files, audio, int(round(chain.sample_rate)))
        spec = {
            "dir": str(partial),
            "name": name,
            "folder": folder.name,
            "rate": int(round(chain.sample_rate)),
            "channels": chain.channels,
            "track": track,
            "settle_samples": 8 * 1024,
            "staging": str(staging),
            "audio_files": files,
            "plugins": plugin_specs(chain, thetas, frame_size or samples, samples, automation),
            **session_xml(files, samples, track),
        }
        script = staging / "session.lua"
        script.write_text(f"SPEC = {lua_table(spec)}\n\n" + _SCRIPT.read_text())
        with ardour_environment(plugins) as environment:
            reports = run_lua(script, environment, timeout_s)
        session = _checked(reports, partial, name, track, audio, chain)
        session.notes = _notes(chain)
        if (staging / PLUGIN_FOLDER).is_dir():
            (staging / PLUGIN_FOLDER).rename(partial / PLUGIN_FOLDER)
        partial.rename(folder)
        session.folder = folder
        return session
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _notes(chain: Chain) -> List[str]:
    """Where Ardour routes the chain's audio otherwise than fxgrad does."""
    notes = []
    for plugin in chain.plugins:
        if chain.channels > 1 and min(plugin.info.num_inputs, plugin.info.num_outputs) == 1:
            notes.append(
                f"{plugin.name} is mono: fxgrad feeds it the average of the {chain.channels} channels and copies "
                "its output to each, Ardour runs one instance per channel"
            )
        if plugin.latency_samples:
            notes.append(
                f"{plugin.name} reports {plugin.latency_samples} samples of latency: Ardour compensates it, "
                "fxgrad's render carries it (compare from that many samples into fxgrad's render)"
            )
    return notes


def _stage_audio(staging: Path, files: Sequence[str], audio: np.ndarray, rate: int) -> None:
    """One mono 32-bit float WAV per channel, as Ardour keeps a session's audio."""
    import soundfile

    for file, channel in zip(files, audio):
        soundfile.write(str(staging / file), channel, rate, subtype="FLOAT", format="WAV")


def _checked(reports, folder, name, track, audio, chain) -> Session:
    """The Session that Ardour's reports describe, after checking them against what fxgrad sent."""
    session = Session(folder, name, track, audio.shape[1])
    for fields in reports:
        kind, rest = fields[0], fields[1:]
        if kind == "region":
            length, peak = int(rest[0]), float(rest[1])
            expected = float(np.abs(audio).max())
            if length != audio.shape[1] or abs(peak - expected) > 1e-6 * max(1.0, expected):
                raise ArdourError(
                    f"Ardour reads the track's audio as {length} samples peaking at {peak:.6g}, "
                    f"fxgrad wrote {audio.shape[1]} peaking at {expected:.6g}"
                )
        elif kind == "plugin":
            session.plugins.append((int(rest[1]), int(rest[3]), int(rest[4])))
            session.values.append({})
        elif kind == "routing":
            session.outputs, session.fader = int(rest[0]), float(rest[1])
        elif kind == "skipped":
            session.skipped.append(f"{chain.plugins[int(rest[0]) - 1].name}: {rest[1]}")
        elif kind == "value":
            session.values[-1][rest[1]] = float(rest[2])
        elif kind == "library":
            session.libraries.append(Path(rest[0]))
    _check_bundles(session, chain)
    return session


def _check_bundles(session: Session, chain: Chain) -> None:
    """Each plugin fxgrad loaded from a bundle or file ran in Ardour from that one: a shared
    object inside it is mapped, and no file of the same name from anywhere else."""
    for plugin in chain.plugins:
        bundle = ardour_plugin(plugin).bundle
        if bundle is None:
            continue
        target = bundle.resolve()
        inside = [lib for lib in session.libraries if lib == target or target in lib.parents]
        if not inside:
            raise ArdourError(f"Ardour did not load {plugin.name} from {target}")
        names = {lib.name for lib in inside}
        others = [lib for lib in session.libraries if lib.name in names and lib not in inside]
        if others:
            raise ArdourError(f"Ardour loaded {plugin.name} from {others[0]} as well as from {target}")


def opening_command(session: Session) -> str:
    """The shell command that opens a written session in Ardour with fxgrad's plugin bundles."""
    import shlex

    paths = PluginPaths(session.folder / PLUGIN_FOLDER)
    words = []
    for fmt, (variable, default) in SEARCH_PATHS.items():
        if paths.links(fmt):
            words.append(f"{variable}={shlex.quote(str(paths.folder / fmt.lower()))}:{default.replace('~', '$HOME')}")
    return " ".join([*words, "ardour", shlex.quote(str(session.file))])


def export_to_array(session: Session, timeout_s: float = 150, exports: int = 4) -> np.ndarray:
    """The session rendered headless by ``ardour7-export`` (:func:`fxgrad.io.ardour.export_session`)
    with its own plugin bundles: (master channels, samples) float32 at the session's rate.

    The render is one that Ardour gave twice, bit for bit, in at most ``exports`` runs (each
    given ``timeout_s``): on a loaded machine Ardour 7.3's exporter now and then renders a session
    otherwise (seen here, at a load of 15 on 2 cores: the range rendered 16 samples late, once in
    15 exports of a one-plugin session; samples of 4.5e10, once in 9 of a three-plugin one; a run
    that did not end in 300 s), and such a run is Ardour's doing, not a difference between the
    hosts. ArdourError when no two runs agree."""
    renders: List[np.ndarray] = []
    failures: List[str] = []
    for _ in range(exports):
        try:
            render = _export_once(session, timeout_s)
        except ArdourError as error:
            failures.append(str(error).splitlines()[0])
            continue
        if any(np.array_equal(render, earlier) for earlier in renders):
            return render
        renders.append(render)
    raise ArdourError(
        f"no two of {exports} exports of {session.folder} by ardour7-export agree "
        f"({len(renders)} rendered, all different; failures: {'; '.join(failures) or 'none'})"
    )


def _export_once(session: Session, timeout_s: float) -> np.ndarray:
    import tempfile

    import soundfile

    with tempfile.TemporaryDirectory(prefix="fxgrad-export-") as folder, session_environment(session.folder) as env:
        output = export_session(
            session.folder, session.name, Path(folder) / "export.wav", env, session.samples, timeout_s
        )
        frames, _ = soundfile.read(str(output), dtype="float32", always_2d=True)
    return np.ascontiguousarray(frames.T)


def compare_renders(reference: np.ndarray, exported: np.ndarray, latency_samples: int = 0) -> Dict[str, float]:
    """How far Ardour's export is from fxgrad's render of the same (both (C, samples)): the
    largest sample difference, in linear units and in dB re the render's peak, and the RMS of
    the difference in dB re the render's RMS. fxgrad's render carries the chain's latency,
    Ardour compensates it: the render is compared from ``latency_samples`` on."""
    reference = np.asarray(reference, np.float64)[:, latency_samples:]
    exported = np.asarray(exported, np.float64)
    length = min(reference.shape[1], exported.shape[1])
    if reference.shape[0] != exported.shape[0] or length == 0:
        raise ValueError(f"cannot compare renders shaped {reference.shape} and {exported.shape}")
    difference = exported[:, :length] - reference[:, :length]
    peak = float(np.abs(reference).max()) or 1.0
    rms = float(np.sqrt(np.mean(reference[:, :length] ** 2))) or 1.0
    largest = float(np.abs(difference).max())
    tiny = np.finfo(np.float64).tiny
    return {
        "max_abs": largest,
        "max_db": float(20 * np.log10(max(largest, tiny) / peak)),
        "error_db": float(20 * np.log10(max(float(np.sqrt(np.mean(difference**2))), tiny) / rms)),
        "samples": length,
    }
