"""Columns of numbers straight into PostgreSQL: a binary COPY stream built by numpy.

A month's ledger or a fleet's day of GPU-minutes is millions of lines; building a Python
tuple per line and having psycopg encode it field by field cost more than computing them.
Here every line of a block has the same layout (the same columns null, text of the same
length), so the block is one numpy structured array in PostgreSQL's binary COPY format,
written with one ``tobytes()``.

Column kinds (``Column.kind``):

* ``int8``, ``int4``: 64- and 32-bit integers;
* ``float8``: doubles;
* ``timestamptz``: microseconds since 1970-01-01 UTC (int64);
* ``micro``: a ``numeric`` column holding integers counted in millionths (int64, >= 0,
  below 10**18): 1_500_000 is stored as 1.500000;
* ``bool``;
* ``text``: bytes of one length per column (a constant, or an ``S<n>`` array).

A column's ``values`` is an array with one value per line or one scalar for every line;
``null`` (a boolean array) marks lines where the column is NULL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 UTC in microseconds since 1970
MICRO = 1_000_000
_NUMERIC_LIMIT = 10**18  # integer part below 10**12: three base-10000 digits


@dataclass(frozen=True)
class Column:
    name: str
    kind: str
    values: Any
    null: np.ndarray | None = None


def _payload(kind: str, values: Any, n: int) -> tuple[Any, int, np.ndarray]:
    """(numpy dtype of the field's payload, its byte length, the payload of ``n`` lines);
    ``values`` is one value per line or a scalar."""
    if kind == "text":
        if isinstance(values, bytes):
            return (
                f"S{max(len(values), 1)}",
                len(values),
                np.full(n, values, f"S{len(values) or 1}"),
            )
        return values.dtype.str, values.dtype.itemsize, values
    arr = np.asarray(values)
    arr = np.broadcast_to(arr, (n,)) if arr.ndim == 0 else arr
    if kind == "int8":
        return ">i8", 8, arr.astype(">i8")
    if kind == "int4":
        return ">i4", 4, arr.astype(">i4")
    if kind == "float8":
        return ">f8", 8, arr.astype(">f8")
    if kind == "timestamptz":
        return ">i8", 8, (arr.astype(np.int64) - PG_EPOCH_US).astype(">i8")
    if kind == "bool":
        return "u1", 1, arr.astype("u1")
    if kind == "micro":
        v = arr.astype(np.int64)
        if len(v) and (v.min() < 0 or v.max() >= _NUMERIC_LIMIT):
            raise ValueError(f"numeric value out of range for binary COPY: {v.min()}..{v.max()}")
        whole, frac = v // MICRO, (v % MICRO) * 100  # six decimals as two base-10000 digits
        digits = np.empty((len(v), 9), dtype=">i2")
        digits[:, 0] = 5  # ndigits
        digits[:, 1] = 2  # weight of the first digit: 10000**2
        digits[:, 2] = 0  # sign: positive
        digits[:, 3] = 6  # display scale
        digits[:, 4] = whole // 10**8
        digits[:, 5] = (whole // 10**4) % 10**4
        digits[:, 6] = whole % 10**4
        digits[:, 7] = frac // 10**4
        digits[:, 8] = frac % 10**4
        return (">i2", (9,)), 18, digits
    raise ValueError(f"unknown column kind {kind!r}")


def _block(columns: Sequence[tuple[str, Any]], n: int) -> bytes:
    """``n`` lines of one layout; ``columns``: (kind, values) pairs, values None for NULL."""
    fields: list[tuple[Any, ...]] = [("count", ">i2")]
    data: dict[str, Any] = {"count": len(columns)}
    for i, (kind, values) in enumerate(columns):
        fields.append((f"l{i}", ">i4"))
        if values is None:
            data[f"l{i}"] = -1
            continue
        dtype, size, payload = _payload(kind, values, n)
        data[f"l{i}"] = size
        if size:  # empty text: the length says it all
            fields.append((f"v{i}", dtype) if isinstance(dtype, str) else (f"v{i}", *dtype))
            data[f"v{i}"] = payload
    block = np.empty(n, dtype=np.dtype(fields))
    for name, value in data.items():
        block[name] = value
    return block.tobytes()


def copy_columns(cursor: Any, table: str, columns: Sequence[Column], count: int) -> None:
    """COPY ``count`` lines into ``table`` through a psycopg 3 cursor, in blocks of lines
    whose null columns and text lengths are the same (so not in the order given). Text
    arrays (``S<n>``) may hold shorter values: numpy drops trailing NUL bytes, and the
    block uses each value's length."""
    if count == 0:
        return
    # One integer per line: its null columns and text lengths, packed.
    layout = np.zeros(count, dtype=np.int64)
    shift, texts = 0, {}
    for i, column in enumerate(columns):
        if column.null is not None:
            layout |= column.null.astype(np.int64) << shift
        shift += 1
        if column.kind == "text" and isinstance(column.values, np.ndarray):
            texts[i] = np.char.str_len(column.values)
            layout |= texts[i].astype(np.int64) << shift
            shift += 8
            if texts[i].max(initial=0) > 255:
                raise ValueError(f"{column.name}: text longer than 255 bytes")
    if shift > 62:
        raise ValueError("too many nullable or text columns for one layout key")
    names = ", ".join(c.name for c in columns)
    kinds, which = np.unique(layout, return_inverse=True)
    with cursor.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.write(HEADER)
        for k in range(len(kinds)):
            rows = np.flatnonzero(which == k)
            first = rows[0]
            block: list[tuple[str, Any]] = []
            for i, c in enumerate(columns):
                values = c.values
                if values is None or (c.null is not None and c.null[first]):
                    values = None
                elif i in texts:
                    length = int(texts[i][first])
                    values = values[rows].astype(f"S{length}") if length else b""
                elif isinstance(values, np.ndarray):
                    values = values[rows]
                block.append((c.kind, values))
            copy.write(_block(block, len(rows)))
        copy.write(TRAILER)


_SEND = {"int8": (">i8", np.int64), "float8": (">f8", np.float64), "bool": ("u1", np.bool_)}


def fetch_columns(
    cursor: Any,
    sql: str,
    params: Sequence[Any],
    columns: Sequence[tuple[str, str]],
    order: str | None = None,
) -> dict[str, np.ndarray]:
    """The rows of a query as arrays, ordered by ``order`` when given: each column
    aggregated by PostgreSQL into one byte string (``int8send`` and the like) and read with
    one numpy call, instead of a Python tuple per row. ``columns``: (name, kind) of the
    query's output columns, kinds ``int8``, ``float8`` and ``bool``; the query returns no
    NULLs there."""
    aggregates = ", ".join(
        f"string_agg({kind}send(q.{name}::{kind}), ''::bytea)" for name, kind in columns
    )
    if order is None:
        cursor.execute(f"SELECT {aggregates} FROM ({sql}) q", params)  # noqa: S608
        raw = cursor.fetchone()
        order_of = slice(None)
    else:
        cursor.execute(
            f"SELECT string_agg(int8send(q.rank_), ''::bytea), {aggregates} "  # noqa: S608
            f"FROM (SELECT q.*, row_number() OVER (ORDER BY {order}) AS rank_ "
            f"FROM ({sql}) q) q",
            params,
        )
        rank, *raw = cursor.fetchone()
        order_of = np.argsort(np.frombuffer(bytes(rank or b""), dtype=">i8"), kind="stable")
    out = {}
    for (name, kind), values in zip(columns, raw, strict=True):
        wire, native = _SEND[kind]
        out[name] = np.frombuffer(bytes(values or b""), dtype=wire).astype(native)[order_of]
    return out
