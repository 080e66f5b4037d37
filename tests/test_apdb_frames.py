"""Frames to Arrow for the Level-1 store: every dtype pandas holds, both ways to a column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from skyreg.catalogs.apdb_frames import _from_pandas, add_pixels
from skyreg.geometry.htm_index import htm_indices
from skyreg.schema.apdb import APDB_HTM_LEVEL


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    n = 40
    floats = rng.normal(size=n)
    floats[::7] = np.nan
    texts = np.array(["g", None, "i", "z"], dtype=object)[rng.integers(0, 4, n)]
    frame = pd.DataFrame({
        "i8": rng.integers(-2**62, 2**62, n), "i2": rng.integers(-300, 300, n).astype("int16"),
        "f8": floats, "f4": floats.astype("float32"), "b": rng.random(n) < 0.5,
        "s": texts, "cat": pd.Categorical(np.array(["u", "v"])[rng.integers(0, 2, n)]),
        "nullable": pd.array([None if x < 0.3 else 7 for x in rng.random(n)], dtype="Int64"),
        "t": pd.to_datetime(rng.integers(0, 2**40, n), unit="ms")})
    return frame.iloc[::-1]  # views with negative strides, as a reversed frame holds


@pytest.mark.parametrize("accessor", [True, False])
def test_columns_come_over_as_pandas_holds_them(accessor: bool,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The same values with pandas' column accessor and without it (NaN and None: NULL)."""
    if not accessor:
        monkeypatch.delattr(pd.DataFrame, "_get_column_array")
    frame = _frame()
    table = _from_pandas(frame)
    assert table.column_names == list(frame.columns)
    reference = pa.Table.from_pandas(frame, preserve_index=False)
    for name in frame.columns:
        assert table.column(name).to_pylist() == reference.column(name).to_pylist(), name
    assert table.column("f8").null_count == int(frame["f8"].isna().sum()) > 0
    assert table.column("s").null_count == int(frame["s"].isna().sum())


def test_pixels_of_repeated_positions_are_sphgeoms() -> None:
    """Distinct positions are indexed once: repeats, positions that share one coordinate
    and -0.0 each get their own position's index."""
    rng = np.random.default_rng(8)
    ra = rng.uniform(0, 360, 600)
    dec = rng.uniform(-90, 90, 600)
    ra[:50], dec[:50] = ra[50:100], dec[50:100]  # repeats
    ra[100:150], dec[150:200] = ra[200:250], dec[250:300]  # one coordinate shared
    ra[300:310], dec[300:310] = np.nextafter(ra[310:320], 400), dec[310:320]
    ra[320], dec[320] = -0.0, 0.0
    objects = pa.table({"ra": ra, "dec": dec})
    pixels = add_pixels({"DiaObject": objects})["DiaObject"].column("pixelId").to_numpy()
    assert np.array_equal(pixels, htm_indices(ra, dec, APDB_HTM_LEVEL))
