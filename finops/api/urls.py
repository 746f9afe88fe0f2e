from __future__ import annotations

from django.urls import path

from finops.api import (
    alert_views,
    audit_views,
    billing_views,
    funnel_views,
    ingest_views,
    insight_views,
    job_views,
    kubernetes_views,
    placement_views,
    views,
)

app_name = "api"

urlpatterns = [
    path("whoami", views.WhoAmIApi.as_view(), name="whoami"),
    path("audit", audit_views.AuditApi.as_view(), name="audit"),
    path("teams", views.TeamListApi.as_view(), name="team-list"),
    path("teams/<slug:slug>", views.TeamDetailApi.as_view(), name="team-detail"),
    path("gpu-models", views.GpuModelListApi.as_view(), name="gpu-model-list"),
    path("allocation", billing_views.AllocationApi.as_view(), name="allocation"),
    path("export/focus", billing_views.FocusExportApi.as_view(), name="export-focus"),
    path("teams/<slug:slug>/invoice", billing_views.InvoiceApi.as_view(), name="team-invoice"),
    path("jobs", job_views.JobApi.as_view(), name="jobs"),
    path("jobs/bulk", job_views.JobBulkApi.as_view(), name="jobs-bulk"),
    path(
        "jobs/<str:source>/<str:external_id>", job_views.JobDetailApi.as_view(), name="job-detail"
    ),
    path("findings", insight_views.FindingListApi.as_view(), name="findings"),
    path("findings/<int:pk>", insight_views.FindingDetailApi.as_view(), name="finding-detail"),
    path("savings", insight_views.SavingsApi.as_view(), name="savings"),
    path(
        "savings/statement",
        insight_views.SavingsStatementApi.as_view(),
        name="savings-statement",
    ),
    path("placement", placement_views.PlacementApi.as_view(), name="placement"),
    path("funnel", funnel_views.FunnelApi.as_view(), name="funnel"),
    path("placement/mappings", placement_views.MappingListApi.as_view(), name="placement-mappings"),
    path(
        "placement/mappings/<int:pk>",
        placement_views.MappingDetailApi.as_view(),
        name="placement-mapping",
    ),
    path("alerts", alert_views.AlertListApi.as_view(), name="alerts"),
    path("alert-rules", alert_views.AlertRuleListApi.as_view(), name="alert-rules"),
    path("alert-rules/<int:pk>", alert_views.AlertRuleDetailApi.as_view(), name="alert-rule"),
    path("silences", alert_views.SilenceListApi.as_view(), name="silences"),
    path("channels", alert_views.ChannelListApi.as_view(), name="channels"),
    path("channels/<int:pk>/test", alert_views.ChannelTestApi.as_view(), name="channel-test"),
    path(
        "kubernetes/mappings",
        kubernetes_views.KubernetesMappingListApi.as_view(),
        name="kubernetes-mappings",
    ),
    path(
        "kubernetes/unmapped",
        kubernetes_views.KubernetesUnmappedApi.as_view(),
        name="kubernetes-unmapped",
    ),
    path("pricing/resolve", views.PriceResolveApi.as_view(), name="pricing-resolve"),
    path("nodes", ingest_views.NodeRegisterApi.as_view(), name="node-register"),
    path(
        "ingest/gpu-samples", ingest_views.GpuSampleIngestApi.as_view(), name="ingest-gpu-samples"
    ),
    path(
        "ingest/gpu-minutes", ingest_views.GpuMinuteIngestApi.as_view(), name="ingest-gpu-minutes"
    ),
    path(
        "ingest/storage-samples",
        ingest_views.StorageSampleIngestApi.as_view(),
        name="ingest-storage-samples",
    ),
]
