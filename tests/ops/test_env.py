from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from finops.env import email_settings_from_url, env_str


def test_smtp_url_with_credentials_and_starttls():
    settings = email_settings_from_url("smtp://user%40x:p%3Ass@mail.example:587?tls=1")
    assert settings == {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "mail.example",
        "EMAIL_PORT": 587,
        "EMAIL_HOST_USER": "user@x",
        "EMAIL_HOST_PASSWORD": "p:ss",
        "EMAIL_USE_SSL": False,
        "EMAIL_USE_TLS": True,
    }


def test_smtps_defaults_to_port_465():
    settings = email_settings_from_url("smtps://mail.example")
    assert settings["EMAIL_PORT"] == 465
    assert settings["EMAIL_USE_SSL"] is True


def test_email_url_without_host_is_refused():
    with pytest.raises(ImproperlyConfigured, match="no host"):
        email_settings_from_url("smtp://")


def test_secret_read_from_file(tmp_path, monkeypatch):
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-a-file\n")
    monkeypatch.setenv("SOME_SECRET_FILE", str(secret_file))
    assert env_str("SOME_SECRET") == "from-a-file"
    monkeypatch.setenv("SOME_SECRET_FILE", str(tmp_path / "missing"))
    with pytest.raises(ImproperlyConfigured, match="SOME_SECRET_FILE"):
        env_str("SOME_SECRET")
