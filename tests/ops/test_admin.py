from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import reverse

from finops.accounts.models import ApiKey
from finops.accounts.services import api_key_authenticate

pytestmark = pytest.mark.django_db

FRAMEOPS_MODELS = [m for m in admin.site._registry if m.__module__.startswith("finops.")]


def test_every_domain_model_is_in_the_admin():
    from django.apps import apps

    ours = {m for m in apps.get_models() if m.__module__.startswith("finops.")}
    assert ours <= set(admin.site._registry), sorted(
        m.__name__ for m in ours - set(admin.site._registry)
    )


@pytest.mark.parametrize("model", FRAMEOPS_MODELS, ids=lambda m: m._meta.label)
def test_changelist_search_and_add_pages_render(client, root, model):
    client.force_login(root)
    opts = model._meta
    changelist = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
    page = client.get(changelist)
    assert page.status_code == 200
    assert f"Select {opts.verbose_name} to change" in page.content.decode()
    if admin.site._registry[model].search_fields:
        searched = client.get(changelist, {"q": "h100"}).content.decode()
        assert 'name="q"' in searched and 'value="h100"' in searched
    add = client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_add"))
    assert add.status_code == 200
    assert f"Add {opts.verbose_name}" in add.content.decode()


def test_admin_creates_a_key_and_shows_it_once(client, root, team_a):
    client.force_login(root)
    response = client.post(
        reverse("admin:accounts_apikey_add"),
        {"name": "farm-1", "scopes": ["ingest:write"], "team": team_a.pk},
        follow=True,
    )
    assert response.status_code == 200
    shown = [str(m) for m in response.context["messages"]]
    raw_key = next(m for m in shown if "API key for 'farm-1'" in m).split(": ")[1].split(" ")[0]
    key = api_key_authenticate(raw_key=raw_key)
    assert key is not None
    assert key.scopes == ["ingest:write"]
    assert key.team == team_a
    assert ApiKey.objects.count() == 1
    # The change page never shows it again.
    page = client.get(reverse("admin:accounts_apikey_change", args=[key.pk])).content.decode()
    assert raw_key not in page


def test_non_staff_cannot_reach_the_admin(client, alice):
    client.force_login(alice)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302
    assert "/login/" in response["Location"]
