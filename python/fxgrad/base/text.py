"""Plain-text tables for the command line."""

from __future__ import annotations

from typing import Any, List, Sequence


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str = "") -> str:
    """Columns padded to their widest cell; ``align`` holds one ``l``/``r`` per column
    (default: numbers right, text left)."""
    cells: List[List[str]] = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[k]) for row in cells) for k in range(len(headers))]
    if not align:
        align = "".join("r" if rows and all(_numeric(row[k]) for row in rows) else "l" for k in range(len(headers)))
    lines = []
    for index, row in enumerate(cells):
        parts = [cell.rjust(w) if a == "r" else cell.ljust(w) for cell, w, a in zip(row, widths, align)]
        lines.append("  ".join(parts).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _numeric(value: Any) -> bool:
    if isinstance(value, (int, float)):
        return True
    try:
        float(str(value).rstrip("%").replace("x", ""))
        return True
    except ValueError:
        return False
