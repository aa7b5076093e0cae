"""The consent ledger: written by the database, append-only.

Triggers on contacts_contact append a ledger row for every change to a
consent column, whatever wrote it: a form, an import's COPY and merge SQL, a duplicate
merge, a bulk edit, raw SQL. So the consent fields cannot be edited around the ledger. The
writer says who it is and what evidence it holds by setting `crm.consent_via` (JSON) on its
transaction (compliance.services.consent.consent_context); a write without it is ledgered
as "system" with no source, which the tests hunt for.

The ledger is append-only, like the audit log: a row trigger refuses UPDATE and
DELETE, a statement trigger refuses TRUNCATE.

Two places may remove rows, each by setting a flag on its own transaction:
- an erasure (compliance.services.erasure) sets `crm.erasure = on` while it deletes a person;
  deleting an organization goes through the same path;
- the test suite empties tables between transactional tests with TRUNCATE and sets
  `crm.allow_audit_truncate = on` on its connections (tests/conftest.py).

The existing consent values of each contact become the ledger's first rows, as "recorded
before the ledger", so the current state is derived from the ledger from the start."""

from django.db import migrations

FORBID = """
CREATE OR REPLACE FUNCTION compliance_consent_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND coalesce(current_setting('crm.erasure', true), '') = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'the consent ledger is append-only (% refused)', TG_OP;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER compliance_consent_no_update_delete
BEFORE UPDATE OR DELETE ON compliance_consentrecord
FOR EACH ROW EXECUTE FUNCTION compliance_consent_append_only();

CREATE OR REPLACE FUNCTION compliance_consent_no_truncate() RETURNS trigger AS $$
BEGIN
    IF coalesce(current_setting('crm.allow_audit_truncate', true), '') = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'the consent ledger is append-only (TRUNCATE refused)';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER compliance_consent_no_truncate
BEFORE TRUNCATE ON compliance_consentrecord
FOR EACH STATEMENT EXECUTE FUNCTION compliance_consent_no_truncate();
"""

_CHANGES = """
    CROSS JOIN LATERAL (VALUES
        ('consent_email', {o}consent_email, n.consent_email),
        ('consent_sms', {o}consent_sms, n.consent_sms),
        ('consent_phone', {o}consent_phone, n.consent_phone),
        ('consent_whatsapp', {o}consent_whatsapp, n.consent_whatsapp),
        ('consent_data_processing', {o}consent_data_processing, n.consent_data_processing)
    ) AS b(field, old_b, new_b)
"""


def _trigger_function(name: str, row: str, source: str) -> str:
    """A trigger function that ledgers every consent change listed by `source` (a FROM item
    `ch` with field, old_value and new_value), for the contact `row` (its org_id, id and
    gdpr_basis), attributed to the writer's `crm.consent_via`."""
    return f"""
CREATE OR REPLACE FUNCTION {name}() RETURNS trigger AS $$
DECLARE
    via jsonb := coalesce(nullif(current_setting('crm.consent_via', true), ''), '{{}}')::jsonb;
BEGIN
    INSERT INTO compliance_consentrecord (org_id, public_id, created_at, contact_id, field,
        old_value, new_value, actor_kind, actor_user_id, actor_label, source, legal_basis,
        form, ip_address, user_agent, consent_text, consent_text_version, evidence,
        occurred_at)
    SELECT {row}.org_id, gen_random_uuid(), now(), {row}.id, ch.field, ch.old_value,
        ch.new_value, coalesce(via->>'kind', 'system'), (via->>'user_id')::bigint,
        coalesce(via->>'label', ''), coalesce(via->>'source', ''),
        coalesce(nullif(via->>'legal_basis', ''), {row}.gdpr_basis, ''),
        coalesce(via->>'form', ''), (nullif(via->>'ip', ''))::inet,
        coalesce(via->>'user_agent', ''), coalesce(via->>'consent_text', ''),
        coalesce(via->>'consent_text_version', ''), coalesce(via->'evidence', '{{}}'::jsonb),
        now()
    FROM {source}
    WHERE ch.old_value IS DISTINCT FROM ch.new_value;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
"""


def _bool_text(column: str) -> str:
    return f"CASE WHEN {column} IS NULL THEN '' WHEN {column} THEN 'true' ELSE 'false' END"


def _source(old: str, join: str) -> str:
    """Rows (org_id, id, gdpr_basis, field, old_value, new_value) for the consent columns,
    with `old` the prefix of the old values (a NULL-valued row for inserts)."""
    bools = (
        f"SELECT n.org_id, n.id, n.gdpr_basis, b.field, {_bool_text('b.old_b')} AS old_value,"
        f" {_bool_text('b.new_b')} AS new_value FROM new_rows n {join}"
        + _CHANGES.format(o=old)
    )
    status_old = f"coalesce({old}consent_status, 'unknown')"
    sell_old = _bool_text(f"coalesce({old}do_not_sell, false)")
    others = (
        f" UNION ALL SELECT n.org_id, n.id, n.gdpr_basis, 'consent_status', {status_old},"
        f" n.consent_status FROM new_rows n {join}"
        f" UNION ALL SELECT n.org_id, n.id, n.gdpr_basis, 'do_not_sell', {sell_old},"
        f" {_bool_text('n.do_not_sell')} FROM new_rows n {join}"
    )
    return bools + others


