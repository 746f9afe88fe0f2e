"""FrameOps settings: one module, driven by environment variables.

Embedded defaults (no variables set) run the demo: SQLite under ``var/``, Celery tasks
executed eagerly in-process, e-mail printed to the console, ``DEBUG`` on. Production sets
``DEBUG=0``, ``SECRET_KEY``, ``ALLOWED_HOSTS``, ``DATABASE_URL`` and a broker; the system
checks in ``finops.ops.checks`` refuse the dangerous combinations.
"""

from __future__ import annotations

import importlib.util
import json
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from finops.env import (
    email_settings_from_url,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("FRAMEOPS_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", True)

# The embedded key is only usable with DEBUG on: finops.E001 stops a DEBUG=0 process using it.
INSECURE_SECRET_KEY = "frameops-embedded-demo-key-never-use-in-production"  # noqa: S105
SECRET_KEY = env_str("SECRET_KEY", INSECURE_SECRET_KEY)
# API keys are stored as HMAC(API_KEY_SECRET, key). A separate secret lets SECRET_KEY rotate
# (sessions, CSRF) without invalidating every API key handed to render farms and agents.
API_KEY_SECRET = env_str("API_KEY_SECRET", SECRET_KEY)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "axes",
    "auditlog",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "finops.ops",
    "finops.accounts",
    "finops.fleet",
    "finops.telemetry",
    "finops.pricing",
    "finops.jobs",
    "finops.costing",
    "finops.insights",
    "finops.placement",
    "finops.simulation",
    "finops.dashboard",
    "finops.alerts",
    "finops.reports",
    "finops.api",
]

MIDDLEWARE = [
    "finops.ops.metrics.RequestMetricsMiddleware",
    "finops.ops.middleware.RequestBodyLimitMiddleware",
    "finops.ops.middleware.DatabaseUnavailableMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Records the signed-in person as the actor of every audited change.
    "auditlog.middleware.AuditlogMiddleware",
    # Last: it turns a locked-out sign-in into the lock-out page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "finops.urls"
WSGI_APPLICATION = "finops.wsgi.application"
ASGI_APPLICATION = "finops.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "finops.dashboard.navigation.navigation",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------

EMBEDDED_DATABASE_URL = f"sqlite:///{VAR_DIR / 'frameops.sqlite3'}"
DATABASE_URL = env_str("DATABASE_URL", EMBEDDED_DATABASE_URL)
try:
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL,
            conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0),
            conn_health_checks=True,
        )
    }
except ValueError as exc:
    raise ImproperlyConfigured(f"DATABASE_URL cannot be parsed: {exc}") from exc
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # SQLite is the single-user demo: WAL lets the dashboard read while a task writes.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
    }
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # PostgreSQL's JIT compiles expressions for queries it expects to be expensive; for the
    # report and summary queries here that costs more than it saves (175 ms of a 190 ms
    # daily output query). DATABASE_PG_OPTIONS replaces the connection's server options.
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = env_str(
        "DATABASE_PG_OPTIONS", "-c jit=off"
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth -----------------------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "admin:login"

# Sign-in throttling (django-axes): after AXES_FAILURE_LIMIT failed attempts for one account,
# or from one address, further attempts are refused for AXES_COOLOFF_MINUTES on the
# dashboard and the admin alike. `manage.py axes_reset_username NAME` or
# `axes_reset_ip ADDRESS` lifts a lock-out early (docs/operations.md).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15, minimum=1))
# Either the account or the address alone locks: a password spray from one address and a
# distributed guess at one account are both stopped.
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "dashboard/locked_out.html"
AXES_HTTP_RESPONSE_CODE = 429
AXES_VERBOSE = False
# Behind a proxy, django-axes reads the client address from REMOTE_ADDR unless told
# otherwise (AXES_IPWARE_META_PRECEDENCE_ORDER); TRUST_X_FORWARDED_FOR turns that on.
if env_bool("TRUST_X_FORWARDED_FOR", False):
    AXES_IPWARE_PROXY_COUNT = 1
    AXES_IPWARE_META_PRECEDENCE_ORDER = ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"]

# A browser session ends after SESSION_COOKIE_AGE seconds (default 12 hours: one working
# day) and when the browser closes; it is not extended by activity.
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 12 * 3600, minimum=300)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_SAMESITE = "Lax"

