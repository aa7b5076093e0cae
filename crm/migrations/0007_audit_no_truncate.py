"""The audit log's trigger refused UPDATE and DELETE row by row; TRUNCATE fires no row trigger,
so one statement could still empty the log. A statement-level trigger refuses it too.

Test databases are emptied between transactional tests with TRUNCATE; the test suite's
connections set `crm.allow_audit_truncate = on` for that (tests/conftest.py). Nothing in the
application sets it."""

from django.db import migrations

FORBID = """
CREATE OR REPLACE FUNCTION crm_audit_no_truncate() RETURNS trigger AS $$
BEGIN
    IF coalesce(current_setting('crm.allow_audit_truncate', true), '') = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'audit events are append-only (TRUNCATE refused)';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER crm_auditevent_no_truncate
BEFORE TRUNCATE ON crm_auditevent
FOR EACH STATEMENT EXECUTE FUNCTION crm_audit_no_truncate();
"""

ALLOW = """
DROP TRIGGER IF EXISTS crm_auditevent_no_truncate ON crm_auditevent;
DROP FUNCTION IF EXISTS crm_audit_no_truncate();
"""


class Migration(migrations.Migration):
    dependencies = [("crm", "0006_leaner_write_indexes")]

    operations = [migrations.RunSQL(FORBID, ALLOW)]
