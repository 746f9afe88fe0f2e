"""Weekly reports: which subscriptions are due, claiming a (subscription, week) exactly
once, building the message (text, HTML with inline charts, CSV of the week's allocation),
delivering it with retries, and the signed one-click unsubscribe."""

from __future__ import annotations

import base64
import csv
import email.message
import email.policy
import email.utils
import io
import logging
import smtplib
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.mail import EmailMessage as DjangoEmailMessage
from django.core.mail import get_connection
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from finops.ops.audit import audit_record_change
from finops.ops.emails import Rendered, email_render
from finops.reports.content import (
    Week,
    WeeklyReport,
    data_gaps,
    recipient_scope,
    week_last_full,
    weekly_report,
)
from finops.reports.models import PENDING, ReportRun, ReportRunStatus, ReportSubscription

log = logging.getLogger("frameops.reports")
UNSUBSCRIBE_SALT = "frameops.reports.unsubscribe"
CSV_COLUMNS = [
    "team", "project", "model", "gpu_hours", "gpu_cost", "idle_cost", "storage_cost",
    "energy_cost", "waste_cost", "regeneration_cost", "total_cost", "generated_seconds",
    "usable_seconds", "cost_per_usable_second", "currency",
]  # fmt: skip
WAIT_RECHECK = timedelta(minutes=15)


# --- when --------------------------------------------------------------------------------


def due_at(subscription: ReportSubscription, week: Week) -> datetime:
    """The week's report is due on the following week's ``weekday`` at ``hour``, local."""
    day = week.monday + timedelta(days=7 + subscription.weekday)
    local = datetime.combine(day, time(subscription.hour), zoneinfo.ZoneInfo(week.zone))
    return local.astimezone(zoneinfo.ZoneInfo("UTC"))


def week_of(subscription: ReportSubscription, monday: date | None, now: datetime) -> Week:
    if monday is None:
        return week_last_full(now, subscription.timezone)
    if monday.weekday() != 0:
        raise ValueError(f"week: {monday} is a {monday:%A}; give the week's Monday")
    return Week(monday, subscription.timezone)


def runs_claim(*, now: datetime | None = None) -> list[ReportRun]:
    """Claim the last full week of every enabled subscription whose send time has come
    (and that existed by then): one ReportRun per (subscription, week), created once; a
    second scheduler, a retried task or a duplicate finds it taken."""
    now = now or timezone.now()
    claimed = []
    for subscription in ReportSubscription.objects.filter(enabled=True):
        week = week_last_full(now, subscription.timezone)
        due = due_at(subscription, week)
        if now < due or subscription.created_at > due:
            continue
        try:
            with transaction.atomic():
                claimed.append(
                    ReportRun.objects.create(
                        subscription=subscription, week_start=week.monday, due_at=due
                    )
                )
        except IntegrityError:
            continue  # claimed already
    return claimed


def run_for_week(subscription: ReportSubscription, week: Week, *, now: datetime) -> str:
    """Claim and deliver ``week`` for one subscription now (``send_weekly_reports --week``):
    the same ReportRun as the schedule's, so a week already sent is not sent again."""
    with transaction.atomic():
        run, _ = ReportRun.objects.get_or_create(
            subscription=subscription, week_start=week.monday, defaults={"due_at": now}
        )
        run = ReportRun.objects.select_for_update().select_related("subscription").get(pk=run.pk)
        if run.status not in PENDING:
            return f"already {run.status}"
        return run_deliver(run, now=now)


# --- what --------------------------------------------------------------------------------


class _Mime(email.message.EmailMessage):
    """A standard-library message Django's SMTP backend can send (it asks for CRLF)."""

    def as_bytes(self, unixfrom: bool = False, linesep: str = "\n") -> bytes:  # type: ignore[override]
        return super().as_bytes(unixfrom, policy=self.policy.clone(linesep=linesep))


class _Prepared(DjangoEmailMessage):
    """Hands a finished MIME tree to Django's mail backends."""

    def __init__(self, mime: _Mime, to: list[str]) -> None:
        super().__init__(subject=str(mime["Subject"]), to=to, from_email=str(mime["From"]))
        self._mime = mime

    def message(self, *args: Any, **kwargs: Any) -> Any:
        return self._mime


@dataclass
class Built:
    rendered: Rendered
    mime: _Mime
    report: WeeklyReport


