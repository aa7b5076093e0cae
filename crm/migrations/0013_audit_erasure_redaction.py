"""An erasure must be able to redact what the audit log says about the erased person.

The audit log stays append-only (migration 0002): DELETE is always refused. UPDATE is now
let through only on a transaction that says it is an erasure, with
`SELECT set_config('crm.erasure', 'on', true)` (compliance.services.erasure), the same flag
the consent ledger honours (compliance migration 0002). The erasure uses it to replace the
person's values in `changes` and `object_repr`; nothing else in the application sets it."""

from django.db import migrations

ALLOW_ERASURE_UPDATE = """
CREATE OR REPLACE FUNCTION crm_audit_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND coalesce(current_setting('crm.erasure', true), '') = 'on' THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit events are append-only (% refused)', TG_OP;
END;
$$ LANGUAGE plpgsql;
"""

APPEND_ONLY_AGAIN = """
CREATE OR REPLACE FUNCTION crm_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only (% refused)', TG_OP;
END;
$$ LANGUAGE plpgsql;
"""


class Migration(migrations.Migration):
    dependencies = [("crm", "0012_organization_enabled_modules")]

    operations = [migrations.RunSQL(ALLOW_ERASURE_UPDATE, APPEND_ONLY_AGAIN)]
