from __future__ import annotations

from datetime import date
from typing import Any

from django.core.mail import get_connection
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from finops.reports.models import ReportSubscription
from finops.reports.services import (
    _Prepared,
    report_build,
    reports_send_due,
    run_for_week,
    subscription_report,
    week_of,
)


class Command(BaseCommand):
    help = (
        "Send the weekly cost reports that are due (what the beat does every 5 minutes), or "
        "with --week that week to every enabled subscription, once per subscription and week "
        "(--to: to one address instead, recording nothing; --dry-run: render and print the "
        "subjects, send nothing)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--week", help="the Monday (YYYY-MM-DD) of the week to report")
        parser.add_argument("--to", help="send every report to this address instead")
        parser.add_argument("--dry-run", action="store_true", help="render, print, send nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        say = self.stdout.write
        if not options["week"] and not options["to"] and not options["dry_run"]:
            counts = reports_send_due(progress=lambda line: say(f"  {line}"))
            say(self.style.SUCCESS(", ".join(f"{v} {k}" for k, v in counts.items())))
            return
        monday = None
        if options["week"]:
            try:
                monday = date.fromisoformat(options["week"])
            except ValueError:
                raise CommandError(
                    f"--week: {options['week']!r} is not a date (YYYY-MM-DD)"
                ) from None
        now = timezone.now()
        subscriptions = list(
            ReportSubscription.objects.filter(enabled=True).select_related("team", "user")
        )
        if not subscriptions:
            say("No enabled subscriptions: add one in the dashboard (Reports) or the admin.")
            return
        sent = 0
        with get_connection() as connection:
            for i, subscription in enumerate(subscriptions, start=1):
                try:
                    week = week_of(subscription, monday, now)
                except ValueError as exc:
                    raise CommandError(f"--{exc}") from None
                report = subscription_report(subscription, week, now=now)
                where = f"[{i}/{len(subscriptions)}] {subscription} week of {week.monday}"
                if report is None:
                    say(f"{where}: skipped (the recipient may not see the subscribed team)")
                    continue
                if not options["to"] and not options["dry_run"]:
                    status = run_for_week(subscription, week, now=now)
                    sent += status == "sent"
                    say(f"{where}: {status}")
                    continue
                built = report_build(subscription, report, to=options["to"])
                if options["dry_run"]:
                    say(f"{where}: {built.rendered.subject}")
                    continue
                connection.send_messages(
                    [_Prepared(built.mime, [options["to"] or subscription.email])]
                )
                sent += 1
                say(f"{where}: sent to {options['to'] or subscription.email}")
        say(
            self.style.SUCCESS(
                f"{sent} sent" if not options["dry_run"] else "dry run: nothing sent"
            )
        )
