"""A computed day of the ledger, as columns, and how it is stored: lines, prices and the
daily summaries by team and node and by team alone, by binary COPY of the numpy columns
(PostgreSQL) or ``bulk_create`` (SQLite, the single-user demo). Amounts and quantities are
integers in millionths."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
from django.db import connection

from finops.costing.models import (
    Basis,
    Bucket,
    Component,
    LedgerDay,
    LedgerEntry,
    LedgerPrice,
    LedgerTeamDay,
)
from finops.ops.columns import MICRO, Column, copy_columns

HOUR_US = 3600 * MICRO
NONE = -1  # a key column's null


def round_div(numerator: np.ndarray, denominator: int) -> np.ndarray:
    """Non-negative integers divided, rounded half up."""
    return (numerator + denominator // 2) // denominator


def _decimal(micro: int) -> Decimal:
    return Decimal(int(micro)).scaleb(-6)


@dataclass
class Block:
    """Ledger lines that share bucket, component and unit, as columns. Key columns hold
    ``NONE`` for null; ``unit_price`` is ``NONE`` where no price was found."""

    bucket: str
    component: str
    unit: str
    hour: np.ndarray
    team: np.ndarray
    node: np.ndarray
    quantity: np.ndarray
    amount: np.ndarray
    currency: np.ndarray
    job: np.ndarray | None = None
    gpu: np.ndarray | None = None
    unit_price: np.ndarray | None = None
    activity: np.ndarray | None = None  # millionths; 1 (10**6) where absent
    regeneration: np.ndarray | None = None
    activity_assumed: np.ndarray | None = None  # no telemetry in the job's time: activity 1
    gpu_model: np.ndarray | None = None  # the line's GPU's model (none: storage, energy)

    def __len__(self) -> int:
        return len(self.hour)

    def column(self, name: str) -> np.ndarray:
        value = getattr(self, name)
        if value is not None:
            return value
        if name in ("regeneration", "activity_assumed"):
            return np.zeros(len(self), dtype=bool)
        return np.full(len(self), MICRO if name == "activity" else NONE, dtype=np.int64)

    def unpriced(self) -> np.ndarray:
        """GPU time that no override, rate or default priced (booked at 0, quantity kept)."""
        if self.unit != "gpu_hour":
            return np.zeros(len(self), dtype=bool)
        return self.column("unit_price") == NONE


@dataclass
class DayLedger:
    day: datetime
    blocks: list[Block] = field(default_factory=list)
    # (hour, node, unit price in millionths or NONE, currency, reason) per node-hour priced
    prices: list[tuple[int, int, int, str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return sum(len(b) for b in self.blocks)


def day_store(ledger: DayLedger, computed_at: datetime) -> None:
    """The day's lines, prices and summary: binary COPY of columns (PostgreSQL) or
    ``bulk_create`` (SQLite, the single-user demo)."""
    summary = _day_summary(ledger)
    by_team = (
        summary.groupby(["basis", "bucket", "team", "component", "regen"], sort=True)[
            ["quantity", "amount", "unpriced", "assumed"]
        ]
        .sum()
        .reset_index()
    )
    if connection.vendor != "postgresql":
        LedgerEntry.objects.bulk_create(_entries(ledger, computed_at), batch_size=2000)
        LedgerPrice.objects.bulk_create(
            LedgerPrice(window_start=ledger.day + timedelta(hours=h), node_id=node,
                        unit_price=None if price == NONE else _decimal(price), currency=cur,
                        reason=reason)
            for h, node, price, cur, reason in ledger.prices
        )  # fmt: skip
        for model, frame in ((LedgerDay, summary), (LedgerTeamDay, by_team)):
            model.objects.bulk_create(_summary_objects(model, frame, ledger.day))
        return
    day_us = round(ledger.day.timestamp()) * MICRO
    computed_us = round(computed_at.timestamp() * MICRO)
    with connection.cursor() as wrapper:
        cursor = wrapper.cursor
        for b in ledger.blocks:
            job, gpu, price = b.column("job"), b.column("gpu"), b.column("unit_price")
            columns = [
                Column("window_start", "timestamptz", day_us + b.hour * HOUR_US),
                Column("bucket", "text", str(b.bucket).encode()),
                Column("team_id", "int8", b.team, null=b.team == NONE),
                Column("job_id", "int8", job, null=job == NONE),
                Column("node_id", "int8", b.node),
                Column("gpu_id", "int8", gpu, null=gpu == NONE),
                Column("component", "text", str(b.component).encode()),
                Column("quantity", "micro", b.quantity),
                Column("unit", "text", b.unit.encode()),
                Column("unit_price", "micro", price, null=price == NONE),
                Column("amount", "micro", b.amount),
                Column("activity", "micro", b.column("activity")),
                Column("activity_assumed", "bool", b.column("activity_assumed")),
                Column("currency", "text", b.currency),
                Column("computed_at", "timestamptz", computed_us),
            ]
            copy_columns(cursor, LedgerEntry._meta.db_table, columns, len(b))
        if ledger.prices:
            hour, node, price, cur, reason = (np.array(c) for c in zip(*ledger.prices, strict=True))
            columns = [
                Column("window_start", "timestamptz", day_us + hour.astype(np.int64) * HOUR_US),
                Column("node_id", "int8", node),
                Column("unit_price", "micro", price, null=price == NONE),
                Column("currency", "text", np.char.encode(cur)),
                Column("reason", "text", np.char.encode(reason)),
            ]
            copy_columns(cursor, LedgerPrice._meta.db_table, columns, len(hour))
        for model, frame in ((LedgerDay, summary), (LedgerTeamDay, by_team)):
            columns = _summary_columns(frame, day_us, by_node=model is LedgerDay)
            copy_columns(cursor, model._meta.db_table, columns, len(frame))


def _summary_columns(frame: pd.DataFrame, day_us: int, *, by_node: bool) -> list[Column]:
    """A daily summary's rows (``_day_summary``'s frame, or its sums by team) as columns."""

    def text(name: str) -> np.ndarray:
        return np.char.encode(frame[name].to_numpy().astype(str))

    team, gpu_model = frame["team"].to_numpy(), frame.get("gpu_model")
    return [
        Column("day", "timestamptz", day_us),
        Column("basis", "text", text("basis")),
        Column("bucket", "text", text("bucket")),
        Column("team_id", "int8", team, null=team == NONE),
        *([Column("node_id", "int8", frame["node"].to_numpy()),
           Column("gpu_model_id", "int8", gpu_model.to_numpy(),
                  null=gpu_model.to_numpy() == NONE)] if by_node else []),
        Column("component", "text", text("component")),
        Column("regeneration", "bool", frame["regen"].to_numpy()),
        *[Column(column, "micro", frame[name].to_numpy()) for column, name in SUMS],
    ]  # fmt: skip


SUMS = (("quantity", "quantity"), ("amount", "amount"), ("unpriced_quantity", "unpriced"),
        ("assumed_quantity", "assumed"))  # fmt: skip


def _summary_objects(model: Any, frame: pd.DataFrame, day: datetime) -> list[Any]:
    """A daily summary's rows as objects (SQLite, the single-user demo)."""
    by_node = model is LedgerDay
    return [
        model(day=day, basis=r.basis, bucket=r.bucket,
              team_id=None if r.team == NONE else int(r.team), component=r.component,
              regeneration=bool(r.regen),
              **({"node_id": int(r.node),
                  "gpu_model_id": None if r.gpu_model == NONE else int(r.gpu_model)}
                 if by_node else {}),
              **{column: _decimal(getattr(r, name)) for column, name in SUMS})
        for r in frame.itertuples(index=False)
    ]  # fmt: skip


