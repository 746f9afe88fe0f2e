from __future__ import annotations

from typing import Any

from django.db import migrations

from finops.fleet.services import gpu_model_catalog_sync


def seed(apps: Any, schema_editor: Any) -> None:
    gpu_model_catalog_sync(gpu_model_cls=apps.get_model("fleet", "GpuModel"))


class Migration(migrations.Migration):
    dependencies = [("fleet", "0001_initial")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
