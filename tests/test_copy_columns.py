"""The loader's column-wise COPY stores exactly what plain parameter binding stores."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Column,
    Connection,
    Double,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    Table,
    Text,
    create_engine,
    insert,
    text,
)

from skyreg.db.binary_copy import COPY_HEADER, COPY_TRAILER, Columns
from skyreg.db.binary_copy import Column as BinaryColumn
from skyreg.ingest.loader import _column_wise, _copy

COLUMNS = (("t", Text), ("i2", SmallInteger), ("i4", Integer), ("i8", BigInteger),
           ("f", Double), ("b", LargeBinary), ("fa", ARRAY(Double)), ("ia", ARRAY(Integer)))


def _table(name: str) -> Table:
    return Table(name, MetaData(), *(Column(n, t) for n, t in COLUMNS),
                 Column("row_no", BigInteger), prefixes=["TEMPORARY"])


@pytest.fixture(scope="module")
def connection(database_factory: Any) -> Iterator[Connection]:
    engine = create_engine(database_factory())
    with engine.connect() as conn:
        yield conn
    engine.dispose()


def _column(values: st.SearchStrategy[Any], rows: int, fixed: bool,
            varying: bool = True) -> st.SearchStrategy[list[Any]]:
    """A column of ``rows`` values: constant, varying, all NULL, or with some NULLs.

    ``fixed``: only the shapes the column-wise path takes (``varying``: it takes varying values).
    """
    shapes = [values.map(lambda v: [v] * rows), st.just([None] * rows)]
    if varying or not fixed:
        shapes.append(st.lists(values, min_size=rows, max_size=rows))
    if not fixed:
        shapes.append(st.lists(st.one_of(st.none(), values), min_size=rows, max_size=rows))
    return st.one_of(*shapes)


floats = st.floats(allow_nan=True, allow_infinity=True)
characters = st.characters(min_codepoint=1, exclude_categories=("Cs",))  # what text can hold


@st.composite
def batches(draw: st.DrawFn) -> tuple[bool, list[tuple[Any, ...]]]:
    """(whether the rows have fixed widths, the rows)."""
    fixed = draw(st.booleans())
    rows = draw(st.integers(1, 12))
    width = draw(st.integers(1, 5))
    fixed_floats = st.lists(floats, min_size=width, max_size=width)
    ragged_floats = st.lists(floats, min_size=1, max_size=5)
    blobs = st.binary(min_size=width, max_size=width)
    columns = [
        draw(_column(st.text(alphabet=characters, max_size=8), rows, fixed)),
        draw(_column(st.integers(-2**15, 2**15 - 1), rows, fixed)),
        draw(_column(st.integers(-2**31, 2**31 - 1), rows, fixed)),
        draw(_column(st.integers(-2**63, 2**63 - 1), rows, fixed)),
        draw(_column(st.one_of(floats, st.integers(-2**53, 2**53)), rows, fixed)),
        draw(_column(blobs if fixed else blobs | st.binary(max_size=6), rows, fixed)),
        draw(_column(fixed_floats if fixed else fixed_floats | ragged_floats, rows, fixed)),
        draw(_column(st.lists(st.integers(-2**31, 2**31 - 1), min_size=width,
                              max_size=width), rows, fixed)),
    ]
    return fixed, [(*values, number)
                   for number, values in enumerate(zip(*columns, strict=True))]


def _stored(connection: Connection, table: Table) -> list[str]:
    return list(connection.execute(
        text(f"SELECT t::text FROM {table.name} t ORDER BY row_no")).scalars())


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=batches())
def test_column_wise_copy_equals_parameter_binding(
        connection: Connection, batch: tuple[bool, list[tuple[Any, ...]]]) -> None:
    fixed, rows = batch
    if fixed:
        assert _column_wise(list(_table("probe").columns), rows) is not None
    copied, bound = _table("copied"), _table("bound")
    with connection.begin() as transaction:
        copied.create(connection)
        bound.create(connection)
        _copy(connection, copied, rows)
        connection.execute(insert(bound), [dict(zip(bound.columns.keys(), row, strict=True))
                                           for row in rows])
        assert _stored(connection, copied) == _stored(connection, bound)
        transaction.rollback()


def test_fixed_width_rows_take_the_column_wise_path() -> None:
    table = _table("x")
    rows = [("LSSTCam", 1, 2, 3, 0.5, b"ab", [1.0, 2.0], [1, 2], n) for n in range(3)]
    assert _column_wise(list(table.columns), rows) is not None
    ragged = [*rows[:2], ("LSSTCam", 1, 2, 3, 0.5, b"ab", [1.0], [1, 2], 2)]
    assert _column_wise(list(table.columns), ragged) is None
    too_big = [*rows[:2], ("LSSTCam", 2**15, 2, 3, 0.5, b"ab", [1.0, 2.0], [1, 2], 2)]
    assert _column_wise(list(table.columns), too_big) is None


@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.one_of(st.none(), st.text(alphabet=characters, max_size=40)),
                      min_size=1, max_size=30),
       chunk=st.integers(1, 7))
def test_texts_of_any_length_and_nulls_copy_exactly(connection: Connection,
                                                    texts: list[str | None],
                                                    chunk: int) -> None:
    # Rows with a text of its own each: laid out by scattering bytes (binary_copy), in chunks.
    rows = [(i, text_value, "shared") for i, text_value in enumerate(texts)]
    columns = Columns([BinaryColumn("int8", np.arange(len(texts), dtype=np.int64)),
                       BinaryColumn("texts", texts), BinaryColumn("text", "shared")],
                      len(texts))
    driver = connection.connection.driver_connection
    with connection.begin() as transaction:
        connection.execute(text("CREATE TEMPORARY TABLE varying (n int8, t text, s text)"))
        with driver.cursor() as cursor, cursor.copy(
                "COPY varying FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(COPY_HEADER)
            for piece in columns.chunks(chunk):
                copy.write(piece)
            copy.write(COPY_TRAILER)
        stored = connection.execute(text("SELECT n, t, s FROM varying ORDER BY n")).all()
        assert [tuple(row) for row in stored] == rows
        transaction.rollback()
