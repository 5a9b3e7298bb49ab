"""Reading a config file (JSON, YAML or TOML, by its suffix) into what it holds: the one reader of
training configs (:mod:`fxgrad.config`) and chain files (:meth:`fxgrad.Chain.from_config`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from .files import PathLike

#: The format each suffix names.
FORMATS = {".json": "json", ".yaml": "yaml", ".yml": "yaml", ".toml": "toml"}


def load_config(path: PathLike, default_format: Optional[str] = None) -> Any:
    """Read a JSON, YAML or TOML file into a dict (an empty file, or one holding null: ``{}``).

    ``default_format`` (``"yaml"``, say) is the format of a file whose suffix names none; without
    it such a file raises ``ValueError``. Raises ``FileNotFoundError`` ("no such config file:
    PATH") when ``path`` is not a file, and the parser's own error for text it cannot parse.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such config file: {path}")
    text = path.read_text()
    format = FORMATS.get(path.suffix.lower(), default_format)
    if format == "json":
        value = json.loads(text)
    elif format == "yaml":
        import yaml

        value = yaml.safe_load(text)
    elif format == "toml":
        try:
            import tomllib
        except ImportError:  # Python < 3.11
            import tomli as tomllib
        value = tomllib.loads(text)
    else:
        raise ValueError(f"config {path} must be .json, .yaml/.yml or .toml")
    return {} if value is None else value
