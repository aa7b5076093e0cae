"""Demo contacts: realistic, idempotent, and loaded with COPY (including the big-load path that
drops and rebuilds indexes and foreign keys around the copy)."""

import io
import random

import phonenumbers
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from contacts import demo
from contacts.demo import loader, seed
from contacts.models import Activity, Company, Contact, Note, ScoringRule, Task
from crm.models import Organization


def quiet(_text):
    return None


def index_and_key_names(table: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s", [table])
        names = {row[0] for row in cursor.fetchall()}
        cursor.execute("SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass", [table])
        return names | {row[0] for row in cursor.fetchall()}


def test_realistic_demo_data_is_complete_and_added_once(org, members):
    added = demo.seed_realistic(
        org, contacts=40, companies=6, acme=True, rng=random.Random(1), log=quiet
    )
    again = demo.seed_realistic(
        org, contacts=40, companies=6, acme=True, rng=random.Random(1), log=quiet
    )

    contacts = Contact.objects.for_org(org)
    assert (added, again) == (True, False)
    assert contacts.count() == 40
    assert Company.objects.for_org(org).count() == 6
    assert len({c.email for c in contacts if c.email}) == contacts.exclude(email="").count()
    for contact in contacts.exclude(phone=""):
        assert phonenumbers.is_valid_number(phonenumbers.parse(contact.phone)), contact.phone
    assert contacts.exclude(owner=None).exists() and contacts.filter(owner=None).exists()
    assert contacts.filter(custom__has_key="industry_fit").exists()
    assert ScoringRule.objects.for_org(org).count() >= 3
    assert contacts.filter(lead_score__gt=0).exists()
    assert Note.objects.for_org(org).exists()
    assert Activity.objects.for_org(org).filter(type=Activity.Type.CREATED).count() == 40
    now = timezone.now()
    open_tasks = Task.objects.for_org(org).filter(status="open")
    assert open_tasks.filter(due_at__lt=now).exists()
    assert open_tasks.filter(assignee=members["owner"].user).exists()
    assert open_tasks.filter(assignee=members["team"].user).exists()


def test_top_up_adds_only_the_missing_contacts(org, members):
    first = demo.top_up(org, 30, random.Random(2), quiet)
    second = demo.top_up(org, 45, random.Random(2), quiet)
    third = demo.top_up(org, 45, random.Random(3), quiet)

    assert (first, second, third) == (30, 15, 0)
    assert Contact.objects.for_org(org).count() == 45


def test_a_big_load_rebuilds_every_index_and_foreign_key(org, members, monkeypatch):
    monkeypatch.setattr(loader, "BIG_LOAD", 10)
    before = {table: index_and_key_names(table) for table in loader.LOAD_TABLES}
    log = []

    demo.top_up(org, 25, random.Random(4), log.append)

    assert Contact.objects.for_org(org).count() == 25
    assert any("dropped" in line for line in log)
    assert {table: index_and_key_names(table) for table in loader.LOAD_TABLES} == before


def test_seed_demo_with_contacts_option_tops_acme_up_once(db):
    out = io.StringIO()
    call_command("seed_demo", contacts=400, stdout=out)
    call_command("seed_demo", contacts=400, stdout=out)

    acme = Organization.objects.get(slug="acme")
    globex = Organization.objects.get(slug="globex")
    assert Contact.objects.for_org(acme).count() == 400
    assert Contact.objects.for_org(globex).count() == seed.GLOBEX_CONTACTS
