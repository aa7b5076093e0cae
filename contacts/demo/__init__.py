"""Demo data for `manage.py seed_demo` (and the rows `bench_contacts` measures on).

Acme gets a few hundred realistic contacts with companies, tags, lists, notes, tasks, timeline
entries, custom fields and scoring rules; Globex a few dozen of its own. `--contacts N` tops
Acme up to N contacts. Rows are generated in Python and loaded with COPY (psycopg 3), never
one ORM save at a time, so a million contacts load in well under two minutes; for a big load
the secondary indexes and foreign keys are dropped and rebuilt around the COPY, inside the same
transaction (a failure leaves the table as it was).

Idempotent: an org that already has demo companies keeps its realistic data, and a top-up
only adds the contacts that are missing.

Where things are:
- seed.py: what each demo org gets (the seed_demo hook and its --contacts option), top-ups;
- people.py: generated contacts (as COPY lines) and companies;
- loader.py: the COPY loader, which also has the scoring engine score a load;
- history.py: notes, tasks and timeline entries that follow the contacts' dates;
- pools.py: the names, titles, places and words the data is made of.

seed_demo imports this package (each app's `demo` module), which registers the hook.
"""

from .seed import seed_realistic, top_up

__all__ = ["seed_realistic", "top_up"]
