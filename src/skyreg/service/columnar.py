"""Result pages of the JSON API: columnar JSON, CSV and Parquet.

Columnar JSON (``{"columns": {"visit": [...], ...}, "count": ..., "total": ...}``) keeps
repeated names out of the payload and maps straight onto data frames.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

FORMATS = ("json", "csv", "parquet")
MEDIA_TYPES = {"json": "application/json", "csv": "text/csv; charset=utf-8",
               "parquet": "application/vnd.apache.parquet"}


def as_json(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, total: int, offset: int,
            limit: int, next_url: str | None) -> bytes:
    data = {name: list(values) for name, values in
            zip(columns, zip(*rows, strict=True) if rows else [() for _ in columns],
                strict=True)}
    return json.dumps({"columns": data, "count": len(rows), "total": total, "offset": offset,
                       "limit": limit, "next": next_url}, separators=(",", ":"),
                      allow_nan=False).encode()


def as_csv(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(["" if v is None else v for v in row] for row in rows)
    return buffer.getvalue().encode()


def as_parquet(columns: Sequence[str], rows: Sequence[Sequence[Any]],
               types: dict[str, str]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow_types = {"text": pa.string(), "int": pa.int64(), "float": pa.float64()}
    values = list(zip(*rows, strict=True)) if rows else [() for _ in columns]
    table = pa.table({name: pa.array(list(column), type=arrow_types[types.get(name, "text")])
                      for name, column in zip(columns, values, strict=True)})
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()
