"""gunicorn settings for the FrameOps web process: ``gunicorn -c deploy/gunicorn.conf.py
finops.wsgi:application``. Environment variables override each (gunicorn reads
WEB_CONCURRENCY itself; the rest are read here)."""

from __future__ import annotations

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
# Sync workers, (2 x cores) + 1 as gunicorn's documentation advises: 5 on a 2-core host.
# Each holds one request at a time and one PostgreSQL connection (CONN_MAX_AGE keeps it).
workers = int(os.environ.get("WEB_CONCURRENCY", 2 * multiprocessing.cpu_count() + 1))
worker_class = "sync"
# A request taking longer is killed and logged: the allocation API's largest windows and
# the FOCUS export stream within it.
timeout = int(os.environ.get("GUNICORN_TIMEOUT_S", 60))
graceful_timeout = 30
# Recycling workers every N requests bounds a leak, but a worker boots in about a second
# (Django and pandas imported): at 2,000 requests the load benchmark's health target
# restarted a worker every few seconds and its p99 rose to 1.4 s. Off by default (gunicorn's
# own default); GUNICORN_MAX_REQUESTS=50000 turns it on.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", 0))
max_requests_jitter = max_requests // 10
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
# Header limits (a request body is held to MAX_REQUEST_BYTES by FrameOps itself, chunked or
# not).
limit_request_line = 8190
limit_request_fields = 100
