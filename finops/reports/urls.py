from __future__ import annotations

from django.urls import path

from finops.reports import views

app_name = "reports"

urlpatterns = [
    path("", views.subscriptions, name="subscriptions"),
    path("<int:pk>/change", views.subscription_change, name="subscription-change"),
    path("preview", views.preview, name="preview"),
    path("unsubscribe/<str:token>/", views.unsubscribe_view, name="unsubscribe"),
]
