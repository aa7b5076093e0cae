"""One source of truth for timeline dates, for rows written before it held.

"Added" entries take the record's own created_at (the System panel shows the same moment;
demo data used to give them a made-up date), the demo's wording follows the service's, and
a completed task without its "done" entry (demo data again) gets one."""

from django.db import migrations

CREATED_FROM_RECORDS = """
UPDATE contacts_activity a
   SET occurred_at = c.created_at
  FROM contacts_contact c
 WHERE a.contact_id = c.id AND a.org_id = c.org_id
   AND a.type = 'created' AND a.occurred_at <> c.created_at;

UPDATE contacts_activity a
   SET occurred_at = co.created_at
  FROM contacts_company co
 WHERE a.company_id = co.id AND a.org_id = co.org_id AND a.contact_id IS NULL
   AND a.type = 'created' AND a.occurred_at <> co.created_at;

UPDATE contacts_activity
   SET subject = 'Contact added'
 WHERE type = 'created' AND subject = 'Contact was added';
"""

DONE_TASK_ENTRIES = """
INSERT INTO contacts_activity
       (public_id, created_at, type, subject, body, data, occurred_at,
        actor_id, org_id, company_id, contact_id)
SELECT gen_random_uuid(), now(), 'task_completed', LEFT(t.title, 300), '',
       jsonb_build_object('task', t.public_id::text),
       COALESCE(t.completed_at, t.updated_at),
       t.assignee_id, t.org_id,
       CASE WHEN t.contact_id IS NULL THEN t.company_id END, t.contact_id
  FROM contacts_task t
 WHERE t.status = 'done'
   AND (t.contact_id IS NOT NULL OR t.company_id IS NOT NULL)
   AND NOT EXISTS (
        SELECT 1
          FROM contacts_activity a
         WHERE a.org_id = t.org_id
           AND a.type = 'task_completed'
           AND a.data ->> 'task' = t.public_id::text
           AND (a.contact_id = t.contact_id OR a.company_id = t.company_id));
"""


class Migration(migrations.Migration):
    dependencies = [
        ("contacts", "0012_import_value_counts"),
    ]

    operations = [
        migrations.RunSQL(CREATED_FROM_RECORDS, reverse_sql=migrations.RunSQL.noop),
        migrations.RunSQL(DONE_TASK_ENTRIES, reverse_sql=migrations.RunSQL.noop),
    ]
