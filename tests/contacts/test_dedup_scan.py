"""Duplicate scans: the full and incremental scans, one unsaved contact against its blocks,
per-organization thresholds, dismissals, tenancy, the weekly schedule in the organization's
time zone, the job and the command line."""

from __future__ import annotations

import datetime as dt
import io
import json
import uuid

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from contacts.dedup import scan
from contacts.dedup.jobs import JOB_KIND, due_scans, queue_due_scans, start_scan_job
from contacts.dedup.model import default_model
from contacts.dedup.models import DedupKey, DedupSettings, DuplicateDismissal, DuplicatePair
from contacts.dedup.scan import full as full_scan
from contacts.models import Contact
from crm import jobs
from crm.models import BackgroundJob
from crm.services import Actor
from tests.factories import CompanyFactory, ContactFactory, OrganizationFactory

pytestmark = pytest.mark.django_db

UTC = dt.UTC


def robert(org, **extra):
    values = dict(
        first_name="Robert",
        last_name="Smith",
        email="",
        phone="+14155550123",
        street="12 Main Street",
        postal_code="94107",
        city="San Francisco",
    )
    values.update(extra)
    return ContactFactory(org=org, **values)


def bob(org, **extra):
    """Robert Smith again, as a second record has him: nickname, phone written another way,
    street abbreviated."""
    values = dict(
        first_name="Bob",
        last_name="Smith",
        email="",
        phone="(415) 555-0123",
        street="12 Main St.",
        postal_code="94107",
        city="San Francisco",
    )
    values.update(extra)
    return ContactFactory(org=org, **values)


def stranger(org, **extra):
    values = dict(
        first_name="Alice",
        last_name="Wong",
        email="alice.wong@example.org",
        phone="+442071234567",
        street="1 Baker Street",
        postal_code="NW16XE",
        city="London",
    )
    values.update(extra)
    return ContactFactory(org=org, **values)


def stored_pairs(org):
    return {
        (p.contact_a_id, p.contact_b_id): p
        for p in DuplicatePair.objects.for_org(org).order_by("id")
    }


def touch(contact, **fields):
    """Change a contact the way a save does (updated_at moves on)."""
    for name, value in fields.items():
        setattr(contact, name, value)
    contact.save()


# Full scan ---------------------------------------------------------------------------------


def test_full_scan_finds_a_known_pair_with_its_reasons(org):
    first, second, other = robert(org), bob(org), stranger(org)

    result = scan.scan_full(org)

    pairs = stored_pairs(org)
    assert list(pairs) == [(min(first.pk, second.pk), max(first.pk, second.pk))]
    pair = next(iter(pairs.values()))
    assert pair.band == DuplicatePair.Band.PROBABLE
    assert pair.found_by == DuplicatePair.FoundBy.SCAN
    assert pair.score >= default_model().probable
    assert "same phone" in pair.reasons
    assert any("alike" in reason for reason in pair.reasons)  # Bob ~ Robert
    assert [(p.a, p.b) for p in result.pairs] == list(pairs)
    assert result.contacts == 3 and result.compared >= 1
    assert other.pk not in {x for key in pairs for x in key}
    settings_row = DedupSettings.objects.for_org(org).get()
    assert settings_row.last_full_scan_at is not None
    assert settings_row.last_scan_at == settings_row.last_full_scan_at
    indexed = set(DedupKey.objects.for_org(org).values_list("contact_id", flat=True))
    assert indexed == {first.pk, second.pk, other.pk}


def test_full_scan_finds_swapped_names_and_accents_without_email_or_phone(org):
    first = ContactFactory(
        org=org,
        first_name="Zoë",
        last_name="Müller",
        email="",
        street="5 Hauptstrasse",
        postal_code="10115",
        city="Berlin",
    )
    second = ContactFactory(
        org=org,
        first_name="Muller",
        last_name="Zoe",
        email="",
        street="5 Haupt Str",
        postal_code="10115",
        city="Berlin",
    )

    scan.scan_full(org)

    pair = DuplicatePair.objects.for_org(org).get()
    assert {pair.contact_a_id, pair.contact_b_id} == {first.pk, second.pk}
    assert "first and last name swapped" in pair.reasons


