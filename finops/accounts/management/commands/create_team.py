from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from collectors.pricing.offers import KNOWN_CURRENCIES
from finops.accounts.models import Team
from finops.accounts.services import team_create


def _budget(value: str) -> Decimal:
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise CommandError(f"--budget: {value!r} is not a number") from None
    if not amount.is_finite() or amount < 0:
        raise CommandError(f"--budget: {value!r} must be a finite amount of at least 0")
    return amount


class Command(BaseCommand):
    help = "Create a team (the unit costs are attributed to): create_team SLUG --name NAME."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="the team's id in job events and the API, e.g. studio-a")
        parser.add_argument("--name", required=True, help="display name, e.g. 'Studio A'")
        parser.add_argument("--budget", help="monthly GPU budget in --currency (optional)")
        parser.add_argument("--currency", default="USD", help="ISO 4217 code (default USD)")

    def handle(self, *args: Any, **options: Any) -> None:
        slug, currency = options["slug"], options["currency"].upper()
        if currency not in KNOWN_CURRENCIES:
            raise CommandError(f"--currency: {options['currency']!r} is not a known ISO 4217 code")
        if Team.objects.filter(slug=slug).exists():
            raise CommandError(f"team {slug!r} exists already; change it in the admin")
        budget = _budget(options["budget"]) if options["budget"] is not None else None
        try:
            team = team_create(
                slug=slug, name=options["name"], currency=currency, monthly_budget=budget
            )
        except ValidationError as exc:
            fields = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
            raise CommandError(fields) from None
        budget_text = f", budget {team.monthly_budget} {team.currency}/month" if budget else ""
        self.stdout.write(
            self.style.SUCCESS(f"Created team {team.slug} ({team.name}){budget_text}.")
        )
