"""The service's VOTable writer: cell texts on its fast paths equal those of the plain path,
and astropy reads the documents back, value for value, warnings turned into errors."""

from __future__ import annotations

import io
import math
import warnings
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from astropy.io.votable import parse

from skyreg.service.votable import Field, _cells, _double, escape, table_document

pytestmark = pytest.mark.filterwarnings("error")


def _read(body: bytes) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return parse(io.BytesIO(body), verify="exception").get_first_table().array


def test_repeated_doubles_print_as_each_value_alone() -> None:
    """A column of few distinct values (formatted once each) prints every cell as the
    per-cell path does: NULLs, NaN, infinities, ints and Decimals included."""
    nan = float("nan")
    values = [61000.5, None, 61000.5, nan, math.inf, -math.inf, 2, Decimal("1.25"),
              np.float64(3.5), 1e-300, float(nan)] * 4
    assert len(set(values)) * 2 <= len(values)  # the distinct-value path is taken
    assert _cells(Field("t", "double"), values) == [_double(v) for v in values]


@pytest.mark.parametrize("zero", [0.0, -0.0])
def test_columns_with_zeros_keep_the_sign(zero: float) -> None:
    """0.0 and -0.0 are one dict key: a column holding either is printed cell by cell."""
    values = [0.0, -0.0, zero, 1.5] * 8
    cells = _cells(Field("x", "double"), values)
    assert cells == [repr(v) for v in values]
    assert cells[:2] == ["0.0", "-0.0"]


def test_document_round_trip() -> None:
    """Doubles (repeated or not), integers with NULLs and text needing escapes read back."""
    rows = [(float(i % 3) + 0.25, i if i % 5 else None, text)
            for i, text in enumerate(["plain", 'a&b<c>"d"', "tab\there", "x", "y z"] * 4)]
    rows.append((None, 7, "last"))
    fields = [Field("d", "double"), Field("n", "long"), Field("s", "char")]
    table = _read(table_document(fields, rows))
    assert len(table) == len(rows)
    for got, want in zip(table, rows, strict=True):
        if want[0] is None:
            assert np.ma.is_masked(got["d"])
        else:
            assert got["d"] == want[0]
        if want[1] is None:
            assert np.ma.is_masked(got["n"])
        else:
            assert got["n"] == want[1]
        assert str(got["s"]) == want[2]


@pytest.mark.parametrize("text, expected", [
    ("plain ascii 123", "plain ascii 123"),
    ('<&>"', "&lt;&amp;&gt;&quot;"),
    ("naïve", "naïve"),
    ("line\nbreak\ttab\r", "line\nbreak\ttab\r"),
    ("bell\x07", "bell\ufffd"),
    ("", ""),
])
def test_escape(text: str, expected: str) -> None:
    assert escape(text) == expected
