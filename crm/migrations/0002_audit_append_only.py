from django.db import migrations

FORBID = """
CREATE OR REPLACE FUNCTION crm_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only (% refused)', TG_OP;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER crm_auditevent_no_update_delete
BEFORE UPDATE OR DELETE ON crm_auditevent
FOR EACH ROW EXECUTE FUNCTION crm_audit_append_only();
"""

ALLOW = """
DROP TRIGGER IF EXISTS crm_auditevent_no_update_delete ON crm_auditevent;
DROP FUNCTION IF EXISTS crm_audit_append_only();
"""


class Migration(migrations.Migration):
    dependencies = [("crm", "0001_initial")]

    operations = [migrations.RunSQL(FORBID, ALLOW)]