def test_archived_contacts_are_not_scanned(org):
    robert(org)
    bob(org, is_archived=True, archived_at=timezone.now())

    result = scan.scan_full(org)

    assert result.contacts == 1
    assert not DuplicatePair.objects.for_org(org).exists()


def test_a_full_scan_replaces_earlier_scan_pairs_and_keeps_import_pairs(org):
    first, second = robert(org), bob(org)
    other, fourth = stranger(org), stranger(org, email="someone@else.example", first_name="Zed")
    # An earlier scan's pair that no longer holds, and an import's pair.
    stale = DuplicatePair.objects.for_org(org).create(
        org=org,
        contact_a_id=min(first.pk, other.pk),
        contact_b_id=max(first.pk, other.pk),
        score=0.9,
        band="probable",
    )
    imported = DuplicatePair.objects.for_org(org).create(
        org=org,
        contact_a_id=min(second.pk, fourth.pk),
        contact_b_id=max(second.pk, fourth.pk),
        score=0.5,
        band="possible",
        found_by=DuplicatePair.FoundBy.IMPORT,
    )
    refound = DuplicatePair.objects.for_org(org).create(
        org=org,
        contact_a_id=min(first.pk, second.pk),
        contact_b_id=max(first.pk, second.pk),
        score=0.1,
        band="possible",
        found_by=DuplicatePair.FoundBy.IMPORT,
    )

    scan.scan_full(org)

    pairs = stored_pairs(org)
    assert (stale.contact_a_id, stale.contact_b_id) not in pairs
    assert pairs[(imported.contact_a_id, imported.contact_b_id)].found_by == "import"
    again = pairs[(refound.contact_a_id, refound.contact_b_id)]
    assert again.found_by == "scan" and again.score > 0.5 and again.band == "probable"


def test_the_parallel_scan_finds_what_the_single_process_scan_finds(org):
    people = [(robert(org), bob(org))]
    for index in range(3):
        phone = f"+4930555000{index}"
        people.append(
            (
                ContactFactory(
                    org=org,
                    first_name="Katherine",
                    last_name=f"Lee{index}x",
                    email=f"kate{index}@lee.example",
                    phone=phone,
                ),
                ContactFactory(
                    org=org,
                    first_name="Kate",
                    last_name=f"Lee{index}x",
                    email=f"k.lee{index}@other.example",
                    phone=phone,
                ),
            )
        )
    stranger(org)

    single = scan.scan_full(org, workers=1)
    parallel = scan.scan_full(org, workers=2)

    assert sorted((p.a, p.b, p.score) for p in parallel.pairs) == sorted(
        (p.a, p.b, p.score) for p in single.pairs
    )
    assert {(min(x.pk, y.pk), max(x.pk, y.pk)) for x, y in people} <= {
        (p.a, p.b) for p in parallel.pairs
    }


# Thresholds per organization ----------------------------------------------------------------


def test_org_rules_default_to_the_model_and_follow_the_org_settings(org, other_org):
    model = default_model()
    rules = scan.org_rules(org)
    assert (rules.probable, rules.possible) == (model.probable, model.possible)
    assert rules.email.plus_addressing and rules.email.gmail_dots

    DedupSettings.objects.for_org(other_org).create(
        org=other_org, probable_threshold=0.9, possible_threshold=0.95, plus_addressing=False
    )
    rules = scan.org_rules(other_org)
    assert rules.probable == 0.9
    assert rules.possible == 0.9  # never above "probable"
    assert rules.email.plus_addressing is False


def test_thresholds_are_per_organization(org, other_org):
    robert(org), bob(org)
    robert(other_org), bob(other_org)
    DedupSettings.objects.for_org(other_org).create(
        org=other_org, probable_threshold=1.5, possible_threshold=1.5
    )

    scan.scan_full(org)
    scan.scan_full(other_org)

    assert DuplicatePair.objects.for_org(org).count() == 1
    assert DuplicatePair.objects.for_org(other_org).count() == 0


