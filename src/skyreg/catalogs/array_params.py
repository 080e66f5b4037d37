"""numpy arrays as PostgreSQL array parameters, encoded in one numpy operation.

A cross-match sends six arrays of tens of thousands of elements; psycopg's list dumper
visits every element in Python (~0.5 µs each, more than the server's whole join costs for
that element). Wrapping an array in :class:`Int8Array` or :class:`Float8Array` sends it in
PostgreSQL's binary array format built by numpy instead: the one-dimensional header (no
NULLs, element type, size, lower bound 1), then each element as its length and big-endian
value.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg.adapt import Dumper
from psycopg.pq import Format
from sqlalchemy import event

from skyreg.db.connection import ReadConnection

_INT8, _INT8_ARRAY, _FLOAT8, _FLOAT8_ARRAY = 20, 1016, 701, 1022


class Int8Array:
    """A 1-D int64 array parameter (``int8[]``)."""

    __slots__ = ("values",)

    def __init__(self, values: npt.ArrayLike) -> None:
        self.values = np.ascontiguousarray(values, dtype=np.int64)


class Float8Array:
    """A 1-D float64 array parameter (``float8[]``)."""

    __slots__ = ("values",)

    def __init__(self, values: npt.ArrayLike) -> None:
        self.values = np.ascontiguousarray(values, dtype=np.float64)


def _encode(values: npt.NDArray[np.generic], element_oid: int, code: str) -> bytes:
    header = struct.pack(">iiiii", 1, 0, element_oid, len(values), 1)
    body = np.empty(len(values), dtype=[("size", ">i4"), ("value", code)])
    body["size"] = 8
    body["value"] = values
    return header + body.tobytes()


class _Int8ArrayDumper(Dumper):
    format = Format.BINARY
    oid = _INT8_ARRAY

    def dump(self, obj: Int8Array) -> bytes:
        return _encode(obj.values, _INT8, ">i8")


class _Float8ArrayDumper(Dumper):
    format = Format.BINARY
    oid = _FLOAT8_ARRAY

    def dump(self, obj: Float8Array) -> bytes:
        return _encode(obj.values, _FLOAT8, ">f8")


def register_on(adapters: Any) -> None:
    """Register the dumpers on one psycopg adapters map (a connection's)."""
    adapters.register_dumper(Int8Array, _Int8ArrayDumper)
    adapters.register_dumper(Float8Array, _Float8ArrayDumper)


def _on_connect(dbapi_connection: Any, _record: Any) -> None:
    register_on(dbapi_connection.adapters)


def install(reads: ReadConnection) -> None:
    """Make the wrappers usable on a registry's read connection, and on every connection
    its engine opens later (a read retried after a lost connection runs on a new one)."""
    engine = reads.engine
    if not event.contains(engine, "connect", _on_connect):
        event.listen(engine, "connect", _on_connect)
    driver = reads.connection.driver_connection
    if isinstance(driver, psycopg.Connection):
        register_on(driver.adapters)
