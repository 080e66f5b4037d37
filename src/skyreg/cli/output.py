"""Render result rows as an aligned table, JSON or CSV, or write them as VOTable, Parquet or
FITS tables.

Text formats go to stdout (or ``--out``); binary ones (Parquet, FITS) go to a file named by
``--out`` or to a pipe, never to a terminal, where they would only garble it. VOTable and FITS
are written by astropy from :meth:`ResultTable.to_table` (units, missing values, polygons as
variable-length arrays), Parquet by pyarrow from :meth:`ResultTable.to_arrow`.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

FORMATS = ("table", "json", "csv")
#: Formats of search results: the text formats, then the table files.
RESULT_FORMATS = (*FORMATS, "votable", "parquet", "fits")
BINARY_FORMATS = ("parquet", "fits")


def _cell(value: Any) -> str:
    """A table cell: lists (polygon vertices, pixel boxes) compactly, the rest as str()."""
    if isinstance(value, list):
        return "[" + " ".join(f"{v:.6f}" if isinstance(v, float) else str(v)
                              for v in value) + "]"
    return str(value)


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
        writer.writerows([json.dumps(value) if isinstance(value, list) else value
                          for value in row] for row in rows)
        return buffer.getvalue().rstrip("\n")
    cells = [[_cell(value) for value in row] for row in rows]
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


def write_results(results: Any, fmt: str, out: Path | None) -> None:
    """Write a :class:`~skyreg.search.results.ResultTable` in ``fmt`` to ``out`` or stdout."""
    if fmt in FORMATS:
        text = render(results.columns, results.records(), fmt)
        if out is None:
            click.echo(text)
        else:
            out.write_text(text + "\n")
        return
    if fmt in BINARY_FORMATS and out is None and sys.stdout.isatty():
        raise click.UsageError(f"--format {fmt} writes a binary file: give --out FILE "
                               f"(or pipe the output into a file or program)")
    data = _table_bytes(results, fmt)
    if out is not None:
        out.write_bytes(data)
    else:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()


def _table_bytes(results: Any, fmt: str) -> bytes:
    buffer = io.BytesIO()
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(results.to_arrow(), buffer)
    else:
        results.to_table().write(buffer, format=fmt)
    return buffer.getvalue()
