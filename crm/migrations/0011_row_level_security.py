"""Row-level security on every tenant table (crm/rls.py), and the built-in functions the hot
queries apply to columns marked LEAKPROOF.

The wall: the role `crm_app` (CRM_DB_APP_ROLE), and on each table with an `org_id` column
ENABLE + FORCE ROW LEVEL SECURITY and the policy
`org_id = current_setting('app.org_id')::bigint`. The same function runs after every
migrate (post_migrate), so tables added later get it too.

Why LEAKPROOF: under a policy, PostgreSQL evaluates the policy's condition before any
condition of the query that could leak a row's values (through an error message, say), and
an index condition is evaluated before everything. So a condition whose function is not
LEAKPROOF can no longer be an index condition: measured here, `search_vector @@ query` lost
the contact_search GIN index and became a filter over the whole organization, and so did
`lower(email) = ...` (contact_email_per_org_active), `lower(name) = ...`
(company_org_lower_name, the import's company match) and `custom @> ...` (contact_custom).
Only a function marked LEAKPROOF escapes that rule.

Why these are safe: none of the three raises an error or notice that depends on the row it
reads (they can fail only on the constant the query supplies, e.g. a malformed tsquery):
ts_match_vq (tsvector @@ tsquery), lower(text), jsonb_contains (jsonb @> jsonb). And the
app role only runs the application's own SQL: it is granted DML, never CREATE, so it cannot
add a function of its own to a query. Marking them cannot leak another organization's
values. Only a superuser may mark a function; another migrating user gets a warning and
slower searches, not an error. The list is `crm.rls.LEAKPROOF_FUNCTIONS`; a function added
there is marked at the next migrate (post_migrate runs the same code).

Not every expression can be marked: PostgreSQL also treats coalesce() (and any node it does
not know to be safe) as leaky, so a look-up must compare a column with a CASE, a parameter
or a column, never with coalesce(...) (see contacts/importing/engine/match.py).
"""

from django.db import migrations


def forwards(apps, schema_editor):
    from crm import rls

    rls.ensure_row_level_security(using=schema_editor.connection.alias, app_registry=apps)


def backwards(apps, schema_editor):
    """Takes the policies off; post_migrate puts them back unless CRM_RLS_ENABLED is off."""
    from crm import rls

    rls.remove_row_level_security(using=schema_editor.connection.alias, app_registry=apps)
    # The functions keep their mark (in this database): it is safe whatever the policies,
    # and unmarking would slow any query that relies on it.


class Migration(migrations.Migration):
    dependencies = [
        # After every table that exists by now, so the first run walls all of them off (later
        # tables get the wall from the post_migrate handler).
        ("crm", "0010_outbox_consumers"),
        ("contacts", "0015_import_job_is_a_claimable_job"),
    ]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
