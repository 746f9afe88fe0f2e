"""System checks for dangerous configuration combinations.

Ids are stable and documented in README.md ("Configuration"): operators grep for them.
"""

from __future__ import annotations

from pathlib import Path
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
    manifest = Path(settings.STATIC_ROOT) / "staticfiles.json"
    if not manifest.is_file():
        problems.append(
            Error(
                f"DEBUG is off but static files were not collected into {settings.STATIC_ROOT}.",
                hint="Run `DEBUG=0 manage.py collectstatic --no-input` at build time (the "
                "Dockerfile does): without it every page loses its scripts and styles.",
                id="finops.E003",
            )
        )
    if not settings.METRICS_TOKEN:
        problems.append(
            Error(
                "DEBUG is off and METRICS_TOKEN is not set: /metrics and /metrics/costs "
                "would answer only signed-in admins and finance, and Prometheus could not "
                "scrape them.",
                hint="Set METRICS_TOKEN (or METRICS_TOKEN_FILE) and give Prometheus the same "
                "token as a bearer credential (docs/deploy.md).",
                id="finops.E004",
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
