"""Background jobs keep their lease in real columns (crm.jobs.ClaimableJob) instead of keys
of the `result` JSON: claimed_by, heartbeat_at, takeovers, sent_at and cursor. `done` becomes
`progress`. Jobs in flight keep their place: the JSON keys are moved into the columns."""

from django.db import migrations, models

# The old lease ran LEASE_SECONDS (300) past a worker's last report.
MOVE_LEASE_INTO_COLUMNS = """
UPDATE crm_backgroundjob SET
    cursor = COALESCE((result->>'cursor')::bigint, 0),
    takeovers = COALESCE((result->>'takeovers')::int, 0),
    claimed_by = CASE WHEN status = 'running'
                      THEN COALESCE(NULLIF(result->>'holder', ''), 'worker') ELSE '' END,
    heartbeat_at = to_timestamp((result->>'lease_expires')::double precision - 300),
    sent_at = to_timestamp((result->>'sent_at')::double precision),
    result = result - 'cursor' - 'takeovers' - 'holder' - 'lease_expires' - 'sent_at'
WHERE result ?| array['cursor', 'takeovers', 'holder', 'lease_expires', 'sent_at']
"""


class Migration(migrations.Migration):
    dependencies = [("crm", "0008_organization_ai_send_samples")]

    operations = [
        migrations.RenameField("backgroundjob", "done", "progress"),
        migrations.AddField(
            "backgroundjob", "claimed_by", models.CharField(blank=True, max_length=255)
        ),
        migrations.AddField(
            "backgroundjob", "heartbeat_at", models.DateTimeField(blank=True, null=True)
        ),
        migrations.AddField(
            "backgroundjob", "takeovers", models.PositiveSmallIntegerField(default=0)
        ),
        migrations.AddField("backgroundjob", "sent_at", models.DateTimeField(blank=True, null=True)),
        migrations.AddField("backgroundjob", "cursor", models.BigIntegerField(default=0)),
        migrations.RunSQL(MOVE_LEASE_INTO_COLUMNS, migrations.RunSQL.noop),
    ]
