"""FrameOps: cost per usable second of AI-generated video."""

from __future__ import annotations

from finops.celery import app as celery_app

__all__ = ["celery_app"]
