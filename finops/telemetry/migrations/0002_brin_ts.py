# Samples arrive roughly in time order, so BRIN indexes on ts are a few pages in size yet
# let fleet-wide range scans and retention deletes skip old blocks.
from __future__ import annotations

from django.db import migrations

from finops.ops.migration_operations import PostgresOnlySQL


class Migration(migrations.Migration):
    dependencies = [("telemetry", "0001_initial")]

    operations = [
        PostgresOnlySQL(
            "CREATE INDEX gpusample_ts_brin ON telemetry_gpusample USING brin (ts)",
            reverse_sql="DROP INDEX IF EXISTS gpusample_ts_brin",
        ),
        PostgresOnlySQL(
            "CREATE INDEX storagesample_ts_brin ON telemetry_storagesample USING brin (ts)",
            reverse_sql="DROP INDEX IF EXISTS storagesample_ts_brin",
        ),
    ]
