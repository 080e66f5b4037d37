"""Render result rows as an aligned table, JSON or CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

FORMATS = ("table", "json", "csv")


def render(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str,
           total: int | None = None) -> str:
    """The rows in the chosen format; tables end with a row count line.

    ``total``, when more than the rows given, says that these are the first rows of that many.
    """
    if fmt == "json":
        return json.dumps([dict(zip(columns, row, strict=True)) for row in rows], indent=2)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
        return buffer.getvalue().rstrip("\n")
    cells = [[str(value) for value in row] for row in rows]
    widths = [max([len(name), *(len(row[i]) for row in cells)]) for i, name in
              enumerate(columns)]
    lines = ["  ".join(name.ljust(width) for name, width in zip(columns, widths, strict=True)),
             "  ".join("-" * width for width in widths)]
    lines += ["  ".join(cell.rjust(width) if cell.lstrip("-").isdigit() else cell.ljust(width)
                        for cell, width in zip(row, widths, strict=True)) for row in cells]
    if total is not None and total > len(rows):
        lines.append(f"(first {len(rows)} of {total} rows)")
    else:
        lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(lines)