def test_a_pair_below_the_probable_threshold_is_possible(org):
    robert(org), bob(org)
    score = scan.scan_full(org).pairs[0].score
    DedupSettings.objects.for_org(org).filter(org=org).update(
        probable_threshold=min(1.0, score + 0.0001) if score < 1 else 1.5,
        possible_threshold=0.0,
    )

    scan.scan_full(org)

    assert DuplicatePair.objects.for_org(org).get().band == DuplicatePair.Band.POSSIBLE


# Dismissals ---------------------------------------------------------------------------------


def test_a_dismissed_pair_never_comes_back_from_later_scans(org):
    first, second = robert(org), bob(org)
    scan.scan_full(org)
    a, b = sorted((first.pk, second.pk))
    DuplicateDismissal.objects.for_org(org).create(org=org, contact_a_id=a, contact_b_id=b)
    DuplicatePair.objects.for_org(org).filter(contact_a_id=a, contact_b_id=b).delete()

    scan.scan_full(org)
    assert not DuplicatePair.objects.for_org(org).exists()

    touch(second, city="San Francisco ")
    result = scan.scan_incremental(org)
    assert result.compared >= 1
    assert not DuplicatePair.objects.for_org(org).exists()


# Incremental scan -------------------------------------------------------------------------


def test_incremental_scan_picks_up_a_changed_contact_and_leaves_the_others(org):
    first, second = robert(org), bob(org)
    third = stranger(org)
    fourth = ContactFactory(
        org=org,
        first_name="Maria",
        last_name="Garcia",
        email="maria@garcia.example",
        phone="+34917654321",
    )
    scan.scan_full(org)
    kept = DuplicatePair.objects.for_org(org).get()
    last_scan = DedupSettings.objects.for_org(org).get().last_scan_at

    # The stranger becomes a second record of Maria.
    touch(
        third,
        first_name="María",
        last_name="García",
        email="maria.garcia@mail.example",
        phone="+34 917 654 321",
        street="",
        postal_code="",
        city="",
    )
    result = scan.scan_incremental(org)

    assert result.contacts == 1  # only the changed contact was rescanned
    pairs = stored_pairs(org)
    assert (min(third.pk, fourth.pk), max(third.pk, fourth.pk)) in pairs
    untouched = pairs[(kept.contact_a_id, kept.contact_b_id)]
    assert (untouched.pk, untouched.found_at, untouched.score) == (
        kept.pk,
        kept.found_at,
        kept.score,
    )
    assert DedupSettings.objects.for_org(org).get().last_scan_at > last_scan
    assert first.pk and second.pk


def test_incremental_scan_drops_the_pairs_of_an_archived_contact(org):
    robert(org)
    second = bob(org)
    scan.scan_full(org)
    assert DuplicatePair.objects.for_org(org).exists()

    touch(second, is_archived=True, archived_at=timezone.now())
    scan.scan_incremental(org)

    assert not DuplicatePair.objects.for_org(org).exists()
    assert not DedupKey.objects.for_org(org).filter(contact_id=second.pk).exists()


def test_incremental_scan_of_a_never_scanned_org_is_a_full_scan(org):
    robert(org), bob(org)
    result = scan.scan_incremental(org)
    assert result.full
    assert DuplicatePair.objects.for_org(org).count() == 1


# Tenancy ----------------------------------------------------------------------------------


def test_scans_never_pair_contacts_of_two_organizations(org, other_org):
    mine = robert(org)
    stranger(org)
    theirs = bob(other_org)
    stranger(other_org)

    scan.scan_full(org)
    scan.scan_full(other_org)
    touch(mine, city="San Francisco ")
    scan.scan_incremental(org)

    assert not DuplicatePair.objects.all_orgs().exists()
    assert theirs.pk not in set(DedupKey.objects.for_org(org).values_list("contact_id", flat=True))
    assert (
        scan.pairs_for(org, {"first_name": "Bob", "last_name": "Smith", "phone": "(415) 555-0123"})
        != []
    )
    assert [
        m.contact_id
        for m in scan.pairs_for(
            other_org, {"first_name": "Robert", "last_name": "Smith", "phone": "+14155550123"}
        )
    ] == [theirs.pk]


