"""The COPY loader: generated contacts (people.py) and their tag links loaded with COPY in
one transaction, the id range reserved up front. A big load drops the tables' secondary
indexes, unique constraints and foreign keys first and rebuilds each once at the end,
which is far cheaper than maintaining them row by row. The org's scoring rules score the
load through the scoring engine (contacts.scoring), in SQL, before the indexes come back.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from django.db import connection
from django.db.models import F
from django.db.models.lookups import Exact

from compliance.services.consent import ConsentVia, consent_context
from crm.bulk_load import copy_lines, drop_for_load

from ..models import Contact
from ..scoring import compile_rules, has_active_rules, score_expression
from .people import COLUMNS, ContactPlan, generate_contacts

# Loads at least this big rebuild the indexes once instead of updating them row by row.
BIG_LOAD = 100_000
LOAD_TABLES = ("contacts_contact", "contacts_contact_tags")


# The consents of generated people are ledgered as the demo's.
DEMO_CONSENT = ConsentVia(kind="system", label="Demo data", source="Demo data")


def copy_contacts(
    plan: ContactPlan,
    count: int,
    rng: random.Random,
    *,
    score: bool,
    log: Callable[[str], None] = lambda text: None,
) -> tuple[int, int]:
    """Load `count` generated contacts of `plan.org` (and their tag links) with COPY.
    Returns the (first, last) contact id. Must run inside a transaction."""
    if count <= 0:
        return (0, -1)
    started = time.perf_counter()

    def step(text: str) -> None:
        log(f"  {text} ({time.perf_counter() - started:.1f}s)")

    with connection.cursor() as cursor:
        # Reserve an id range: nobody else may insert contacts until this transaction ends.
        cursor.execute("LOCK TABLE contacts_contact IN SHARE ROW EXCLUSIVE MODE")
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('contacts_contact', 'id'), "
            "GREATEST((SELECT COALESCE(MAX(id), 0) FROM contacts_contact), "
            "nextval(pg_get_serial_sequence('contacts_contact', 'id'))) + %s)",
            [count],
        )
        last_id = cursor.fetchone()[0]
        first_id = last_id - count + 1
        existing = Contact.objects.for_org(plan.org).count()
        rebuild = count >= BIG_LOAD
        restore: list[str] = []
        if rebuild:
            # Foreign keys are deferred: settle what earlier writes of this transaction left
            # pending, or Postgres refuses to alter the tables.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
            restore = drop_for_load(cursor, LOAD_TABLES)
            step(f"dropped {len(restore)} indexes and foreign keys for the load")
        # Scores follow the org's rules, computed by the scoring engine once the rows (and
        # their tags) are in. Rows are copied with a score of 0, so the one UPDATE rewrites
        # only those that score something, before the indexes come back (cheap without them).
        scored = score and has_active_rules(plan.org)
        tag_links: list[str] = []

        def lines():
            for contact_id, line, tags in generate_contacts(
                plan, first_id, count, existing + 1, rng, random_scores=not scored
            ):
                tag_links.extend(f"{contact_id}\t{tag_id}\n" for tag_id in tags)
                yield line

        with consent_context(DEMO_CONSENT):
            copy_lines(cursor, "contacts_contact", COLUMNS, lines())
        step(f"copied {count:,} contacts")
        if tag_links:
            copy_lines(cursor, "contacts_contact_tags", ["contact_id", "tag_id"], iter(tag_links))
            step(f"copied {len(tag_links):,} tag links")
        if scored:
            expression = score_expression(compile_rules(plan.org))
            scored_rows = (
                Contact.objects.for_org(plan.org)
                .filter(pk__gte=first_id, pk__lte=last_id)
                .exclude(Exact(F("lead_score"), expression))
                .update(lead_score=expression)
            )
            step(f"scored them with the org's rules ({scored_rows:,} score above 0)")
        for statement in restore:
            began = time.perf_counter()
            cursor.execute(statement)
            if time.perf_counter() - began > 1:
                step(f"slow: {statement[:90]}")
        if restore:
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
            step(f"rebuilt {len(restore)} indexes and foreign keys")
    return first_id, last_id
