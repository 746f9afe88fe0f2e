"""The binary COPY of numpy columns and the column fetch, against the real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import pytest
from django.db import connection

from finops.ops.columns import Column, copy_columns, fetch_columns

pytestmark = pytest.mark.django_db


def test_columns_round_trip_with_nulls_texts_of_several_lengths_and_large_numbers():
    when = datetime(2026, 11, 2, 10, 30, 0, 123456, tzinfo=UTC)
    when_us = round(when.timestamp()) * 10**6 + 123456
    with connection.cursor() as wrapper:
        cursor = wrapper.cursor
        cursor.execute(
            "CREATE TEMP TABLE copied (id bigserial, n int8, amount numeric(20,6), label text, "
            "flag bool, ts timestamptz, fixed text)"
        )
        columns = [
            Column("n", "int8", np.array([1, -2, 3, 2**40]), null=np.array([0, 0, 1, 0], bool)),
            Column("amount", "micro", np.array([0, 1, 123_456_789, 10**18 - 1])),
            Column("label", "text", np.array([b"team", b"__idle__", b"", "é".encode()])),
            Column("flag", "bool", np.array([True, False, True, False])),
            Column("ts", "timestamptz", when_us),
            Column("fixed", "text", b"gpu_hour"),
        ]
        copy_columns(cursor, "copied", columns, 4)
        cursor.execute("SELECT n, amount, label, flag, ts, fixed FROM copied ORDER BY amount")
        rows = cursor.fetchall()
    assert rows == [
        (1, Decimal("0.000000"), "team", True, when, "gpu_hour"),
        (-2, Decimal("0.000001"), "__idle__", False, when, "gpu_hour"),
        (None, Decimal("123.456789"), "", True, when, "gpu_hour"),
        (2**40, Decimal("999999999999.999999"), "é", False, when, "gpu_hour"),
    ]


def test_numbers_a_numeric_column_cannot_hold_are_refused_before_writing():
    with connection.cursor() as wrapper:
        wrapper.cursor.execute("CREATE TEMP TABLE refused (amount numeric(20,6))")
        with pytest.raises(ValueError, match="out of range"):
            copy_columns(wrapper.cursor, "refused", [Column("amount", "micro", np.array([-1]))], 1)


def test_fetch_columns_returns_the_rows_in_the_requested_order():
    sql = (
        "SELECT * FROM (VALUES (3, 0.5::float8, true), (1, 1.5, false), (2, -2.0, true)) v(k, x, b)"
    )
    with connection.cursor() as wrapper:
        got = fetch_columns(wrapper.cursor, sql, [], [("k", "int8"), ("x", "float8"), ("b", "bool")],
                            "q.k DESC")  # fmt: skip
        empty = fetch_columns(wrapper.cursor, sql + " WHERE false", [], [("k", "int8")], "q.k")
    assert got["k"].tolist() == [3, 2, 1]
    assert got["x"].tolist() == [0.5, -2.0, 1.5]
    assert got["b"].tolist() == [True, True, False]
    assert empty["k"].tolist() == []
