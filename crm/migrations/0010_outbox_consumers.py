"""The outbox relay (crm.outbox): each consumer's progress per event (OutboxDelivery) and the
time an event waits for a consumer's retry (OutboxEvent.next_attempt_at).

Events written before the relay existed were never meant for a consumer (none existed), so
they are marked processed here: the first relay run must not send members notifications
about owner changes made weeks ago, nor start with the whole history as its backlog.
"""

from django.db import migrations, models
import django.db.models.deletion

MARK_HISTORY_PROCESSED = "UPDATE crm_outboxevent SET processed_at = now() WHERE processed_at IS NULL"

# The relay marks every event processed, which leaves a dead entry at the head of the
# outbox_unprocessed index that every claim steps over until VACUUM removes it. By default a
# table is vacuumed once 20 % of it is dead, and the outbox only grows: on a table of ten
# million events that is two million dead entries in front of the queue. Vacuum at 1 %.
VACUUM_OFTEN = """
ALTER TABLE crm_outboxevent SET (autovacuum_vacuum_scale_factor = 0.01,
                                 autovacuum_vacuum_threshold = 5000)
"""
VACUUM_AS_USUAL = """
ALTER TABLE crm_outboxevent RESET (autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold)
"""


class Migration(migrations.Migration):
    # Numbered 0009 as planned; it follows 0011 (written at the same time by the job-runner
    # work) so the graph keeps one leaf. Renumber on merge.
    dependencies = [("crm", "0009_claimable_background_jobs")]

    operations = [
        migrations.AddField(
            model_name="outboxevent",
            name="next_attempt_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.CreateModel(
            name="OutboxDelivery",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "org",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        to="crm.organization",
                    ),
                ),
                (
                    "event",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="deliveries",
                        to="crm.outboxevent",
                    ),
                ),
                ("consumer", models.CharField(max_length=80)),
                ("attempts", models.PositiveIntegerField(default=0)),
                ("processed_at", models.DateTimeField(blank=True, null=True)),
                ("gave_up_at", models.DateTimeField(blank=True, null=True)),
                ("next_attempt_at", models.DateTimeField(blank=True, null=True)),
                ("last_error", models.TextField(blank=True)),
            ],
            options={
                "ordering": ["event_id", "consumer"],
                "constraints": [
                    models.UniqueConstraint(
                        "event", "consumer", "org", name="outbox_delivery_once"
                    )
                ],
                "indexes": [
                    models.Index(
                        condition=models.Q(processed_at__isnull=True, gave_up_at__isnull=True),
                        fields=["org", "consumer", "event"],
                        name="outbox_delivery_owed",
                    )
                ],
            },
        ),
        migrations.RunSQL(MARK_HISTORY_PROCESSED, migrations.RunSQL.noop),
        migrations.RunSQL(VACUUM_OFTEN, VACUUM_AS_USUAL),
    ]
