from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from finops.accounts.services import admin_user_ensure


class Command(BaseCommand):
    help = "Create a superuser with a generated password when none exists, and print it once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="admin")
        parser.add_argument("--email", default="admin@localhost")

    def handle(self, *args: Any, **options: Any) -> None:
        password = admin_user_ensure(username=options["username"], email=options["email"])
        if password is None:
            self.stdout.write("A superuser exists already; nothing created.")
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"Created superuser '{options['username']}' with one-time password: {password}\n"
                "It is printed only now. Change it after signing in (admin > Change password)."
            )
        )
