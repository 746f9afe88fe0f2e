"""Raw samples in daily partitions and minute rollups in monthly ones (PostgreSQL), every
row kept: see finops.telemetry.partitions. SQLite keeps plain tables."""

from django.db import migrations


def partition(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return
    from finops.telemetry.partitions import TABLES, is_partitioned, table_partition

    for spec in TABLES:
        if not is_partitioned(spec.table):
            table_partition(schema_editor, spec)


class Migration(migrations.Migration):
    dependencies = [("telemetry", "0006_minute_from_edge")]

    operations = [migrations.RunPython(partition, migrations.RunPython.noop, elidable=False)]
