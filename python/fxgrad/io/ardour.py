"""Ardour 7's headless tools, run for fxgrad: ``ardour7-lua`` (a Lua session interpreter),
``ardour7-export`` (renders a session's range to a WAV) and the VST scanners, each with the
plugin search paths that make Ardour load the very bundles a chain was loaded from.

Ardour finds plugins as it always does: LV2 through lilv on ``LV2_PATH``, VST3 on
``VST3_PATH``, VST2 on ``LXVST_PATH``, LADSPA on ``LADSPA_PATH``, and a VST3 or VST2 only
once its scanner has indexed it into Ardour's cache (``$XDG_CACHE_HOME/ardour7/vst``).
:class:`PluginPaths` puts each bundle fxgrad used first on its format's path, through a
folder of links that holds nothing else, and scans the VST ones.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

from ..base.files import PathLike

#: The Ardour 7 tools, as Debian's ``ardour`` package installs them.
LUA_TOOL = "ardour7-lua"
EXPORT_TOOL = "ardour7-export"
_LIBRARY_FOLDERS = ("/usr/lib/ardour7", "/usr/lib64/ardour7", "/usr/local/lib/ardour7")
#: Each format's search-path variable, and the folders Ardour searches without it.
SEARCH_PATHS = {
    "LV2": ("LV2_PATH", "~/.lv2:/usr/local/lib/lv2:/usr/lib/lv2"),
    "VST3": ("VST3_PATH", "~/.vst3:/usr/local/lib/vst3:/usr/lib/vst3"),
    "VST2": ("LXVST_PATH", "~/.lxvst:/usr/local/lib/lxvst:/usr/lib/lxvst:~/.vst:/usr/local/lib/vst:/usr/lib/vst"),
    "LADSPA": ("LADSPA_PATH", "~/.ladspa:/usr/local/lib/ladspa:/usr/lib/ladspa"),
}
_SCANNERS = {"VST3": "ardour-vst3-scanner", "VST2": "ardour-vst-scanner"}
# Ardour's preferences for fxgrad's runs, in a private configuration folder (XDG_CONFIG_HOME), so
# that no user setting (export pre-roll, ...) changes a render. Disk buffering is "Small": with
# Ardour 7.3's default ("Medium") a track plays silence at rates below 44.1 kHz, whose playback
# buffers are then smaller than the chunk the disk reader waits to have room for.
_PREFERENCES = """<?xml version="1.0" encoding="UTF-8"?>
<Ardour>
  <Config>
    <Option name="buffering-preset" value="Small"/>
  </Config>
</Ardour>
"""


class ArdourError(RuntimeError):
    """Ardour is missing, or one of its tools failed (the message holds the end of its output)."""


def ardour_tool(name: str) -> str:
    """The path of one of Ardour's command-line tools; ArdourError naming the package when absent."""
    found = shutil.which(name)
    if found is None:
        raise ArdourError(
            f"{name} is not installed: fxgrad writes Ardour sessions with Ardour 7's own tools "
            "(Debian/Ubuntu: apt-get install --no-install-recommends ardour)"
        )
    return found


def ardour_available() -> Optional[str]:
    """None when the tools are installed, else why not (for a skip message)."""
    missing = [name for name in (LUA_TOOL, EXPORT_TOOL) if shutil.which(name) is None]
    return f"{', '.join(missing)} not installed (apt-get install ardour)" if missing else None


def _library_folder() -> Path:
    """Ardour's own library folder (its scanners live there); read from the ardour7-lua wrapper."""
    wrapper = Path(ardour_tool(LUA_TOOL)).resolve()
    try:
        text = wrapper.read_text(errors="replace") if wrapper.stat().st_size < 65536 else ""
    except OSError:
        text = ""
    named = re.search(r"(/\S+)/luasession", text)
    for folder in ([named.group(1)] if named else []) + list(_LIBRARY_FOLDERS):
        if (Path(folder) / "luasession").exists():
            return Path(folder)
    raise ArdourError(f"cannot find Ardour's library folder (looked in {', '.join(_LIBRARY_FOLDERS)})")