def _entries(ledger: DayLedger, computed_at: datetime) -> Any:
    """LedgerEntry objects (SQLite, the single-user demo)."""
    for b in ledger.blocks:
        job, gpu, price = b.column("job"), b.column("gpu"), b.column("unit_price")
        activity, assumed = b.column("activity"), b.column("activity_assumed")
        for i in range(len(b)):
            yield LedgerEntry(
                window_start=ledger.day + timedelta(hours=int(b.hour[i])),
                bucket=b.bucket, component=b.component, unit=b.unit,
                team_id=None if b.team[i] == NONE else int(b.team[i]),
                job_id=None if job[i] == NONE else int(job[i]), node_id=int(b.node[i]),
                gpu_id=None if gpu[i] == NONE else int(gpu[i]),
                quantity=_decimal(b.quantity[i]), amount=_decimal(b.amount[i]),
                unit_price=None if price[i] == NONE else _decimal(price[i]),
                activity=_decimal(activity[i]), currency=b.currency[i].decode(),
                activity_assumed=bool(assumed[i]),
                computed_at=computed_at,
            )  # fmt: skip


def _day_summary(ledger: DayLedger) -> pd.DataFrame:
    """The day's lines summed per basis, bucket, team, node, GPU model, component and
    regeneration, with
    the GPU-hours that were unpriced and those whose activity was assumed. The usage basis
    splits a team's GPU line into round(amount x activity) and waste, as the allocation
    report does in SQL (the waste rows carry no unpriced or assumed hours)."""
    keys = ["bucket", "team", "node", "gpu_model", "component", "regen"]
    frames = [
        pd.DataFrame({
            "bucket": str(b.bucket), "team": b.team, "node": b.node,
            "gpu_model": b.column("gpu_model"), "component": str(b.component),
            "regen": b.column("regeneration"), "quantity": b.quantity, "amount": b.amount,
            "activity": b.column("activity"),
            "unpriced": np.where(b.unpriced(), b.quantity, 0),
            "assumed": np.where(b.column("activity_assumed"), b.quantity, 0),
        })
        for b in ledger.blocks
        if len(b)
    ]  # fmt: skip
    if not frames:
        return pd.DataFrame(columns=["basis", *keys, "quantity", "amount", "unpriced", "assumed"])
    lines = pd.concat(frames, ignore_index=True)
    usage = lines.copy()
    team_gpu = ((lines["bucket"] == Bucket.TEAM) & (lines["component"] == Component.GPU)).to_numpy()
    act = lines["activity"].to_numpy()
    used = round_div(lines["amount"].to_numpy() * act, MICRO)
    used_q = round_div(lines["quantity"].to_numpy() * act, MICRO)
    usage.loc[team_gpu, "amount"] = used[team_gpu]
    usage.loc[team_gpu, "quantity"] = used_q[team_gpu]
    waste = lines[team_gpu].copy()
    waste["component"] = str(Component.WASTE)
    waste["amount"] -= used[team_gpu]
    waste["quantity"] -= used_q[team_gpu]
    waste["unpriced"] = waste["assumed"] = 0
    waste = waste[waste["amount"] > 0]
    sums = []
    for basis, frame in ((Basis.ALLOCATION, lines), (Basis.USAGE, pd.concat([usage, waste]))):
        grouped = (
            frame.groupby(keys, sort=True)[["quantity", "amount", "unpriced", "assumed"]]
            .sum()
            .reset_index()
        )
        grouped.insert(0, "basis", str(basis))
        sums.append(grouped)
    return pd.concat(sums, ignore_index=True)