def test_pairs_for_never_returns_another_organizations_contact(org, other_org):
    robert(other_org)
    scan.scan_full(other_org)
    scan.scan_full(org)

    assert (
        scan.pairs_for(
            org,
            {
                "first_name": "Bob",
                "last_name": "Smith",
                "phone": "(415) 555-0123",
                "street": "12 Main St",
                "postal_code": "94107",
            },
        )
        == []
    )


# One contact not saved yet --------------------------------------------------------------------


def test_pairs_for_compares_unsaved_values_with_the_existing_contacts(org):
    existing = robert(org, company=CompanyFactory(org=org, name="Acme Inc."))
    stranger(org)
    scan.scan_full(org)
    count = Contact.objects.for_org(org).count()

    matches = scan.pairs_for(
        org,
        {
            "first_name": "Bob",
            "last_name": "Smith",
            "phone": "(415) 555-0123",
            "street": "12 Main St",
            "postal_code": "94107",
            "company": "ACME",
        },
    )

    assert [m.contact_id for m in matches] == [existing.pk]
    match = matches[0]
    assert match.public_id == existing.public_id
    assert match.name == "Robert Smith"
    assert match.band == "probable"
    assert "same phone" in match.reasons
    assert Contact.objects.for_org(org).count() == count


def test_pairs_for_finds_a_contact_added_after_the_last_scan_and_skips_the_edited_one(org):
    scan.scan_full(org)
    existing = robert(org)  # not indexed yet

    found = scan.pairs_for(
        org, {"first_name": "Bob", "last_name": "Smith", "phone": "+1 415 555 0123"}
    )
    assert [m.contact_id for m in found] == [existing.pk]
    assert (
        scan.pairs_for(
            org,
            {"first_name": "Robert", "last_name": "Smith", "phone": "+14155550123"},
            exclude_id=existing.pk,
        )
        == []
    )


def test_pairs_for_limits_and_orders_by_score(org):
    for index in range(4):
        robert(org, email=f"robert{index}@smith.example")
    scan.scan_full(org)
    matches = scan.pairs_for(
        org, {"first_name": "Robert", "last_name": "Smith", "phone": "+14155550123"}, limit=2
    )
    assert len(matches) == 2
    assert matches[0].score >= matches[1].score


# The weekly schedule, in the organization's time zone ---------------------------------------


def test_weekly_full_scan_is_due_at_sunday_two_in_the_org_time_zone(db):
    tokyo = OrganizationFactory(slug="tokyo", timezone="Asia/Tokyo")
    utc = OrganizationFactory(slug="utc", timezone="UTC")
    sunday_two_utc = dt.datetime(2026, 12, 6, 2, 0, tzinfo=UTC)  # Sunday
    sunday_two_tokyo = dt.datetime(2026, 12, 5, 17, 0, tzinfo=UTC)  # Sunday 02:00 in Tokyo

    assert [(o.slug, full) for o, full in due_scans(sunday_two_utc)] == [("utc", True)]
    assert [(o.slug, full) for o, full in due_scans(sunday_two_tokyo)] == [("tokyo", True)]
    # 01:45 and 03:00 local are not the time.
    assert due_scans(sunday_two_tokyo - dt.timedelta(minutes=15)) == []
    assert due_scans(sunday_two_tokyo + dt.timedelta(hours=1)) == []

    assert queue_due_scans(sunday_two_tokyo) == 1
    job = BackgroundJob.objects.for_org(tokyo).get(kind=JOB_KIND)
    assert job.params["full"] is True
    assert not BackgroundJob.objects.for_org(utc).filter(kind=JOB_KIND).exists()


