from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from finops.accounts.models import ApiKey
from finops.accounts.services import api_key_revoke


class Command(BaseCommand):
    help = "Revoke an API key by its visible prefix (as listed in the admin)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("prefix", help="The key's first characters, e.g. fo_AbC12345.")

    def handle(self, *args: Any, **options: Any) -> None:
        keys = list(ApiKey.objects.filter(prefix=options["prefix"]))
        if not keys:
            raise CommandError(f"No API key has prefix {options['prefix']!r}.")
        if len(keys) > 1:
            raise CommandError(f"{len(keys)} keys share that prefix; revoke in the admin.")
        api_key_revoke(api_key=keys[0])
        self.stdout.write(f"Revoked {keys[0]}.")
