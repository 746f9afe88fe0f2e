from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from finops.accounts.models import Scope, Team
from finops.accounts.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key and print it once. It cannot be shown again."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True, help="Who or what uses the key.")
        parser.add_argument(
            "--scope",
            action="append",
            required=True,
            help=f"Repeat or comma-separate: {', '.join(Scope.values)}.",
        )
        parser.add_argument("--team", help="Restrict the key to this team slug.")

    def handle(self, *args: Any, **options: Any) -> None:
        team = None
        if options["team"]:
            team = Team.objects.filter(slug=options["team"]).first()
            if team is None:
                raise CommandError(f"--team: no team with slug {options['team']!r}")
        scopes = [s for value in options["scope"] for s in value.split(",")]
        try:
            key, raw_key = api_key_create(name=options["name"], scopes=scopes, team=team)
        except ValidationError as exc:
            problems = "; ".join(
                f"--{f.rstrip('s')}: {' '.join(m)}" for f, m in exc.message_dict.items()
            )
            raise CommandError(problems) from exc
        self.stderr.write(
            f"Created API key {key.prefix}… '{key.name}' scopes={','.join(key.scopes)}"
            + (f" team={team.slug}" if team else "")
            + ". Store it now: it is not shown again."
        )
        self.stdout.write(raw_key)
