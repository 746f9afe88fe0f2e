"""The report pages: the one-click unsubscribe (no sign-in: the signed link is the
credential), a preview of the HTML a recipient would get, and people's own subscriptions."""

from __future__ import annotations

import zoneinfo
from datetime import date
from typing import Any

from django.contrib.auth.decorators import login_required
from django.db import IntegrityError
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from finops.accounts.models import Team
from finops.accounts.selectors import team_list_visible
from finops.reports.content import Week, recipient_scope, week_last_full, weekly_report
from finops.reports.models import ReportSubscription
from finops.reports.services import report_preview_html, unsubscribe, unsubscribe_subscription

WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


@csrf_exempt  # mail clients POST "List-Unsubscribe=One-Click" (RFC 8058) with no session
def unsubscribe_view(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows what the link will do and a button; POST (the button, or a mail client's
    one-click) disables the subscription. A second use says it is done already; a link
    that was not signed here is refused."""
    if request.method == "POST":
        outcome, subscription = unsubscribe(token)
        status = {"done": 200, "already": 410, "invalid": 400}[outcome]
        context = {"outcome": outcome, "subscription": subscription}
        return render(request, "reports/unsubscribe.html", context, status=status)
    subscription = unsubscribe_subscription(token)
    if subscription is None:
        return render(request, "reports/unsubscribe.html", {"outcome": "invalid"}, status=400)
    outcome = "confirm" if subscription.enabled else "already"
    return render(request, "reports/unsubscribe.html",
                  {"outcome": outcome, "subscription": subscription})  # fmt: skip


@login_required
def preview(request: HttpRequest) -> HttpResponse:
    """``?team=SLUG&week=YYYY-MM-DD&tz=ZONE``: the HTML of that report as the signed-in
    person would receive it (no team: every team they may see)."""
    errors = {}
    zone = request.GET.get("tz", "UTC")
    if zone not in zoneinfo.available_timezones():
        errors["tz"] = f"{zone[:40]!r} is not an IANA time zone (for example Europe/Paris)"
        zone = "UTC"
    team = None
    if request.GET.get("team"):
        team = team_list_visible(user=request.user).filter(slug=request.GET["team"]).first()
        if team is None:
            return HttpResponse("team: no such team among yours", status=404)
    week = week_last_full(timezone.now(), zone)
    if request.GET.get("week"):
        try:
            monday = date.fromisoformat(request.GET["week"])
        except ValueError:
            errors["week"] = f"{request.GET['week'][:20]!r} is not a date (YYYY-MM-DD)"
        else:
            if monday.weekday() != 0:
                errors["week"] = f"{monday} is a {monday:%A}: give the week's Monday"
            else:
                week = Week(monday, zone)
    if errors:
        text = "; ".join(f"{k}: {v}" for k, v in errors.items())
        return HttpResponse(text, status=400, content_type="text/plain; charset=utf-8")
    scope = recipient_scope(user=request.user, team=team)
    if not scope.teams:
        return HttpResponse(
            "You belong to no team yet: an admin adds you (manage.py add_member).", status=404
        )
    return HttpResponse(report_preview_html(weekly_report(scope, week), None))


def _mine(request: HttpRequest) -> Any:
    user = request.user
    own = Q(user=user)
    if getattr(user, "email", ""):
        own |= Q(user__isnull=True, email__iexact=user.email)
    return ReportSubscription.objects.filter(own).select_related("team").order_by("pk")


@login_required
def subscriptions(request: HttpRequest) -> HttpResponse:
    """People manage their own weekly reports: add one (a team of theirs or all of them,
    weekday, hour and time zone), pause, resume, remove."""
    teams = team_list_visible(user=request.user)
    form: dict[str, Any] = {
        "team": "", "weekday": "0", "hour": "7", "timezone": "UTC",
        "email": getattr(request.user, "email", ""),
    }  # fmt: skip
    errors: dict[str, str] = {}
    status = 200
    if request.method == "POST":
        form.update({k: request.POST.get(k, "").strip() for k in form})
        team = None
        if form["team"]:
            team = teams.filter(slug=form["team"]).first()
            if team is None:
                errors["team"] = f"{form['team'][:40]!r} is not one of your teams"
        for name, high in (("weekday", 6), ("hour", 23)):
            if not form[name].isdigit() or not 0 <= int(form[name]) <= high:
                errors[name] = f"must be a whole number from 0 to {high}"
        if form["timezone"] not in zoneinfo.available_timezones():
            errors["timezone"] = f"{form['timezone'][:40]!r} is not an IANA time zone"
        if "@" not in form["email"] or len(form["email"]) > 254:
            errors["email"] = "give the address the report goes to"
        if not errors:
            try:
                ReportSubscription.objects.create(
                    user=request.user, email=form["email"], team=team,
                    weekday=int(form["weekday"]), hour=int(form["hour"]),
                    timezone=form["timezone"],
                )  # fmt: skip
            except IntegrityError:
                errors["team"] = "that address already gets this report"
            else:
                return redirect("reports:subscriptions")
        status = 400
    return render(
        request,
        "reports/subscriptions.html",
        {
            "subscriptions": _mine(request),
            "teams": teams,
            "form": form,
            "errors": errors,
            "weekdays": list(enumerate(WEEKDAYS)),
            "zones": sorted(zoneinfo.available_timezones()),
            "simulated": Team.objects.filter(slug__startswith="sim-").exists(),
        },
        status=status,
    )


@login_required
@require_POST
def subscription_change(request: HttpRequest, pk: int) -> HttpResponse:
    subscription = get_object_or_404(_mine(request), pk=pk)
    action = request.POST.get("action", "")
    if action == "pause":
        subscription.enabled = False
        subscription.save(update_fields=["enabled"])
    elif action == "resume":
        subscription.enabled = True
        subscription.save(update_fields=["enabled"])
    elif action == "remove":
        subscription.delete()
    else:
        return HttpResponse(f"action: {action[:20]!r}: use pause, resume or remove", status=400)
    return redirect("reports:subscriptions")