def _days(week: Week) -> list[str]:
    return [(week.monday + timedelta(days=i)).strftime("%a %d") for i in range(7)]


def report_images(report: WeeklyReport) -> dict[str, bytes]:
    from finops.reports import charts  # matplotlib: only where a report is drawn, not at start-up

    team_rows = [t for t in report.teams if t["name"] in {x.slug for x in report.scope.teams}]
    return {
        "spend": charts.spend_per_day(report.daily, _days(report.week), report.currency),
        "cps": charts.cost_per_usable_second(
            [t["name"] for t in team_rows],
            [_f(t["cost_per_usable_second"]) for t in team_rows],
            [_f(t["previous_cps"]) for t in team_rows],
            report.currency,
        ),
    }


def _f(value: Any) -> float | None:
    return None if value is None else float(value)


def allocation_csv(report: WeeklyReport) -> str:
    """The week's allocation by team, project and model: plain numbers, one currency
    column, empty cells for no value (loads in pandas as float columns)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for r in report.allocation:
        team, _, rest = r["name"].partition(",")
        project, _, model = rest.partition(",")
        writer.writerow([team, "" if project == "__none__" else project,
                         "" if model == "__none__" else model,
                         *("" if r.get(c) is None else r[c] for c in CSV_COLUMNS[3:-1]),
                         report.currency])  # fmt: skip
    return out.getvalue()


def report_context(
    report: WeeklyReport, *, images: dict[str, str], unsubscribe: str | None
) -> dict[str, Any]:
    return {"r": report, "img": images, "unsubscribe": unsubscribe}


def report_build(
    subscription: ReportSubscription, report: WeeklyReport, *, to: str | None = None
) -> Built:
    """The message: multipart/mixed [alternative [text, related [HTML, PNGs]], CSV]."""
    images = report_images(report)
    unsubscribe = unsubscribe_url(subscription)
    rendered = email_render(
        "weekly",
        report_context(report, images={k: f"cid:{k}@frameops" for k in images},
                       unsubscribe=unsubscribe),
    )  # fmt: skip
    mime = _Mime(policy=email.policy.SMTP)
    mime["Subject"] = rendered.subject
    mime["From"] = settings.DEFAULT_FROM_EMAIL
    mime["To"] = to or subscription.email
    mime["Date"] = email.utils.formatdate(localtime=False)
    mime["Message-ID"] = email.utils.make_msgid(domain="frameops")
    mime["Auto-Submitted"] = "auto-generated"
    mime["List-Unsubscribe"] = f"<{unsubscribe}>"
    mime["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    mime.set_content(rendered.text)
    mime.add_alternative(rendered.html, subtype="html")
    html_part = mime.get_payload()[1]  # type: ignore[index]
    for name, png in images.items():
        html_part.add_related(png, "image", "png", cid=f"<{name}@frameops>",
                              filename=f"{name}.png")  # fmt: skip
    mime.add_attachment(
        allocation_csv(report).encode(),
        maintype="text",
        subtype="csv",
        filename=f"frameops-allocation-{report.week.monday}.csv",
    )
    return Built(rendered, mime, report)


def report_preview_html(report: WeeklyReport, subscription: ReportSubscription | None) -> str:
    """The same HTML the e-mail carries, its images inline as data URIs."""
    images = {
        k: "data:image/png;base64," + base64.b64encode(v).decode()
        for k, v in report_images(report).items()
    }
    unsubscribe = unsubscribe_url(subscription) if subscription is not None else None
    return email_render(
        "weekly", report_context(report, images=images, unsubscribe=unsubscribe)
    ).html


def subscription_report(
    subscription: ReportSubscription,
    week: Week,
    *,
    now: datetime | None = None,
    provisional: list[str] | None = None,
) -> WeeklyReport | None:
    scope = recipient_scope(user=subscription.user, team=subscription.team)
    if not scope.teams:
        return None
    return weekly_report(scope, week, now=now, provisional=provisional)


# --- delivery ----------------------------------------------------------------------------


def run_deliver(run: ReportRun, *, now: datetime | None = None) -> str:
    """Send one claimed run (the caller holds its row lock). Incomplete data waits until
    the provisional delay after its due time; delivery failures back off and retry."""
    now = now or timezone.now()
    subscription = run.subscription
    week = Week(run.week_start, subscription.timezone)
    gaps = data_gaps(week, now=now)
    deadline = (run.due_at or now) + timedelta(seconds=settings.REPORTS_PROVISIONAL_DELAY_S)
    if gaps and now < deadline:
        run.status = ReportRunStatus.WAITING
        run.next_attempt_at = min(now + WAIT_RECHECK, deadline)
        run.provisional = gaps
        run.save(update_fields=["status", "next_attempt_at", "provisional"])
        return run.status
    try:
        with transaction.atomic():  # a savepoint: a failed query leaves the run writable
            report = subscription_report(subscription, week, now=now, provisional=gaps)
            built = report_build(subscription, report) if report is not None else None
    except Exception as exc:  # a report that cannot be drawn must not hold up the others
        log.exception("weekly report %s week of %s could not be built", subscription, week.monday)
        run.status = ReportRunStatus.FAILED
        run.error = f"building the report: {type(exc).__name__}: {exc}"[:2000]
        run.save(update_fields=["status", "error"])
        return run.status
    if report is None or built is None:
        run.status = ReportRunStatus.FAILED
        run.error = "the recipient may no longer see the subscribed team"
        run.save(update_fields=["status", "error"])
        return run.status
    run.attempts += 1
    try:
        with get_connection(fail_silently=False) as connection:
            connection.send_messages([_Prepared(built.mime, [subscription.email])])
    except (smtplib.SMTPException, OSError) as exc:
        run.error = f"attempt {run.attempts}: {type(exc).__name__}: {exc}"[:2000]
        if run.attempts >= settings.REPORTS_MAX_ATTEMPTS:
            run.status = ReportRunStatus.FAILED
            run.next_attempt_at = None
        else:
            run.status = ReportRunStatus.RETRYING
            backoff = settings.REPORTS_RETRY_BACKOFF_S * 2 ** (run.attempts - 1)
            run.next_attempt_at = now + timedelta(seconds=backoff)
        run.save(update_fields=["status", "attempts", "error", "next_attempt_at"])
        return run.status
    run.status = ReportRunStatus.SENT
    run.sent_at = now
    run.provisional = gaps
    run.next_attempt_at = None
    run.error = ""
    run.save(
        update_fields=["status", "attempts", "sent_at", "provisional", "next_attempt_at", "error"]
    )
    return run.status


def reports_send_due(
    *, now: datetime | None = None, progress: Callable[[str], None] | None = None
) -> dict[str, int]:
    """Claim what is due, then deliver each pending run whose time has come, one at a time
    under its row lock (another worker skips a locked run)."""
    now = now or timezone.now()
    say = progress or (lambda _: None)
    counts = {"claimed": len(runs_claim(now=now))}
    done: set[int] = set()
    while True:
        with transaction.atomic():
            run = (
                ReportRun.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("subscription__team", "subscription__user")
                .filter(status__in=PENDING)
                .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
                .exclude(pk__in=done)
                .order_by("pk")
                .first()
            )
            if run is None:
                break
            done.add(run.pk)
            status = run_deliver(run, now=now)
        counts[status] = counts.get(status, 0) + 1
        say(f"{run.subscription.email} week of {run.week_start}: {status}")
    return counts


# --- unsubscribe -------------------------------------------------------------------------


def unsubscribe_url(subscription: ReportSubscription) -> str:
    token = signing.dumps({"s": subscription.pk, "e": subscription.email}, salt=UNSUBSCRIBE_SALT)
    return f"{settings.FRAMEOPS_BASE_URL.rstrip('/')}/reports/unsubscribe/{token}/"


def unsubscribe_subscription(token: str) -> ReportSubscription | None:
    """The subscription a link names; None for a link that was not signed here."""
    try:
        payload = signing.loads(token, salt=UNSUBSCRIBE_SALT)
    except signing.BadSignature:
        return None
    return ReportSubscription.objects.filter(pk=payload.get("s"), email=payload.get("e")).first()


def unsubscribe(token: str) -> tuple[str, ReportSubscription | None]:
    """``done`` (disabled now), ``already`` (a second click) or ``invalid``."""
    subscription = unsubscribe_subscription(token)
    if subscription is None:
        return "invalid", None
    updated = ReportSubscription.objects.filter(pk=subscription.pk, enabled=True).update(
        enabled=False
    )
    if updated:
        audit_record_change(subscription, {"enabled": (True, False)})
    return ("done" if updated else "already"), subscription
