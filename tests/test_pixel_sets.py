"""PixelSets: the flat per-row pixel lists ingest passes between workers and COPY."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from skyreg.db.binary_copy import Column, Columns
from skyreg.ingest.footprints import PixelSets

rows_strategy = st.lists(st.lists(st.integers(0, 10**12), max_size=6, unique=True).map(sorted),
                         max_size=12)


@given(rows_strategy, st.randoms(use_true_random=False))
def test_take_reorders_rows(rows: list[list[int]], rnd: object) -> None:
    sets = PixelSets.from_rows(rows)
    order = np.arange(len(rows), dtype=np.int64)
    rnd.shuffle(order)  # type: ignore[attr-defined]
    taken = sets.take(order)
    assert [taken.row(i).tolist() for i in range(len(rows))] == [rows[i] for i in order]
    firsts = [r[0] if r else -1 for r in rows]
    assert sets.first().tolist() == firsts


@given(rows_strategy, rows_strategy)
def test_union_adds_rows_without_duplicates(rows: list[list[int]], extra: list[list[int]]
                                            ) -> None:
    if not rows:
        return
    targets = np.array([i % len(rows) for i in range(len(extra))], dtype=np.int64)
    merged = PixelSets.from_rows(rows).union(targets, PixelSets.from_rows(extra))
    expected = [set(r) for r in rows]
    for target, pixels in zip(targets.tolist(), extra, strict=True):
        expected[target] |= set(pixels)
    assert [merged.row(i).tolist() for i in range(len(rows))] == [sorted(e) for e in expected]


def test_columns_take_keeps_constant_columns() -> None:
    columns = Columns([Column("text", "x"), Column("int8", np.array([1, 2, 3]))], 3)
    taken = columns.take(np.array([2, 0, 1]))
    assert taken.columns[0].values == "x"
    assert taken.columns[1].values.tolist() == [3, 1, 2]
