"""Notifications: what a tick's alerts tell each channel, grouped, silenced, delivered once.

For every alert that fired or resolved in a tick (and every firing alert due for a repeat
after its rule's ``repeat_interval_s``) and every enabled channel of its rule, a
Notification row is recorded *before* anything is sent (one per alert, kind and channel
for firing and resolved notices: a unique index). Rows are grouped per rule, channel and
group label (the node, as Alertmanager's default grouping here) into one message, which
carries the cost context: the subject's GPU-hours and cost so far in the ledger, the teams
whose jobs ran on it, and a link into FrameOps. Silences (label matchers and a time range,
optionally one rule) keep rows from being recorded. Delivery retries with exponential
backoff; webhooks carry an idempotency key so a receiver can drop a repeat.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, connection, transaction
from django.db.models import Q, Sum
from django.utils import timezone

from finops.alerts.models import (
    Alert,
    AlertState,
    Channel,
    ChannelKind,
    Notification,
    NotificationKind,
    NotificationStatus,
    Silence,
)
from finops.costing.models import LedgerEntry
from finops.jobs.models import GpuAllocation
from finops.ops.emails import email_render

MAX_RESPONSE_BYTES = 64 * 1024


class DeliveryError(Exception):
    pass


def silenced(alert: Alert, now: datetime) -> bool:
    for silence in Silence.objects.filter(starts_at__lte=now, ends_at__gt=now).filter(
        Q(rule__isnull=True) | Q(rule_id=alert.rule_id)
    ):
        if all(alert.labels.get(k) == v for k, v in (silence.matchers or {}).items()):
            return True
    return False


# Rule kinds whose alert on a node mutes the same kind on that node's GPUs: a silent
# node's GPUs are silent too; a node on its power brake caps every GPU.
INHIBITING = ("telemetry_stale", "power_capping")


def inhibited(alert: Alert) -> bool:
    """A GPU's alert is muted while its node has a firing alert of the same rule kind."""
    node = alert.labels.get("node")
    if not alert.labels.get("gpu") or not node or alert.rule.kind not in INHIBITING:
        return False
    return (
        Alert.objects.filter(state=AlertState.FIRING, rule__kind=alert.rule.kind, labels__node=node)
        .exclude(labels__has_key="gpu")
        .exists()
    )


def notifications_record(
    *, fired: list[int], resolved: list[int], now: datetime | None = None
) -> list[Notification]:
    """Record the notices of a tick (and repeats due); returns the rows to deliver."""
    now = now or timezone.now()
    planned: list[tuple[Alert, str]] = [
        *((a, NotificationKind.FIRING) for a in Alert.objects.filter(pk__in=fired)),
        *((a, NotificationKind.RESOLVED) for a in Alert.objects.filter(pk__in=resolved)),
    ]
    due = Alert.objects.filter(state=AlertState.FIRING, last_notified_at__isnull=False)
    for alert in due.exclude(pk__in=fired).select_related("rule"):
        if (now - alert.last_notified_at).total_seconds() >= alert.rule.repeat_interval_s:
            planned.append((alert, NotificationKind.REPEAT))
    rows = []
    for alert, kind in planned:
        if silenced(alert, now) or inhibited(alert):
            continue
        group = group_key_of(alert)
        for channel in alert.rule.channels.filter(enabled=True):
            try:
                with transaction.atomic():
                    rows.append(
                        Notification.objects.create(
                            alert=alert,
                            channel=channel,
                            kind=kind,
                            group_key=group,
                            recorded_at=now,
                        )
                    )
            except IntegrityError:
                continue  # already recorded (a retried tick): never twice
        alert.last_notified_at = now
        alert.save(update_fields=["last_notified_at"])
    return rows


def group_labels_of(alert: Alert) -> dict[str, str]:
    """Alerts are grouped by their node (teams for budgets), as Alertmanager's grouping by
    a label."""
    for label in ("node", "team"):
        if alert.labels.get(label):
            return {label: alert.labels[label]}
    return {}


def group_key_of(alert: Alert) -> str:
    labels = ",".join(f"{k}={v}" for k, v in sorted(group_labels_of(alert).items()))
    return f"{alert.rule_id}:{{{labels}}}"[:300]


@dataclass
class Group:
    channel: Channel
    rule_name: str
    kind: str
    group_labels: dict[str, str]
    notifications: list[Notification]

    @property
    def key(self) -> str:
        labels = ",".join(f"{k}={v}" for k, v in sorted(self.group_labels.items()))
        return f"{self.rule_name}:{self.kind}:{{{labels}}}"