# Inserts: one statement-level trigger, so an import's COPY of many rows ledgers them all in
# one INSERT … SELECT. The "old" side is a row of NULLs (LEFT JOIN on false).
_NO_OLD = (
    "LEFT JOIN (SELECT NULL::boolean AS consent_email, NULL::boolean AS consent_sms,"
    " NULL::boolean AS consent_phone, NULL::boolean AS consent_whatsapp,"
    " NULL::boolean AS consent_data_processing, NULL::text AS consent_status,"
    " NULL::boolean AS do_not_sell) o ON false"
)
_COLUMNS = (
    "consent_email",
    "consent_sms",
    "consent_phone",
    "consent_whatsapp",
    "consent_data_processing",
    "consent_status",
    "do_not_sell",
)
_OLD = ", ".join(f"OLD.{c}" for c in _COLUMNS)
_NEW = ", ".join(f"NEW.{c}" for c in _COLUMNS)
_ROW_CHANGES = ",\n".join(
    [
        *(f"('{c}', {_bool_text('OLD.' + c)}, {_bool_text('NEW.' + c)})" for c in _COLUMNS[:5]),
        "('consent_status', OLD.consent_status::text, NEW.consent_status::text)",
        f"('do_not_sell', {_bool_text('OLD.do_not_sell')}, {_bool_text('NEW.do_not_sell')})",
    ]
)

# Updates: a row-level trigger with a WHEN clause, so the many updates that touch no consent
# (scores, last activity, owners) cost nothing, not even a transition table.
LEDGER = (
    _trigger_function(
        "compliance_ledger_contact_insert", "ch", f"({_source('o.', _NO_OLD)}) AS ch"
    )
    + _trigger_function(
        "compliance_ledger_contact_update",
        "NEW",
        f"(VALUES {_ROW_CHANGES}) AS ch(field, old_value, new_value)",
    )
    + f"""
CREATE TRIGGER compliance_ledger_on_insert
AFTER INSERT ON contacts_contact REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION compliance_ledger_contact_insert();

CREATE TRIGGER compliance_ledger_on_update
AFTER UPDATE ON contacts_contact FOR EACH ROW
WHEN (({_OLD}) IS DISTINCT FROM ({_NEW}))
EXECUTE FUNCTION compliance_ledger_contact_update();
"""
)

UNLEDGER = """
DROP TRIGGER IF EXISTS compliance_ledger_on_insert ON contacts_contact;
DROP TRIGGER IF EXISTS compliance_ledger_on_update ON contacts_contact;
DROP FUNCTION IF EXISTS compliance_ledger_contact_insert();
DROP FUNCTION IF EXISTS compliance_ledger_contact_update();
"""

ALLOW = """
DROP TRIGGER IF EXISTS compliance_consent_no_update_delete ON compliance_consentrecord;
DROP FUNCTION IF EXISTS compliance_consent_append_only();
DROP TRIGGER IF EXISTS compliance_consent_no_truncate ON compliance_consentrecord;
DROP FUNCTION IF EXISTS compliance_consent_no_truncate();
"""

_BOOL_FIELDS = (
    "consent_email",
    "consent_sms",
    "consent_phone",
    "consent_whatsapp",
    "consent_data_processing",
)


def _backfill_sql() -> str:
    columns = (
        "org_id, public_id, created_at, contact_id, field, old_value, new_value, actor_kind,"
        " actor_label, source, legal_basis, form, user_agent, consent_text,"
        " consent_text_version, evidence, occurred_at"
    )
    common = (
        "'system', 'Recorded before the consent ledger', coalesce(nullif(c.consent_source, ''),"
        " 'Contact record'), coalesce(c.gdpr_basis, ''), '', '', '', '', '{}'::jsonb,"
        " coalesce(c.consent_date, c.created_at)"
    )
    parts = [
        f"INSERT INTO compliance_consentrecord ({columns}) SELECT c.org_id, gen_random_uuid(),"
        f" now(), c.id, '{field}', '', CASE WHEN c.{field} THEN 'true' ELSE 'false' END,"
        f" {common} FROM contacts_contact c WHERE c.{field} IS NOT NULL;"
        for field in _BOOL_FIELDS
    ]
    parts.append(
        f"INSERT INTO compliance_consentrecord ({columns}) SELECT c.org_id, gen_random_uuid(),"
        f" now(), c.id, 'consent_status', 'unknown', c.consent_status, {common}"
        " FROM contacts_contact c WHERE c.consent_status <> 'unknown';"
    )
    return "\n".join(parts)


class Migration(migrations.Migration):
    dependencies = [("compliance", "0001_initial")]

    operations = [
        migrations.RunSQL(FORBID, ALLOW),
        migrations.RunSQL(_backfill_sql(), migrations.RunSQL.noop),
        migrations.RunSQL(LEDGER, UNLEDGER),
    ]
