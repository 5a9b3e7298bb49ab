"""The documentation's examples run verbatim: each ```python block of docs/training.md, saved
as a script as a user would save it (blocks marked ```python sketch are excerpts, not programs)."""

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


def python_blocks(page):
    text = (DOCS / page).read_text()
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


@pytest.mark.parametrize("index", range(len(python_blocks("training.md"))))
def test_training_md_examples_run_as_scripts(run_python, index):
    result = run_python(python_blocks("training.md")[index], timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Error" not in result.stdout, result.stdout