def groups_of(rows: list[Notification]) -> list[Group]:
    by_key: dict[tuple[int, str, str], list[Notification]] = defaultdict(list)
    for n in rows:
        by_key[(n.channel_id, n.group_key or group_key_of(n.alert), n.kind)].append(n)
    return [
        Group(
            items[0].channel, items[0].alert.rule.name, kind, group_labels_of(items[0].alert), items
        )
        for (_, _, kind), items in by_key.items()
    ]


def due_groups(now: datetime) -> list[Group]:
    """Pending notices whose group may be sent now, as Alertmanager times them: a group's
    first message waits ``group_wait_s`` (rule params; 0 by default: the tick that fired
    it) for more alerts to join; after a message, new alerts of the group wait
    ``group_interval_s`` (300 s by default) from it."""
    pending = list(
        Notification.objects.filter(status=NotificationStatus.PENDING).select_related(
            "alert__rule", "channel"
        )
    )
    due = []
    for group in groups_of(pending):
        params = group.notifications[0].alert.rule.params or {}
        last_sent = (
            Notification.objects.filter(
                channel=group.channel,
                group_key=group.notifications[0].group_key,
                status=NotificationStatus.SENT,
            )
            .order_by("-sent_at")
            .values_list("sent_at", flat=True)
            .first()
        )
        first = min(n.recorded_at or now for n in group.notifications)
        if last_sent is None:
            ready = (now - first).total_seconds() >= float(params.get("group_wait_s", 0))
        else:
            wait = float(params.get("group_interval_s", 300))
            ready = (now - last_sent).total_seconds() >= wait
        if ready:
            due.append(group)
    return due


def cost_context(alert: Alert) -> dict[str, Any]:
    """The subject's ledger since the alert became pending: GPU-hours and cost, and the
    teams whose jobs ran on it; a link into FrameOps."""
    since = alert.pending_since.replace(minute=0, second=0, microsecond=0)
    gpu = alert.labels.get("gpu")
    lines = LedgerEntry.objects.filter(window_start__gte=since)
    teams: list[str] = []
    if gpu:
        lines = lines.filter(gpu__uuid=gpu)
        teams = sorted(set(GpuAllocation.objects.filter(gpu__uuid=gpu, start__lt=timezone.now())
                           .filter(Q(end__isnull=True) | Q(end__gt=alert.pending_since))
                           .values_list("job__team__slug", flat=True)))  # fmt: skip
        link = f"{settings.FRAMEOPS_BASE_URL}/admin/fleet/gpu/?q={gpu}"
    elif alert.labels.get("team"):
        lines = lines.filter(team__slug=alert.labels["team"])
        teams = [alert.labels["team"]]
        team = alert.labels["team"]
        link = f"{settings.FRAMEOPS_BASE_URL}/api/v1/allocation?team={team}&window=thismonth"
    else:
        link = settings.FRAMEOPS_BASE_URL
    totals = lines.aggregate(hours=Sum("quantity", filter=Q(unit="gpu_hour")), cost=Sum("amount"))
    return {
        "gpu_hours": str((totals["hours"] or Decimal(0)).quantize(Decimal("0.01"))),
        "cost": str((totals["cost"] or Decimal(0)).quantize(Decimal("0.01"))),
        "teams": teams,
        "link": link,
    }


def _alert_json(n: Notification) -> dict[str, Any]:
    alert = n.alert
    status = "resolved" if n.kind == NotificationKind.RESOLVED else "firing"
    cost = cost_context(alert)
    return {
        "status": status,
        "labels": {"alertname": alert.rule.name, "severity": alert.rule.severity, **alert.labels},
        "annotations": {
            "summary": f"{alert.rule.name} on {alert.dedup_key}",
            "value": f"{alert.value:.4g}" if alert.value is not None else "",
            **{f"cost_{k}": (", ".join(v) if isinstance(v, list) else v) for k, v in cost.items()},
        },
        "startsAt": (alert.fired_at or alert.pending_since).isoformat(),
        "endsAt": alert.resolved_at.isoformat() if alert.resolved_at else "0001-01-01T00:00:00Z",
        "generatorURL": cost["link"],
        "fingerprint": f"{alert.pk:016x}",
    }


def webhook_body(group: Group) -> dict[str, Any]:
    """Alertmanager's version 4 webhook body, so existing receivers work unchanged."""
    alerts = [_alert_json(n) for n in group.notifications]
    common = set.intersection(*(set(a["labels"].items()) for a in alerts)) if alerts else set()
    return {
        "version": "4",
        "groupKey": group.key,
        "truncatedAlerts": 0,
        "status": "resolved" if group.kind == NotificationKind.RESOLVED else "firing",
        "receiver": group.channel.name,
        "groupLabels": group.group_labels,
        "commonLabels": dict(sorted(common)),
        "commonAnnotations": {},
        "externalURL": settings.FRAMEOPS_BASE_URL,
        "alerts": alerts,
    }


