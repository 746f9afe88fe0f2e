"""Writes for teams, memberships and API keys."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from finops.accounts.models import ApiKey, Membership, Role, Scope, Team

KEY_TYPE_PREFIX = "fo_"
KEY_PREFIX_LENGTH = 11  # "fo_" + 8 characters: enough to tell keys apart, useless to guess.
# last_used_at is advisory; writing it on every request would turn each read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def api_key_digest(raw_key: str) -> str:
    secret = settings.API_KEY_SECRET.encode()
    return hmac.new(secret, raw_key.encode(), hashlib.sha256).hexdigest()


def _validated_scopes(scopes: Iterable[str]) -> list[str]:
    wanted = [s.strip() for s in scopes if s and s.strip()]
    if not wanted:
        raise ValidationError({"scopes": "At least one scope is required."})
    unknown = sorted(set(wanted) - set(Scope.values))
    if unknown:
        raise ValidationError(
            {"scopes": f"Unknown scope(s) {', '.join(unknown)}; use {', '.join(Scope.values)}."}
        )
    return sorted(set(wanted))


@transaction.atomic
def api_key_create(
    *,
    name: str,
    scopes: Iterable[str],
    team: Team | None = None,
    created_by: AbstractBaseUser | None = None,
) -> tuple[ApiKey, str]:
    """Create a key; returns it with the plaintext, which is never stored or shown again."""
    name = name.strip()
    if not name:
        raise ValidationError({"name": "A key needs a name that says who uses it."})
    raw_key = KEY_TYPE_PREFIX + secrets.token_urlsafe(30)
    key = ApiKey.objects.create(
        name=name,
        prefix=raw_key[:KEY_PREFIX_LENGTH],
        digest=api_key_digest(raw_key),
        scopes=_validated_scopes(scopes),
        team=team,
        created_by=created_by,
    )
    return key, raw_key


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    return api_key


def api_key_authenticate(*, raw_key: str) -> ApiKey | None:
    """The active key matching ``raw_key``, or None. Marks it used (at most once a minute)."""
    if not raw_key.startswith(KEY_TYPE_PREFIX):
        return None
    digest = api_key_digest(raw_key)
    key = ApiKey.objects.select_related("team").filter(digest=digest).first()
    if key is None or not hmac.compare_digest(key.digest, digest) or key.revoked_at is not None:
        return None
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
        # Conditional update: concurrent requests write it once, not once each.
        ApiKey.objects.filter(pk=key.pk, last_used_at=key.last_used_at).update(last_used_at=now)
        key.last_used_at = now
    return key


def team_create(
    *, slug: str, name: str, currency: str = "USD", monthly_budget: object = None
) -> Team:
    team = Team(slug=slug, name=name, currency=currency, monthly_budget=monthly_budget)
    team.full_clean()
    team.save()
    return team


def membership_set(*, user: AbstractBaseUser, team: Team, role: str) -> Membership:
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role {role!r}; use {', '.join(Role.values)}."})
    membership, _ = Membership.objects.update_or_create(
        user=user, team=team, defaults={"role": role}
    )
    return membership


def admin_user_ensure(*, username: str = "admin", email: str = "admin@localhost") -> str | None:
    """Create a superuser when none exists; returns its generated password, or None."""
    user_model = get_user_model()
    if user_model.objects.filter(is_superuser=True).exists():
        return None
    password = secrets.token_urlsafe(12)
    user_model.objects.create_superuser(username=username, email=email, password=password)
    return password
