from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from finops.dashboard import views

app_name = "dashboard"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("findings/", views.findings, name="findings"),
    path("findings/<int:pk>/judge", views.finding_judge, name="finding-judge"),
    path("findings/statement.csv", views.savings_statement_download, name="savings-statement"),
    path("planner/", views.planner, name="planner"),
    path("placement/", views.placement_page, name="placement"),
    path("fleet/", views.fleet, name="fleet"),
    path("nodes/<str:hostname>/", views.node, name="node"),
    path("teams/<slug:slug>/", views.team, name="team"),
    path(
        "login/", auth_views.LoginView.as_view(template_name="dashboard/login.html"), name="login"
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
]
