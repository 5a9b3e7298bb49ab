"""What plugins print goes to the ``fxgrad.plugins`` log, never to the terminal unasked: Zam's
DPF-built VST3s complain on stderr as JUCE frees them ("DPF warning: asked to delete component
while audio processor still active"), which used to end every ``make test`` and glue itself to
``fxgrad info``'s last line. Each case runs in a fresh process, as a user's would."""

import subprocess
import sys
from pathlib import Path

import pytest

ZAM_VST3 = Path("/usr/lib/vst3/ZamComp.vst3")

pytestmark = pytest.mark.skipif(not ZAM_VST3.exists(), reason="zam-plugins (VST3) not installed: make deps")


def python(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path, check=True
    )


def test_chatter_while_loading_and_freeing_goes_to_the_log(tmp_path):
    log = tmp_path / "plugins.log"
    done = python(
        "import logging, fxgrad\n"
        f"logging.basicConfig(filename={str(log)!r}, level=logging.INFO, format='%(name)s: %(message)s')\n"
        f"plugin = fxgrad.load({str(ZAM_VST3)!r})\n"
        "del plugin\n"
        "print('after')\n",
        tmp_path,
    )
    assert done.stdout == "after\n"
    assert done.stderr == ""
    logged = log.read_text()
    assert "fxgrad.plugins: DPF warning: asked to delete component" in logged  # kept, not lost


def test_freeing_at_interpreter_exit_prints_nothing(tmp_path):
    done = python(f"import fxgrad\nplugin = fxgrad.load({str(ZAM_VST3)!r})\n", tmp_path)
    assert (done.stdout, done.stderr) == ("", "")


def test_fxgrad_info_prints_its_table_alone(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "fxgrad", "info", str(ZAM_VST3)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    last = done.stdout.splitlines()[-1]
    assert last.endswith(" parameter(s)") and last.split()[0].isdigit(), last


def test_scan_prints_nothing(tmp_path):
    done = python("import fxgrad\nassert fxgrad.scan(include_unsupported=True)\n", tmp_path)
    assert (done.stdout, done.stderr) == ("", "")
