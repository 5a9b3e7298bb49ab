"""The configs that ship inside the package (``fxgrad/configs/``: the demo's and the tasks'),
found by name where no such file exists: ``fxgrad train tube_amp`` is
``fxgrad train .../fxgrad/configs/tube_amp.yaml``, from a source tree or an installed wheel."""

from __future__ import annotations

from pathlib import Path
from typing import List

from ..base.files import PathLike

SHIPPED = Path(__file__).resolve().parents[1] / "configs"


def shipped_names() -> List[str]:
    """The names of the shipped configs (``demo``, ``tube_amp``, ...)."""
    return sorted(path.stem for path in SHIPPED.glob("*.yaml"))


def config_path(path_or_name: PathLike) -> Path:
    """``path_or_name`` where it is a file; else, where it is a bare name (no folder, no suffix)
    of a shipped config, that config's path; else ``path_or_name`` as it is (its reader says it
    is missing)."""
    path = Path(path_or_name)
    if path.is_file() or path.suffix or len(path.parts) != 1:
        return path
    shipped = SHIPPED / f"{path}.yaml"
    return shipped if shipped.is_file() else path
