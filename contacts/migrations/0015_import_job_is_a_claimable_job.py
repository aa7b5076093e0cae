"""ImportJob becomes a claimable job of the one job runner (crm.jobs.ClaimableJob): it gains
`kind`, `claimed_by`, `cursor` and `result`, and its progress and failure columns take the
shared names (`rows_done` → `progress`, `total_rows` → `total`, `failure` → `error`).
An import or undo in flight keeps its worker: a running one is marked as claimed, so the
next worker takes it over only once its heartbeat is stale, as before."""

from django.db import migrations, models

MARK_JOBS_IN_FLIGHT = """
UPDATE contacts_importjob SET kind = 'contacts.import_undo' WHERE status = 'undoing';
UPDATE contacts_importjob SET claimed_by = 'worker'
 WHERE status IN ('running', 'undoing') AND heartbeat_at IS NOT NULL;
"""


class Migration(migrations.Migration):
    dependencies = [("contacts", "0014_contact_phone_index_only_with_a_phone")]

    operations = [
        migrations.RenameField("importjob", "rows_done", "progress"),
        migrations.RenameField("importjob", "total_rows", "total"),
        migrations.RenameField("importjob", "failure", "error"),
        migrations.AddField(
            "importjob", "kind", models.CharField(default="contacts.import", max_length=60)
        ),
        migrations.AddField("importjob", "claimed_by", models.CharField(blank=True, max_length=255)),
        migrations.AddField("importjob", "cursor", models.BigIntegerField(default=0)),
        migrations.AddField("importjob", "result", models.JSONField(blank=True, default=dict)),
        migrations.RunSQL(MARK_JOBS_IN_FLIGHT, migrations.RunSQL.noop),
    ]
