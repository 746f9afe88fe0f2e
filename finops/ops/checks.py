"""System checks for dangerous configuration combinations.

Ids are stable and documented in README.md ("Configuration"): operators grep for them.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register


@register(Tags.security, deploy=False)
def check_production_combinations(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    problems: list[Any] = []
    if settings.DEBUG:
        return problems
    if settings.SECRET_KEY == settings.INSECURE_SECRET_KEY:
        problems.append(
            Error(
                "DEBUG is off but SECRET_KEY is the embedded demo key.",
                hint="Set SECRET_KEY (or SECRET_KEY_FILE) to 50+ random characters.",
                id="finops.E001",
            )
        )
    if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
        problems.append(
            Warning(
                "DEBUG is off but the database is the embedded SQLite file.",
                hint="Set DATABASE_URL to a PostgreSQL database: SQLite serialises every "
                "write and has no COPY ingest path.",
                id="finops.W001",
            )
        )
    if settings.CELERY_TASK_ALWAYS_EAGER:
        problems.append(
            Warning(
                "DEBUG is off but Celery tasks run eagerly inside web requests.",
                hint="Set CELERY_BROKER_URL to Redis or RabbitMQ and run workers; "
                "unset CELERY_TASK_ALWAYS_EAGER.",
                id="finops.W002",
            )
        )
    if settings.API_KEY_SECRET == settings.INSECURE_SECRET_KEY:
        problems.append(
            Error(
                "DEBUG is off but API keys are hashed with the embedded demo key.",
                hint="Set API_KEY_SECRET, or SECRET_KEY which it defaults to.",
                id="finops.E002",
            )
        )
    return problems
