from __future__ import annotations

from django.urls import path

from finops.api import views

app_name = "api"

urlpatterns = [
    path("whoami", views.WhoAmIApi.as_view(), name="whoami"),
    path("teams", views.TeamListApi.as_view(), name="team-list"),
    path("teams/<slug:slug>", views.TeamDetailApi.as_view(), name="team-detail"),
    path("gpu-models", views.GpuModelListApi.as_view(), name="gpu-model-list"),
]
