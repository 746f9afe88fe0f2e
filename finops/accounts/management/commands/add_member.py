from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from finops.accounts.models import Role, Team
from finops.accounts.services import membership_set


class Command(BaseCommand):
    help = (
        "Give a user a role on a team: add_member USER TEAM --role viewer|manager|finance|admin. "
        "A second call changes the role."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("user", help="username")
        parser.add_argument("team", help="team slug")
        parser.add_argument("--role", required=True, choices=Role.values)

    def handle(self, *args: Any, **options: Any) -> None:
        users = get_user_model()
        try:
            user = users.objects.get(username=options["user"])
        except users.DoesNotExist:
            raise CommandError(
                f"no user {options['user']!r}: create one with `manage.py createsuperuser` "
                "or in the admin (Users > Add)"
            ) from None
        try:
            team = Team.objects.get(slug=options["team"])
        except Team.DoesNotExist:
            raise CommandError(
                f"no team {options['team']!r}: create it with `manage.py create_team`"
            ) from None
        membership_set(user=user, team=team, role=options["role"])
        self.stdout.write(
            self.style.SUCCESS(f"{user.get_username()} is {options['role']} of {team.slug}.")
        )