def run_tool(command: Sequence[str], environment: Dict[str, str], timeout_s: float, what: str) -> str:
    """Run an Ardour tool; its output (stdout and stderr). ArdourError when it fails or times out."""
    try:
        done = subprocess.run(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env=environment,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired as expired:
        tail = (expired.stdout or "")[-2000:] if isinstance(expired.stdout, str) else ""
        raise ArdourError(f"{what}: {command[0]} did not finish in {timeout_s:.0f} s\n{tail}") from None
    if done.returncode != 0:
        raise ArdourError(f"{what}: {Path(command[0]).name} exited with {done.returncode}\n{done.stdout[-2000:]}")
    return done.stdout


class PluginPaths:
    """A folder of links to plugin bundles or files, one subfolder per format (``lv2``,
    ``vst3``, ``vst2``, ``ladspa``), and the search paths that put them first: each format's
    variable becomes its subfolder, then what the variable held (or Ardour's defaults). The
    links keep the bundles' names, so Ardour finds each one where the link lies."""

    def __init__(self, folder: Path):
        # Absolute: lilv takes each LV2_PATH entry as a file URI, and ardour7-lua crashes on a
        # relative one ("attempt to map invalid URI").
        self.folder = Path(folder).absolute()

    def add(self, fmt: str, bundle: PathLike) -> Path:
        """Link ``bundle`` (a bundle folder or a plugin file) into the format's subfolder."""
        if fmt not in SEARCH_PATHS:
            raise ValueError(f"no search path for {fmt} plugins")
        target = Path(bundle).resolve()
        if not target.exists():
            raise FileNotFoundError(f"no plugin bundle or file {bundle}")
        link = self.folder / fmt.lower() / target.name
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() and link.resolve() != target:
            raise ValueError(f"two {fmt} plugins are named {target.name}: {link.resolve()} and {target}")
        if not link.is_symlink():
            link.symlink_to(target)
        return link

    def links(self, fmt: str) -> List[Path]:
        folder = self.folder / fmt.lower()
        return sorted(folder.iterdir()) if folder.is_dir() else []

    def environment(self, base: Optional[Dict[str, str]] = None) -> Dict[str, str]:
        """``base`` (default ``os.environ``) with the search paths that put the links first."""
        environment = dict(os.environ if base is None else base)
        for fmt, (variable, default) in SEARCH_PATHS.items():
            if self.links(fmt):
                rest = environment.get(variable) or default
                environment[variable] = os.pathsep.join([str(self.folder / fmt.lower()), *expand(rest)])
        return environment

    def scan(self, environment: Dict[str, str], timeout_s: float = 120) -> None:
        """Index the linked VST3 and VST2 plugins into Ardour's plugin cache, as Ardour's own
        plugin scan does, at the paths of the links (where Ardour will find them)."""
        for fmt, scanner in _SCANNERS.items():
            links = self.links(fmt)
            if links:
                library = _library_folder()
                command = [str(library / scanner), "-q", *map(str, links)]
                environment_with_library = {**environment, "LD_LIBRARY_PATH": str(library)}
                run_tool(command, environment_with_library, timeout_s, f"indexing {fmt} plugins")


def expand(search_path: str) -> List[str]:
    """The folders of a colon-separated search path, ``~`` expanded, empty entries dropped."""
    return [os.path.expanduser(part) for part in search_path.split(os.pathsep) if part]


def run_lua(script: PathLike, environment: Dict[str, str], timeout_s: float = 300) -> List[List[str]]:
    """Run a Lua program in ``ardour7-lua``; the tab-separated fields of the lines it reported
    (``fxgrad\\t...``, without the prefix). ArdourError when it failed or did not finish."""
    output = run_tool([ardour_tool(LUA_TOOL), str(script)], environment, timeout_s, "ardour7-lua")
    reports = [line.split("\t")[1:] for line in output.splitlines() if line.startswith("fxgrad\t")]
    errors = [fields[1] for fields in reports if fields and fields[0] == "error" and len(fields) > 1]
    if errors or not reports or reports[-1] != ["done"]:
        detail = errors[0] if errors else "it stopped before the end\n" + output[-2000:]
        raise ArdourError(f"ardour7-lua: {detail}")
    return reports


def export_session(
    session_dir: PathLike,
    name: str,
    output: PathLike,
    environment: Dict[str, str],
    samples: int,
    timeout_s: float = 300,
) -> Path:
    """Render the session's range (``samples`` long) through its master bus with
    ``ardour7-export``: 32-bit float WAV at the session's rate, no normalisation, no dither
    (float output has none).

    Ardour 7.3's exporter sometimes aborts as it frees its export channels, after the file is
    written and closed (glibc's "double free or corruption" from
    ``PortExportChannel::~PortExportChannel``, in ``main``; seen in gdb): a file that then holds
    the whole range is the export; anything short of it is an error."""
    import soundfile

    output = Path(output)
    command = [ardour_tool(EXPORT_TOOL), "-b", "float", "-o", str(output), str(session_dir), name]
    try:
        run_tool(command, environment, timeout_s, f"exporting {session_dir}")
    except ArdourError as error:
        crashed = re.search(r"exited with -6\b", str(error)) and "* Writing" in str(error)
        try:
            complete = output.is_file() and soundfile.info(str(output)).frames == samples
        except RuntimeError:
            complete = False
        if not (crashed and complete):
            raise
    if not output.is_file():
        raise ArdourError(f"ardour7-export wrote no {output}")
    frames = soundfile.info(str(output)).frames
    if frames != samples:
        raise ArdourError(f"ardour7-export wrote {frames} samples of the session's {samples}")
    return output


@contextmanager
def ardour_environment(plugins: Optional[PluginPaths] = None) -> Iterator[Dict[str, str]]:
    """The environment for Ardour's tools while the block runs: fxgrad's preferences (see
    ``_PREFERENCES``) in a private configuration folder, removed afterwards, and the search paths
    of ``plugins``, whose VST ones are indexed first."""
    with tempfile.TemporaryDirectory(prefix="fxgrad-ardour-") as folder:
        (Path(folder) / "ardour7").mkdir()
        (Path(folder) / "ardour7" / "config").write_text(_PREFERENCES)
        environment = plugins.environment() if plugins is not None else dict(os.environ)
        environment["XDG_CONFIG_HOME"] = folder
        if plugins is not None:
            plugins.scan(environment)
        yield environment