def test_a_full_scan_this_week_is_not_repeated_and_weekdays_get_the_nightly_scan(db):
    tokyo = OrganizationFactory(slug="tokyo", timezone="Asia/Tokyo")
    sunday_two_tokyo = dt.datetime(2026, 12, 5, 17, 0, tzinfo=UTC)
    DedupSettings.objects.for_org(tokyo).create(
        org=tokyo,
        last_full_scan_at=sunday_two_tokyo + dt.timedelta(minutes=1),
        last_scan_at=sunday_two_tokyo + dt.timedelta(minutes=1),
    )
    assert due_scans(sunday_two_tokyo + dt.timedelta(minutes=15)) == []

    monday_two_tokyo = sunday_two_tokyo + dt.timedelta(days=1)
    assert [(o.slug, full) for o, full in due_scans(monday_two_tokyo)] == [("tokyo", False)]
    next_sunday = sunday_two_tokyo + dt.timedelta(days=7)
    assert [(o.slug, full) for o, full in due_scans(next_sunday)] == [("tokyo", True)]


def test_the_schedule_task_queues_one_job_while_one_is_pending(db):
    tokyo = OrganizationFactory(slug="tokyo", timezone="Asia/Tokyo")
    sunday_two_tokyo = dt.datetime(2026, 12, 5, 17, 0, tzinfo=UTC)
    queue_due_scans(sunday_two_tokyo)
    queue_due_scans(sunday_two_tokyo + dt.timedelta(minutes=15))
    assert BackgroundJob.objects.for_org(tokyo).filter(kind=JOB_KIND).count() == 1


# The job ------------------------------------------------------------------------------------


def test_the_full_scan_runs_as_a_job_with_progress(org):
    robert(org), bob(org)
    job = start_scan_job(org, Actor.system("test"), full=True)

    jobs.run_inline(JOB_KIND, org.id, job.pk)

    job.refresh_from_db()
    assert job.status == BackgroundJob.Status.DONE
    assert job.progress == job.total == 1000
    assert "1 probable" in job.result["summary"]
    assert DuplicatePair.objects.for_org(org).count() == 1


# The command line ---------------------------------------------------------------------------


def test_dedup_scan_json_prints_one_object_per_pair(org):
    first, second = robert(org), bob(org)
    stranger(org)
    out = io.StringIO()

    call_command("dedup_scan", "--org", org.slug, "--full", "--json", stdout=out)

    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    assert len(lines) == 1
    row = json.loads(lines[0])
    assert set(row) == {"a", "b", "score", "reasons"}
    assert {row["a"], row["b"]} == {str(first.public_id), str(second.public_id)}
    uuid.UUID(row["a"]), uuid.UUID(row["b"])
    assert isinstance(row["score"], float) and 0 < row["score"] <= 1
    assert "same phone" in row["reasons"]


def test_dedup_scan_text_output_and_threshold(org):
    robert(org), bob(org)
    out = io.StringIO()
    call_command("dedup_scan", "--org", org.slug, "--full", stdout=out)
    text = out.getvalue()
    assert "Robert Smith" in text and "Bob Smith" in text and "same phone" in text

    out = io.StringIO()
    call_command("dedup_scan", "--org", org.slug, "--json", "--threshold", "1.0", stdout=out)
    scores = [json.loads(line)["score"] for line in out.getvalue().splitlines() if line]
    assert all(score >= 1.0 for score in scores)


def test_dedup_scan_refuses_an_unknown_org_and_a_bad_threshold(org):
    with pytest.raises(CommandError, match="No organization"):
        call_command("dedup_scan", "--org", "nope", stdout=io.StringIO())
    with pytest.raises(CommandError, match="between 0 and 1"):
        call_command("dedup_scan", "--org", org.slug, "--threshold", "7", stdout=io.StringIO())


# Blocks too large to compare ------------------------------------------------------------------


def test_a_block_too_large_is_split_by_the_given_name(org):
    """Five Smiths whose first names start with J share one name key; with blocks capped at
    two, that block is split by the given name, so John and his typo meet, the others are
    not compared with everyone, and the form finds John through the same split."""
    john = ContactFactory(org=org, first_name="John", last_name="Smith", email="")
    jon = ContactFactory(org=org, first_name="Jonh", last_name="Smith", email="")
    for first in ("Jolene", "Julia", "Jasper"):
        ContactFactory(org=org, first_name=first, last_name="Smith", email="")

    capped = scan.scan_full(org, max_block=2)

    assert capped.oversized_blocks >= 1
    assert [(p.a, p.b) for p in capped.pairs] == [tuple(sorted((john.pk, jon.pk)))]
    assert capped.compared < 10  # five contacts all with all would be 10 pairs
    found = scan.pairs_for(org, {"first_name": "John", "last_name": "Smith"}, max_block=2)
    assert john.pk in [m.contact_id for m in found]


