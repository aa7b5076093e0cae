"""pipeline_orderrollup, kept by statement-level triggers on pipeline_order.

Each INSERT, UPDATE or DELETE of orders (one row or a COPY of millions) runs one statement
that turns the changed rows (the transition tables) into changes of count and total per
(contact, status, currency), per (contact, status) and per contact, adds them to the rollup
rows (inserting those not there yet, in key order so that two writers lock rows in the same
order) and deletes the rows whose count fell to 0. An update that changes none of the
columns the rollup reads (a title, a note) adds nothing. The existing orders are rolled up
once, at the end.
"""

import django.db.models.deletion
from django.db import migrations, models


ROLLUP_COLUMNS = "org_id, contact_id, status, currency, order_count, total"

# The changes of one statement, rolled up at the three levels and added to the rows.
APPLY = """
    INSERT INTO pipeline_orderrollup AS r ({columns})
    SELECT org_id, contact_id, COALESCE(status, ''), COALESCE(currency, ''), SUM(n),
           CASE WHEN GROUPING(currency) = 0 THEN SUM(v) ELSE 0 END
    FROM ({changes}) AS d
    GROUP BY GROUPING SETS (
        (org_id, contact_id, status, currency), (org_id, contact_id, status), (org_id, contact_id)
    )
    HAVING SUM(n) <> 0 OR (GROUPING(currency) = 0 AND SUM(v) <> 0)
    ORDER BY 1, 2, 3, 4
    ON CONFLICT (org_id, contact_id, status, currency) DO UPDATE
    SET order_count = r.order_count + EXCLUDED.order_count, total = r.total + EXCLUDED.total;
    DELETE FROM pipeline_orderrollup AS r
    USING (SELECT DISTINCT org_id, contact_id FROM ({changes}) AS c) AS d
    WHERE r.org_id = d.org_id AND r.contact_id = d.contact_id AND r.order_count <= 0;
"""
ADDED = "SELECT org_id, contact_id, status, currency, 1 AS n, value AS v FROM new_orders"
REMOVED = "SELECT org_id, contact_id, status, currency, -1 AS n, -value AS v FROM old_orders"
CHANGES = {
    "insert": (ADDED, "NEW TABLE AS new_orders"),
    "update": (f"{ADDED} UNION ALL {REMOVED}", "OLD TABLE AS old_orders NEW TABLE AS new_orders"),
    "delete": (REMOVED, "OLD TABLE AS old_orders"),
}


def _trigger_sql(event: str) -> str:
    changes, referencing = CHANGES[event]
    name = f"pipeline_order_rollup_{event}"
    body = APPLY.format(columns=ROLLUP_COLUMNS, changes=changes)
    return f"""
    CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
    {body}
    RETURN NULL;
    END $$;
    CREATE TRIGGER {name} AFTER {event.upper()} ON pipeline_order
    REFERENCING {referencing} FOR EACH STATEMENT EXECUTE FUNCTION {name}();
    """


def _drop_sql(event: str) -> str:
    name = f"pipeline_order_rollup_{event}"
    return f"DROP TRIGGER IF EXISTS {name} ON pipeline_order; DROP FUNCTION IF EXISTS {name}();"


# How many rows pass "order_count > N" depends on the level (status and currency "" hold
# every order), which per-column statistics cannot see: without these the planner guessed
# a tenth of the contacts "more than 8 orders" finds, and walked them the slow way.
STATISTICS = (
    "CREATE STATISTICS pipeline_order_rollup_levels (mcv) "
    "ON status, currency, order_count FROM pipeline_orderrollup"
)
DROP_STATISTICS = "DROP STATISTICS IF EXISTS pipeline_order_rollup_levels"

BACKFILL = APPLY.split("DELETE FROM")[0].format(
    columns=ROLLUP_COLUMNS,
    changes="SELECT org_id, contact_id, status, currency, 1 AS n, value AS v FROM pipeline_order",
)


class Migration(migrations.Migration):
    dependencies = [
        ("contacts", "0016_deals_on_timeline_notes_tasks_and_views"),
        ("crm", "0012_organization_enabled_modules"),
        ("pipeline", "0004_delivery_error_outcome_covering_status"),
    ]

    operations = [
        migrations.CreateModel(
            name="OrderRollup",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("status", models.CharField(blank=True, max_length=20)),
                ("currency", models.CharField(blank=True, max_length=3)),
                ("order_count", models.IntegerField()),
                ("total", models.DecimalField(decimal_places=2, max_digits=24)),
                (
                    "contact",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="contacts.contact",
                    ),
                ),
                (
                    "org",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        to="crm.organization",
                    ),
                ),
            ],
            options={
                "indexes": [
                    models.Index(
                        fields=["org", "status", "currency", "total"],
                        include=("contact",),
                        name="order_rollup_total",
                    ),
                    models.Index(
                        fields=["org", "status", "currency", "order_count"],
                        include=("contact",),
                        name="order_rollup_count",
                    ),
                ],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("org", "contact", "status", "currency"), name="order_rollup_key"
                    )
                ],
            },
        ),
        # The sprite has no "box": a type made outside the form gets the form's default.
        migrations.AlterField(
            model_name="objecttype",
            name="icon",
            field=models.CharField(default="clipboard", max_length=30),
        ),
        migrations.RunSQL(
            [_trigger_sql(event) for event in CHANGES] + [STATISTICS, BACKFILL],
            [_drop_sql(event) for event in CHANGES] + [DROP_STATISTICS],
        ),
    ]