# --- Time, language, static -----------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Vendored front-end assets (plotly.min.js and the like) live in static/ once there are any.
STATICFILES_DIRS: list[object] = [path for path in [BASE_DIR / "static"] if path.is_dir()]
# plotly.js as the plotly package ships it, served by this server (no CDN): /static/plotly/.
STATICFILES_DIRS.append(
    ("plotly", Path(importlib.util.find_spec("plotly").origin).parent / "package_data")
)  # type: ignore[arg-type,union-attr]
# Static files are also served from the finders (the demo and tests run without
# collectstatic; production collects them at build time and serves those first).
WHITENOISE_USE_FINDERS = True
LOGIN_URL = "dashboard:login"
LOGIN_REDIRECT_URL = "dashboard:overview"
LOGOUT_REDIRECT_URL = "dashboard:login"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "static")))
if DEBUG:
    # Production fills it with `manage.py collectstatic`; the demo serves from the finders.
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# --- HTTP security (defaults follow DEBUG; each can be overridden) -------------------------

SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
# Probes and Prometheus scrape over plain HTTP inside the cluster.
SECURE_REDIRECT_EXEMPT = [r"^health/$", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# Content-Security-Policy (django-csp) on every response: scripts only from this server's
# static files (no inline script, no eval). Styles may be inline: the pages and Plotly set
# element styles. Images may be data: URIs (Plotly's exports, the favicon).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, "'unsafe-inline'"],
        "img-src": [SELF, "data:"],
        "font-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}
if env_bool("TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Request size ---------------------------------------------------------------------------

# Telemetry batches are large; anything above this is refused with 413 before parsing, with
# a Content-Length or sent chunked without one (finops.ops.middleware).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MAX_REQUEST_BYTES", 16 * 1024 * 1024, minimum=1024)
# JSON bodies nested deeper than this are refused with a 400 naming the limit, on every
# endpoint (finops.ops.json_bounds). FrameOps' own payloads nest at most 4 levels.
MAX_JSON_DEPTH = env_int("MAX_JSON_DEPTH", 32, minimum=4)
# Job events in one POST /api/v1/jobs/bulk request (manage.py import_jobs sends files of
# any length in batches of this size).
JOBS_BULK_MAX_LINES = env_int("JOBS_BULK_MAX_LINES", 10_000, minimum=1)

# --- Celery ---------------------------------------------------------------------------------

# With DEBUG on and no broker, tasks run eagerly in the calling process (the demo). With DEBUG
# off the default is a local Redis: production never falls back to eager execution silently.
CELERY_BROKER_URL = env_str(
    "CELERY_BROKER_URL", "memory://" if DEBUG else "redis://127.0.0.1:6379/0"
)
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", CELERY_BROKER_URL == "memory://")
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", "") or None
CELERY_TASK_ACKS_LATE = True
# A task whose worker process dies (SIGKILL, OOM) goes back on the queue at once...
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# ...and one whose whole worker died is handed out again by Redis after this many seconds
# unacknowledged. It must exceed the longest task (a month's ledger recompute, a report
# run): an hour by default, as Celery's own.
_visibility_timeout_s = env_int("CELERY_VISIBILITY_TIMEOUT_S", 3600, minimum=1)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": _visibility_timeout_s,
    # How often a worker looks for such tasks (kombu: every interval x throttle seconds,
    # 100 s by default); a short timeout is looked for as often as it can expire.
    "unacked_restore_interval": max(1, min(10, _visibility_timeout_s // 3)),
    "unacked_restore_throttle": 1 if _visibility_timeout_s < 60 else 10,
}
# Publishing retries while the broker restarts (a producer waits up to ~30 s, not fails).
CELERY_TASK_PUBLISH_RETRY = True
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 10,
    "interval_start": 0.5,
    "interval_step": 1.0,
    "interval_max": 5.0,
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "ingest"
CELERY_TIMEZONE = "UTC"
# The costing beat hands out dirty days as a task each (for every costing worker) when at
# least this many are dirty; fewer are recomputed in the beat's own task.
COSTING_FANOUT_MIN_DAYS = env_int("COSTING_FANOUT_MIN_DAYS", 3, minimum=1)

# --- E-mail ---------------------------------------------------------------------------------

DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "FrameOps <frameops@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
_email_url = env_str("EMAIL_URL", "")
if _email_url:
    globals().update(email_settings_from_url(_email_url))
else:
    EMAIL_BACKEND = env_str(
        "EMAIL_BACKEND",
        "django.core.mail.backends.console.EmailBackend"
        if DEBUG
        else "django.core.mail.backends.smtp.EmailBackend",
    )
    EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
    EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
    EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
    EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
    EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
    EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = 30

# --- Weekly reports -------------------------------------------------------------------------
# Where links in e-mails point (the dashboard as recipients reach it).
FRAMEOPS_BASE_URL = env_str("FRAMEOPS_BASE_URL", "http://127.0.0.1:8000")
# A week whose data is not complete (dirty ledger hours, telemetry gaps) waits up to this
# long after its due time, then goes out with those figures marked provisional.
REPORTS_PROVISIONAL_DELAY_S = env_int("REPORTS_PROVISIONAL_DELAY_S", 6 * 3600, minimum=0)
# SMTP failures: attempts in all, and the first back-off (doubling each time).
REPORTS_MAX_ATTEMPTS = env_int("REPORTS_MAX_ATTEMPTS", 5, minimum=1)
REPORTS_RETRY_BACKOFF_S = env_int("REPORTS_RETRY_BACKOFF_S", 300, minimum=0)

# --- Telemetry sources ----------------------------------------------------------------------

PROMETHEUS_URL = env_str("PROMETHEUS_URL", "")
# The DCGM pull reads Prometheus at this resolution, and looks back this far on its first run.
DCGM_PULL_STEP_S = env_int("DCGM_PULL_STEP_S", 15, minimum=1)
DCGM_PULL_LOOKBACK_S = env_int("DCGM_PULL_LOOKBACK_S", 600, minimum=60)
# Catching up after an outage: at most this many steps per Prometheus query (Prometheus
# refuses more than 11,000 points per series), and never further back than this; what is
# older is reported as a gap.
DCGM_PULL_CHUNK_STEPS = env_int("DCGM_PULL_CHUNK_STEPS", 2880, minimum=1)
DCGM_PULL_MAX_LOOKBACK_S = env_int("DCGM_PULL_MAX_LOOKBACK_S", 7 * 86400, minimum=60)
# "samples" reads dcgm-exporter's gauges at DCGM_PULL_STEP_S and rolls them up here;
# "minutes" reads the minute rollups Prometheus (Thanos, Mimir) records with
# deploy/prometheus/frameops-minute-rules.yml: one row per GPU-minute crosses the network.
DCGM_PULL_MODE = env_str("DCGM_PULL_MODE", "samples")
if DCGM_PULL_MODE not in ("samples", "minutes"):
    raise ImproperlyConfigured(f"DCGM_PULL_MODE={DCGM_PULL_MODE!r}: use samples or minutes")
# Raw samples are kept this long; minute and hour rollups are kept.
TELEMETRY_RAW_RETENTION_DAYS = env_int("TELEMETRY_RAW_RETENTION_DAYS", 14, minimum=1)
# Minute rollups are kept this long (0: for ever; hour rollups always are): 400 days hold
# a year and the month before it for comparisons. On PostgreSQL raw samples sit in daily
# partitions and minutes in monthly ones, created this many days ahead; retention drops
# whole partitions.
TELEMETRY_MINUTE_RETENTION_DAYS = env_int("TELEMETRY_MINUTE_RETENTION_DAYS", 400, minimum=0)
TELEMETRY_PARTITIONS_AHEAD_DAYS = env_int("TELEMETRY_PARTITIONS_AHEAD_DAYS", 3, minimum=1)
# A sample for a GPU nobody registered: "reject" it (the line is reported), or "register"
# the GPU under the node "unassigned" for an operator to move.
TELEMETRY_UNKNOWN_GPU = env_str("TELEMETRY_UNKNOWN_GPU", "reject")
if TELEMETRY_UNKNOWN_GPU not in {"reject", "register"}:
    raise ImproperlyConfigured(
        f"TELEMETRY_UNKNOWN_GPU={TELEMETRY_UNKNOWN_GPU!r}: use reject or register"
    )
# The periodic rollup recomputes this many trailing seconds each run; older late samples
# are queued in the rollup backlog instead.
TELEMETRY_ROLLUP_LATENESS_S = env_int("TELEMETRY_ROLLUP_LATENESS_S", 900, minimum=60)
# Database connections that compute minute rollups in parallel (PostgreSQL; GPUs are split
# between them). Up to the database server's cores.
TELEMETRY_ROLLUP_WORKERS = env_int("TELEMETRY_ROLLUP_WORKERS", 2, minimum=1)
# Busy time with memory at or above this fraction of VRAM counts as memory pressure.
TELEMETRY_MEMORY_PRESSURE_FRACTION = env_float(
    "TELEMETRY_MEMORY_PRESSURE_FRACTION", 0.92, minimum=0.5, maximum=1.0
)

# --- Prices ---------------------------------------------------------------------------------

# Catalogs refreshed daily: "kind=location" pairs separated by ";", kind one of aws, azure,
# gcp, csv, onprem; location a URL or a file path.
PRICE_SOURCES: list[tuple[str, str]] = []
for _entry in env_str("PRICE_SOURCES", "").split(";"):
    if _entry.strip():
        _kind, _, _location = _entry.strip().partition("=")
        if _kind not in {"aws", "azure", "gcp", "csv", "onprem"} or not _location:
            raise ImproperlyConfigured(f"PRICE_SOURCES entry {_entry!r}: use kind=location")
        PRICE_SOURCES.append((_kind, _location))

# --- FOCUS exports ----------------------------------------------------------------------------
# The provider and invoice issuer in FOCUS rows: the studio's GPU platform that charges teams
# back (docs/costing.md "FOCUS"); the cloud vendor is the publisher.
FOCUS_PROVIDER_NAME = env_str("FOCUS_PROVIDER_NAME", "FrameOps")
# Daily FOCUS files (finops.costing.focus_files): a directory (a mounted bucket or share)
# that receives one file per UTC day and manifest.json; empty: no daily files.
FOCUS_EXPORT_DIR = env_str("FOCUS_EXPORT_DIR", "")
# parquet, and csv if listed too (comma-separated)
FOCUS_EXPORT_FORMATS = tuple(
    f.strip() for f in env_str("FOCUS_EXPORT_FORMATS", "parquet").split(",") if f.strip()
)
# A day is written this long after it ends (late events settle), its ledger clean...
FOCUS_EXPORT_SETTLE_S = env_int("FOCUS_EXPORT_SETTLE_S", 3600, minimum=0)
# ...and the beat looks back this many days for days to write or rewrite.
FOCUS_EXPORT_DAYS = env_int("FOCUS_EXPORT_DAYS", 35, minimum=1)

# --- Self-monitoring ------------------------------------------------------------------------

# /metrics and /metrics/costs answer "Authorization: Bearer <METRICS_TOKEN>". Without a
# token only a signed-in person who sees every team's costs (finance, admin) reads them;
# with DEBUG=0 a missing token is a start-up error (finops.E004).
METRICS_TOKEN = env_str("METRICS_TOKEN", "")

# --- REST API -------------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "finops.api.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PARSER_CLASSES": [
        "finops.api.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["finops.api.permissions.HasScope"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]
    + (["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
    "DEFAULT_THROTTLE_CLASSES": [
        "finops.api.throttling.BurstRateThrottle",
        "finops.api.throttling.SustainedRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "burst": env_str("API_THROTTLE_BURST", "120/min"),
        "sustained": env_str("API_THROTTLE_SUSTAINED", "20000/day"),
    },
    "EXCEPTION_HANDLER": "finops.api.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "finops.api.schema.FrameOpsAutoSchema",
    # `format` is an endpoint parameter here (format=csv), not DRF's renderer override.
    "URL_FORMAT_OVERRIDE": None,
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "FrameOps API",
    "DESCRIPTION": "Cost per usable second of AI-generated video: ingest, jobs, prices, "
    "allocation, invoices and FOCUS export. Machines authenticate with 'Authorization: Bearer "
    "fo_…' (an API key). People signed in on the dashboard use their session cookie; their "
    "writes (POST, PATCH) also send the CSRF token from the csrftoken cookie as X-CSRFToken. "
    "Who sees what: viewers and managers their teams, finance every team's costs read-only, "
    "admins everything (docs/api.md).",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The docs UI is served from this installation: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Two choice sets share the field name "status": name each.
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "finops.jobs.models.JobStatus",
        "FindingStatusEnum": "finops.insights.models.FindingStatus",
    },
}

# --- Insights ---------------------------------------------------------------------------
# Failure-pattern thresholds (DESIGN "Failure patterns"); every finding records the ones it
# used. INSIGHTS_THRESHOLDS_JSON='{"idle_share": 0.4}' overrides any of them.
INSIGHTS_THRESHOLDS: dict[str, float] = {
    # memory underinvestment
    "memory_pressure_share": 0.20,  # busy time with memory >= TELEMETRY_MEMORY_PRESSURE_FRACTION
    "memory_oom_share": 0.05,  # OOM attempts among attempts
    "memory_pressure_util_pct": 60.0,  # SM utilisation while under pressure below this
    # premature horizontal scaling
    "scaling_efficiency": 0.70,  # throughput per GPU, multi-GPU / single-GPU jobs
    "scaling_util_pct": 50.0,  # mean per-GPU utilisation of multi-GPU jobs
    # thermal throttling / power capping
    "thermal_share": 0.05,  # busy time with reasons 0x8, 0x20, 0x40
    "thermal_clock_ratio": 0.85,  # or SM clock below this share of max while busy
    "power_share": 0.10,  # busy time with reasons 0x4, 0x80
    "power_near_limit": 0.80,  # mean power / TDP in the hours it was capped at least this
    # I/O starvation
    "io_gpu_util_pct": 30.0,  # GPU utilisation dips below this inside jobs...
    "io_await_ms": 20.0,  # ...while storage await exceeds this...
    "io_storage_util_pct": 90.0,  # ...or storage utilisation exceeds this
    "io_stalled_share": 0.10,  # stalled share of held GPU time to report
    # regeneration waste
    "regen_attempts_per_clip": 2.0,
    "regen_cost_share": 0.30,
    # the attempt rate the fix is priced at: under both lines above (1.4 attempts a usable clip
    # spend 29% on unusable ones), so a team that reaches it no longer raises the finding
    "regen_target_attempts": 1.4,
    # idle capacity
    "idle_share": 0.30,
    # model cost regression
    "regression_increase": 0.20,
    # placement: a mapped video API offering this much cheaper per usable second...
    "placement_cheaper_share": 0.20,
    # ...that saves at least this much a month (the ledger's currency)
    "placement_min_monthly_saving": 500.0,
    # idle-held GPUs: memory in use at or above this share of VRAM while SM activity stays
    # at zero...
    "idle_held_mem_frac": 0.10,
    # ...for at least this many minutes in a row
    "idle_held_minutes": 30.0,
}
INSIGHTS_THRESHOLDS.update(json.loads(env_str("INSIGHTS_THRESHOLDS_JSON") or "{}"))
# A finding its refresh window no longer sees this many times in a row resolves itself.
INSIGHTS_RESOLVE_AFTER_RUNS = env_int("INSIGHTS_RESOLVE_AFTER_RUNS", 3, minimum=1)
# Realized savings: a resolved finding's scope is measured over a window after the change as
# long as the one that raised it, and at least this long (docs/insights.md "Realized savings").
INSIGHTS_SAVINGS_MIN_WINDOW_S = env_int("INSIGHTS_SAVINGS_MIN_WINDOW_S", 86400, minimum=3600)
# Not measurable when the after-window's volume is under this share of the before-window's
# (a scope that all but vanished says nothing about its cost per unit).
INSIGHTS_SAVINGS_MIN_VOLUME_SHARE = env_float(
    "INSIGHTS_SAVINGS_MIN_VOLUME_SHARE", 0.10, minimum=0.0, maximum=1.0
)

# --- Alerts -------------------------------------------------------------------------------
# The address people open FrameOps at, for links in notifications.
FRAMEOPS_BASE_URL = env_str("FRAMEOPS_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
# Webhooks go to public http(s) addresses only, unless a host is listed here (an internal
# receiver you trust).
ALERT_WEBHOOK_ALLOWED_HOSTS = [
    h.strip() for h in env_str("ALERT_WEBHOOK_ALLOWED_HOSTS", "").split(",") if h.strip()
]
ALERT_WEBHOOK_TIMEOUT_S = env_float("ALERT_WEBHOOK_TIMEOUT_S", 5.0, minimum=0.1, maximum=60)
ALERT_DELIVERY_ATTEMPTS = env_int("ALERT_DELIVERY_ATTEMPTS", 4, minimum=1)
ALERT_DELIVERY_BACKOFF_S = env_float("ALERT_DELIVERY_BACKOFF_S", 2.0, minimum=0, maximum=600)

CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": env_str("CACHE_URL")}
        if env_str("CACHE_URL")
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# --- Logging --------------------------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # Failed sign-ins and lock-outs are warnings; each successful sign-in is not news.
    "loggers": {"axes": {"level": "WARNING"}},
}