def test_incremental_scan_uses_the_split_blocks(org):
    john = ContactFactory(org=org, first_name="John", last_name="Smith", email="")
    for first in ("Jolene", "Julia", "Jasper"):
        ContactFactory(org=org, first_name=first, last_name="Smith", email="")
    other = ContactFactory(org=org, first_name="Peter", last_name="Brown", email="")
    scan.scan_full(org, max_block=2)
    assert not DuplicatePair.objects.for_org(org).exists()

    touch(other, first_name="Jonh", last_name="Smith")
    result = scan.scan_incremental(org, max_block=2)

    pair = DuplicatePair.objects.for_org(org).get()
    assert (pair.contact_a_id, pair.contact_b_id) == tuple(sorted((john.pk, other.pk)))
    assert result.compared < 4


def test_a_full_scan_keeps_the_key_index_in_step_with_the_contacts(org):
    changed = robert(org)
    bob(org)
    scan.scan_full(org)
    keys = DedupKey.objects.for_org(org).filter(contact_id=changed.pk)
    before = set(keys.values_list("key", flat=True))

    touch(changed, first_name="Wilhelmina", last_name="Zebulon", phone="", street="")
    scan.scan_full(org)

    values = {
        "first_name": "Wilhelmina",
        "last_name": "Zebulon",
        "postal_code": "94107",
        "city": "San Francisco",
    }
    person = scan.person_from_values(changed.pk, values, scan.org_rules(org).email)
    after = set(keys.values_list("key", flat=True))
    assert after == set(scan.key_hashes(person))
    assert after != before
    assert not DuplicatePair.objects.for_org(org).filter(band="probable").exists()


def test_a_pair_found_again_keeps_its_row_and_when_it_was_first_found(org):
    robert(org), bob(org)
    scan.scan_full(org)
    first = DuplicatePair.objects.for_org(org).get()

    scan.scan_full(org)

    again = DuplicatePair.objects.for_org(org).get()
    assert (again.pk, again.found_at, again.score) == (first.pk, first.found_at, first.score)


# The package's re-exports ---------------------------------------------------------------------


def test_patching_a_re_export_on_the_package_fails_and_names_where_to_patch(monkeypatch):
    with pytest.raises(AttributeError, match=r"patch it in contacts\.dedup\.scan\.full"):
        monkeypatch.setattr(scan, "PARALLEL_FROM", 1)
    with pytest.raises(AttributeError, match=r"contacts\.dedup\.scan\.incremental"):
        monkeypatch.setattr("contacts.dedup.scan.block_partners", lambda *a, **k: {})
    with pytest.raises(AttributeError, match="re-exports"):
        monkeypatch.delattr(scan, "scan_full")
    assert scan.PARALLEL_FROM == 20_000 and callable(scan.block_partners)


def test_patching_the_module_that_reads_a_setting_changes_the_scan(org, monkeypatch):
    robert(org), bob(org)
    chosen = []
    real_compare_all = full_scan._compare_all

    def compare_all_noting_the_workers(workers, progress):
        chosen.append(workers)
        return real_compare_all(workers, progress)

    monkeypatch.setenv("DEDUP_SCAN_WORKERS", "2")
    monkeypatch.setattr(full_scan, "_compare_all", compare_all_noting_the_workers)
    scan.scan_full(org)
    monkeypatch.setattr(full_scan, "PARALLEL_FROM", 1)
    result = scan.scan_full(org)

    assert chosen == [1, 2]
    pair = DuplicatePair.objects.for_org(org).get()
    assert [(p.a, p.b) for p in result.pairs] == [(pair.contact_a_id, pair.contact_b_id)]