def slack_body(group: Group) -> dict[str, Any]:
    body = webhook_body(group)
    title = f"[{body['status'].upper()}] {group.rule_name}" + (
        f" on {', '.join(group.group_labels.values())}" if group.group_labels else ""
    )
    lines = [f"• {a['annotations']['summary']} (value {a['annotations']['value']}; "
             f"{a['annotations']['cost_gpu_hours']} GPU-h, {a['annotations']['cost_cost']} so far; "
             f"teams {a['annotations']['cost_teams'] or 'none'}) <{a['generatorURL']}|open>"
             for a in body["alerts"]]  # fmt: skip
    return {
        "text": title + "\n" + "\n".join(lines),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:2900]}},
        ],
    }


def _safe_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DeliveryError(f"{url!r}: only http and https URLs are delivered to")
    allowed = set(settings.ALERT_WEBHOOK_ALLOWED_HOSTS)
    if parts.hostname in allowed:
        return url
    for info in socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP):
        address = ipaddress.ip_address(info[4][0])
        if (
            address.is_loopback
            or address.is_private
            or address.is_link_local
            or address.is_reserved
        ):
            raise DeliveryError(
                f"{parts.hostname} resolves to {address}, a loopback, private or link-local "
                "address: allow it with ALERT_WEBHOOK_ALLOWED_HOSTS"
            )
    return url


def _post(url: str, body: dict[str, Any], key: str) -> None:
    response = requests.post(
        _safe_url(url), data=json.dumps(body), timeout=settings.ALERT_WEBHOOK_TIMEOUT_S,
        headers={"Content-Type": "application/json", "Idempotency-Key": key}, stream=True,
    )  # fmt: skip
    try:
        answer = response.raw.read(MAX_RESPONSE_BYTES, decode_content=True)
    finally:
        response.close()
    if response.status_code >= 300:
        raise DeliveryError(f"HTTP {response.status_code}: {answer[:200]!r}")


def _email(group: Group) -> None:
    body = webhook_body(group)
    context = {"group": group, "body": body, "alerts": body["alerts"]}
    rendered = email_render("alert", context)
    message = EmailMultiAlternatives(
        rendered.subject, rendered.text,
        to=[a.strip() for a in group.channel.target.split(",") if a.strip()],
    )  # fmt: skip
    message.attach_alternative(rendered.html, "text/html")
    message.send()


def group_deliver(
    group: Group,
    *,
    attempts: int | None = None,
    backoff_s: float | None = None,
    sent_at: datetime | None = None,
) -> bool:
    """Send one group; retried with exponential backoff; each row records its attempts and
    the last error. True when it was delivered."""
    attempts = attempts or settings.ALERT_DELIVERY_ATTEMPTS
    backoff_s = settings.ALERT_DELIVERY_BACKOFF_S if backoff_s is None else backoff_s
    ids = [n.pk for n in group.notifications]
    pending = Notification.objects.filter(pk__in=ids, status=NotificationStatus.PENDING)
    if not pending.exists():
        return True  # delivered by an earlier try
    key = "frameops-" + "-".join(str(i) for i in sorted(ids))
    for attempt in range(1, attempts + 1):
        Notification.objects.filter(pk__in=ids).update(attempts=attempt)  # recorded, then sent
        try:
            kind = group.channel.kind
            if kind == ChannelKind.EMAIL:
                _email(group)
            elif kind == ChannelKind.SLACK:
                _post(group.channel.target, slack_body(group), key)
            else:
                _post(group.channel.target, webhook_body(group), key)
        except (DeliveryError, requests.RequestException, OSError) as exc:
            Notification.objects.filter(pk__in=ids).update(last_error=str(exc)[:2000])
            if attempt < attempts:
                time.sleep(backoff_s * 2 ** (attempt - 1))
            continue
        Notification.objects.filter(pk__in=ids).update(
            status=NotificationStatus.SENT, sent_at=sent_at or timezone.now(), last_error=""
        )
        return True
    Notification.objects.filter(pk__in=ids).update(status=NotificationStatus.FAILED)
    return False


def tick_notify(*, fired: list[int], resolved: list[int], now: datetime | None = None) -> int:
    """Record this tick's notices, then deliver each group (a failing channel delays no
    other: each group has its own timeouts and retries). Returns the groups delivered."""
    now = now or timezone.now()
    notifications_record(fired=fired, resolved=resolved, now=now)
    groups = due_groups(now)
    if len(groups) <= 1 or connection.in_atomic_block:
        return sum(group_deliver(g, sent_at=now) for g in groups)

    def deliver(group: Group) -> bool:
        try:
            return group_deliver(group, sent_at=now)
        finally:
            connection.close()  # this thread's own connection

    with ThreadPoolExecutor(max_workers=min(len(groups), 8)) as pool:
        return sum(pool.map(deliver, groups))
