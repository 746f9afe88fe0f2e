import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

import finops.reports.models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("reports", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="reportsubscription", name="reportsub_hour_range"),
        migrations.RenameField(
            model_name="reportsubscription", old_name="hour_utc", new_name="hour"
        ),
        migrations.AlterField(
            model_name="reportsubscription",
            name="hour",
            field=models.PositiveSmallIntegerField(
                default=7, help_text="Hour of the day in timezone."
            ),
        ),
        migrations.AddField(
            model_name="reportsubscription",
            name="timezone",
            field=models.CharField(
                default="UTC",
                help_text="IANA name, e.g. Asia/Tokyo: the week and the hour are the recipient's.",
                max_length=64,
                validators=[finops.reports.models.timezone_validator],
            ),
        ),
        migrations.AddConstraint(
            model_name="reportsubscription",
            constraint=models.CheckConstraint(
                condition=models.Q(("hour__lte", 23)), name="reportsub_hour_range"
            ),
        ),
        migrations.AlterField(
            model_name="reportsubscription",
            name="user",
            field=models.ForeignKey(
                blank=True,
                help_text="Whose view the report shows; empty: an address an admin subscribed.",
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="report_subscriptions",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AlterField(
            model_name="reportsubscription",
            name="team",
            field=models.ForeignKey(
                blank=True,
                help_text="Empty: every team the recipient may see.",
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="report_subscriptions",
                to="accounts.team",
            ),
        ),
        migrations.AlterField(
            model_name="reportrun",
            name="week_start",
            field=models.DateField(
                help_text="Monday of the reported week, in the recipient's zone."
            ),
        ),
        migrations.AlterField(
            model_name="reportrun",
            name="status",
            field=models.CharField(
                choices=[
                    ("claimed", "Claimed"),
                    ("waiting", "Waiting for complete data"),
                    ("retrying", "Retrying after a delivery failure"),
                    ("sent", "Sent"),
                    ("failed", "Failed"),
                ],
                default="claimed",
                max_length=8,
            ),
        ),
        migrations.AddField(
            model_name="reportrun",
            name="due_at",
            field=models.DateTimeField(
                blank=True, help_text="When it was due to be sent.", null=True
            ),
        ),
        migrations.AddField(
            model_name="reportrun",
            name="attempts",
            field=models.PositiveSmallIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="reportrun",
            name="next_attempt_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="reportrun",
            name="provisional",
            field=models.JSONField(
                blank=True, default=list, help_text="The figures it called provisional, and why."
            ),
        ),
        migrations.AddIndex(
            model_name="reportrun",
            index=models.Index(fields=["status", "next_attempt_at"], name="reportrun_pending_idx"),
        ),
    ]
