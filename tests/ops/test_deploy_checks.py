"""Configuration is judged by ``manage.py check`` in a fresh process, as an operator runs it."""

from __future__ import annotations

import os
import secrets
import string
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PG_URL = "postgres://root@127.0.0.1:5432/root"
ALPHABET = string.ascii_letters + string.digits + "!@#%^&*(-_=+)"


def _check(env: dict[str, str], *args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return _manage(env, "check", *args, tmp_path=tmp_path)


def _manage(
    env: dict[str, str], command: str, *args: str, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {
            "DATABASE_URL",
            "DEBUG",
            "SECRET_KEY",
            "CELERY_BROKER_URL",
            "CELERY_TASK_ALWAYS_EAGER",
            "API_KEY_SECRET",
            "ALLOWED_HOSTS",
            "METRICS_TOKEN",
            "STATIC_ROOT",
        }
    }
    return subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", command, *args],
        cwd=ROOT,
        env={**base, "FRAMEOPS_VAR_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _secret() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(50))


def test_production_settings_pass_the_deploy_check(tmp_path):
    env = {
        "DEBUG": "0",
        "SECRET_KEY": _secret(),
        "ALLOWED_HOSTS": "frameops.example",
        "DATABASE_URL": PG_URL,
        "METRICS_TOKEN": secrets.token_urlsafe(24),
    }
    # As the Dockerfile builds the image: static files collected with DEBUG=0.
    collected = _manage(env, "collectstatic", "--no-input", tmp_path=tmp_path)
    assert collected.returncode == 0, collected.stderr
    assert (tmp_path / "static" / "staticfiles.json").is_file()
    result = _check(env, "--deploy", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_security_settings_are_driven_by_environment(tmp_path):
    result = _check(
        {
            "DEBUG": "0",
            "SECRET_KEY": _secret(),
            "ALLOWED_HOSTS": "frameops.example",
            "DATABASE_URL": PG_URL,
            "SECURE_SSL_REDIRECT": "0",
            "SECURE_HSTS_SECONDS": "0",
        },
        "--deploy",
        tmp_path=tmp_path,
    )
    assert "security.W008" in result.stderr  # SSL redirect off
    assert "security.W004" in result.stderr  # HSTS off


def test_embedded_secret_with_debug_off_is_an_error(tmp_path):
    result = _check(
        {"DEBUG": "0", "ALLOWED_HOSTS": "x.example", "DATABASE_URL": PG_URL}, tmp_path=tmp_path
    )
    assert result.returncode != 0
    assert "finops.E001" in result.stderr
    assert "finops.E002" in result.stderr
    # Nothing collected, no metrics token: each an error of its own.
    assert "finops.E003" in result.stderr and "static files were not collected" in result.stderr
    assert "finops.E004" in result.stderr and "METRICS_TOKEN is not set" in result.stderr


def test_sqlite_and_eager_tasks_with_debug_off_are_flagged(tmp_path):
    result = _check(
        {
            "DEBUG": "0",
            "SECRET_KEY": _secret(),
            "ALLOWED_HOSTS": "x.example",
            "CELERY_TASK_ALWAYS_EAGER": "1",
        },
        tmp_path=tmp_path,
    )
    assert "finops.W001" in result.stderr
    assert "finops.W002" in result.stderr


def test_embedded_defaults_pass_the_plain_check(tmp_path):
    result = _check({}, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DEBUG": "maybe"}, "DEBUG='maybe' is not a boolean"),
        ({"SECURE_HSTS_SECONDS": "a year"}, "SECURE_HSTS_SECONDS='a year' is not an integer"),
        ({"EMAIL_URL": "pigeon://coop"}, "EMAIL_URL scheme 'pigeon'"),
        ({"DATABASE_URL": "nosuchdb://x"}, "DATABASE_URL cannot be parsed"),
    ],
)
def test_unreadable_settings_stop_the_process_naming_the_variable(tmp_path, env, message):
    result = _check(env, tmp_path=tmp_path)
    assert result.returncode != 0
    assert message in result.stderr
