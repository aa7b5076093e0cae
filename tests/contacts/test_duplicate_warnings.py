"""Duplicate warnings before a duplicate is made: the contact form's "Looks like Robert
Smith (same phone; ...)" with a link and "Save anyway", and the import's flagging of the
rows it created that look like existing contacts (DuplicatePair rows found by the import,
counted in its summary). Scope, tenancy and escaping included."""

from __future__ import annotations

import csv
import html
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from contacts.dedup import form_warning, scan
from contacts.dedup.models import DedupKey, DuplicateDismissal, DuplicatePair, ordered_pair
from contacts.importing import selectors, services
from contacts.importing.services import duplicates as import_duplicates
from contacts.models import Contact
from crm.permissions import Policy
from crm.services import Actor
from tests.contacts.test_dedup_scan import robert
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db

CREATE_URL = reverse("contacts:contact_create")


@pytest.fixture(autouse=True)
def _uploads_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


def bob_form(owner_user, **extra):
    """Robert Smith typed again as a new contact: nickname, phone and street written
    another way."""
    data = {
        "first_name": "Bob",
        "last_name": "Smith",
        "email": "",
        "phone": "+1 (415) 555-0123",
        "street": "12 Main St.",
        "postal_code": "94107",
        "city": "San Francisco",
        "status": "active",
        "lifecycle_stage": "lead",
        "consent_status": "unknown",
        "owner": str(owner_user.public_id),
    }
    data.update(extra)
    return data


def detail_url(contact):
    return reverse("contacts:contact_detail", kwargs={"public_id": contact.public_id})


def edit_url(contact):
    return reverse("contacts:contact_edit", kwargs={"public_id": contact.public_id})


def page(response) -> str:
    return response.content.decode()


# The contact form ----------------------------------------------------------------------------


def test_create_form_warns_about_a_probable_duplicate_with_its_link_and_reasons(
    org, owner, client_as
):
    existing = robert(org, owner=owner.user)

    response = client_as(owner).post(CREATE_URL, bob_form(owner.user))

    assert response.status_code == 200
    text = page(response)
    assert "data-duplicate-warning" in text
    assert "Looks like" in text
    assert f'href="{detail_url(existing)}"' in text
    assert "Robert Smith" in text
    assert "same phone" in text
    assert f'value="{existing.public_id}"' in text  # the "Save anyway" button
    # Nothing was saved, and what was typed is still in the form.
    assert Contact.objects.for_org(org).count() == 1
    assert 'value="Bob"' in text


def test_save_anyway_saves_the_contact(org, owner, client_as):
    existing = robert(org, owner=owner.user)
    data = bob_form(owner.user, **{form_warning.CONFIRM_FIELD: str(existing.public_id)})

    response = client_as(owner).post(CREATE_URL, data)

    assert response.status_code == 302
    created = Contact.objects.for_org(org).exclude(pk=existing.pk).get()
    assert (created.first_name, created.phone) == ("Bob", "+14155550123")
    assert response["Location"] == detail_url(created)


def test_save_anyway_for_other_contacts_does_not_skip_a_new_match(org, owner, client_as):
    existing = robert(org, owner=owner.user)
    someone_else = ContactFactory(org=org, owner=owner.user)
    data = bob_form(owner.user, **{form_warning.CONFIRM_FIELD: str(someone_else.public_id)})

    response = client_as(owner).post(CREATE_URL, data)

    assert response.status_code == 200
    assert f'href="{detail_url(existing)}"' in page(response)
    assert Contact.objects.for_org(org).count() == 2


def test_no_warning_for_a_stranger(org, owner, client_as):
    robert(org, owner=owner.user)
    data = bob_form(
        owner.user,
        first_name="Alice",
        last_name="Wong",
        email="alice.wong@example.org",
        phone="+44 20 7123 4567",
        street="1 Baker Street",
        postal_code="NW16XE",
        city="London",
    )

    response = client_as(owner).post(CREATE_URL, data)

    assert response.status_code == 302
    assert Contact.objects.for_org(org).filter(last_name="Wong").exists()


def test_a_contact_outside_the_members_scope_is_never_named(org, owner, members, client_as):
    rep = members["team"]  # own records only
    theirs = robert(org, owner=owner.user)

    response = client_as(rep).post(CREATE_URL, bob_form(rep.user))

    assert response.status_code == 302  # saved: nothing the rep may see looks alike
    assert Contact.objects.for_org(org).filter(first_name="Bob", owner=rep.user).exists()
    follow = page(client_as(rep).get(response["Location"]))
    assert str(theirs.public_id) not in follow
    # Their name, whole: a member of the org may well be called "Julia Roberts".
    assert f"{theirs.first_name} {theirs.last_name}" not in follow


def test_the_rep_is_warned_about_their_own_contact_only(org, owner, members, client_as):
    rep = members["team"]
    mine = robert(org, owner=rep.user)
    theirs = robert(org, owner=owner.user)

    response = client_as(rep).post(CREATE_URL, bob_form(rep.user))

    assert response.status_code == 200
    text = page(response)
    assert f'href="{detail_url(mine)}"' in text
    assert str(theirs.public_id) not in text


def test_another_organizations_contact_is_never_named(org, other_org, owner, client_as):
    theirs = robert(other_org)

    response = client_as(owner).post(CREATE_URL, bob_form(owner.user))

    assert response.status_code == 302
    assert str(theirs.public_id) not in page(client_as(owner).get(response["Location"]))
    assert Contact.objects.for_org(org).filter(first_name="Bob").exists()


def test_edit_never_warns_about_the_contact_itself(org, owner, client_as):
    existing = robert(org, owner=owner.user)
    data = bob_form(owner.user, first_name="Robert", street="12 Main Street")
    data["phone"] = "+1 415 555 0123"  # identity field touched: the check runs

    response = client_as(owner).post(edit_url(existing), data)

    assert response.status_code == 302
    existing.refresh_from_db()
    assert existing.street == "12 Main Street"


def test_edit_that_makes_a_contact_look_like_another_warns(org, owner, client_as):
    existing = robert(org, owner=owner.user)
    other = ContactFactory(
        org=org, first_name="Bob", last_name="Smyth", email="", phone="", owner=owner.user
    )

    response = client_as(owner).post(edit_url(other), bob_form(owner.user))

    assert response.status_code == 200
    text = page(response)
    assert f'href="{detail_url(existing)}"' in text
    assert f'data-duplicate-match="{other.public_id}"' not in text
    other.refresh_from_db()
    assert other.phone == ""

    confirmed = bob_form(owner.user, **{form_warning.CONFIRM_FIELD: str(existing.public_id)})
    assert client_as(owner).post(edit_url(other), confirmed).status_code == 302
    other.refresh_from_db()
    assert other.phone == "+14155550123"


def test_edit_that_leaves_the_identity_alone_is_not_warned(org, owner, client_as):
    robert(org, owner=owner.user)
    twin = robert(org, owner=owner.user)  # already a known duplicate
    data = bob_form(owner.user, first_name="Robert", street="12 Main Street", job_title="CFO")
    data["phone"] = "+14155550123"

    client = client_as(owner)
    form_page = page(client.get(edit_url(twin)))
    response = client.post(edit_url(twin), {**data, "phone": _initial_phone(form_page)})

    assert response.status_code == 302
    twin.refresh_from_db()
    assert twin.job_title == "CFO"


def _initial_phone(form_html: str) -> str:
    """The phone input's value as the edit form shows it (formatted for reading)."""
    start = form_html.index('name="phone"')
    tag = form_html[form_html.rindex("<input", 0, start) : form_html.index(">", start)]
    value = tag.split('value="', 1)[1].split('"', 1)[0]
    return html.unescape(value)


def test_an_email_already_taken_gets_the_services_refusal_not_the_warning(org, owner, client_as):
    robert(org, owner=owner.user, email="robert@smith.example")

    response = client_as(owner).post(CREATE_URL, bob_form(owner.user, email="Robert@Smith.example"))

    assert response.status_code == 200
    text = page(response)
    assert "Another active contact already has this email." in text
    assert "data-duplicate-warning" not in text


def test_naughty_names_are_escaped_in_the_warning(org, owner, client_as):
    robert(org, owner=owner.user, first_name='<script>alert("x")</script>Robert')

    response = client_as(owner).post(
        CREATE_URL, bob_form(owner.user, first_name='<script>alert("x")</script>Bob')
    )

    assert response.status_code == 200
    text = page(response)
    assert "data-duplicate-warning" in text
    assert '<script>alert("x")' not in text
    assert "&lt;script&gt;" in text


CHECK_URL = reverse("contacts:contact_duplicate_check")
CHECK_VALUES = {"first_name": "Bob", "last_name": "Smith", "phone": "+1 415 555 0123"}


def test_check_while_typing_names_matches_in_scope_without_save_anyway(
    org, owner, members, client_as
):
    rep = members["team"]
    mine = robert(org, owner=rep.user)
    theirs = robert(org, owner=owner.user)

    response = client_as(rep, htmx=True).get(CHECK_URL, CHECK_VALUES)

    assert response.status_code == 200
    text = page(response)
    assert f'href="{detail_url(mine)}"' in text
    assert str(theirs.public_id) not in text
    assert "Save anyway" not in text


def test_check_while_typing_leaves_out_the_contact_being_edited(org, owner, client_as):
    existing = robert(org, owner=owner.user)
    client = client_as(owner, htmx=True)

    assert str(existing.public_id) in page(client.get(CHECK_URL, CHECK_VALUES))
    alone = page(client.get(CHECK_URL, {**CHECK_VALUES, "exclude": str(existing.public_id)}))
    assert "data-duplicate-warning" not in alone


def test_check_while_typing_refuses_another_organizations_contact(org, other_org, owner, client_as):
    theirs = robert(other_org)

    response = client_as(owner, htmx=True).get(
        CHECK_URL, {**CHECK_VALUES, "exclude": str(theirs.public_id)}
    )

    assert response.status_code == 404
    bad = client_as(owner, htmx=True).get(CHECK_URL, {**CHECK_VALUES, "exclude": "<b>x"})
    assert bad.status_code == 404
    assert "data-duplicate-warning" not in page(
        client_as(owner, htmx=True).get(CHECK_URL, CHECK_VALUES)
    )


def test_the_form_asks_for_the_check_while_typing(org, owner, client_as):
    existing = robert(org, owner=owner.user)
    client = client_as(owner)

    assert f'hx-get="{CHECK_URL}"' in page(client.get(CREATE_URL))
    assert f'hx-get="{CHECK_URL}?exclude={existing.public_id}"' in page(
        client.get(edit_url(existing))
    )


# The import ----------------------------------------------------------------------------------


def rows_csv(header, rows) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def import_file(membership, content: str):
    actor = Actor.for_user(membership.user)
    policy = Policy(membership)
    job = services.import_create(
        org=membership.org,
        actor=actor,
        policy=policy,
        upload=SimpleUploadedFile("people.csv", content.encode()),
    )
    job = services.import_set_mapping(
        job=job,
        actor=actor,
        policy=policy,
        mapping=job.mapping,
        defaults={},
        import_policy="upsert",
        blank_policy="keep",
    )
    services.import_start(job=job, actor=actor, policy=policy)
    services.run_import(org_id=job.org_id, job_id=job.pk)
    job.refresh_from_db()
    return job


HEADER = ["First Name", "Last Name", "Email", "Phone", "Street", "Postal Code", "City"]
BOB_ROW = [
    "Bob",
    "Smith",
    "bob.smith@mail.example",
    "+1 415 555 0123",
    "12 Main St.",
    "94107",
    "San Francisco",
]
STRANGER_ROW = [
    "Alice",
    "Wong",
    "alice.wong@example.org",
    "+44 20 7123 4567",
    "1 Baker Street",
    "NW16XE",
    "London",
]


def import_pairs(org, job):
    return list(DuplicatePair.objects.for_org(org).filter(import_job=job))


def test_import_flags_a_created_row_that_looks_like_an_existing_contact(org, owner, client_as):
    existing = robert(org, owner=owner.user)

    job = import_file(owner, rows_csv(HEADER, [BOB_ROW, STRANGER_ROW]))

    assert (job.status, job.created_count, job.updated_count) == ("done", 2, 0)
    bob = Contact.objects.for_org(org).get(email="bob.smith@mail.example")
    (pair,) = import_pairs(org, job)
    assert (pair.contact_a_id, pair.contact_b_id) == ordered_pair(existing.pk, bob.pk)
    assert pair.found_by == DuplicatePair.FoundBy.IMPORT
    assert pair.band == DuplicatePair.Band.PROBABLE
    assert "same phone" in pair.reasons
    assert job.result["duplicates"]["rows"] == 1
    assert job.result["duplicates"]["checked"] == 2

    detail = page(client_as(owner).get(reverse("contacts:import_detail", args=[job.public_id])))
    assert 'data-import-duplicates="1"' in detail
    assert "1 row looks like existing contacts" in detail
    assert reverse("contacts:data_health") in detail
    health = page(client_as(owner).get(reverse("contacts:data_health")))
    assert str(pair.public_id) in health


def test_import_finds_partners_through_the_scans_key_index(org, owner):
    existing = robert(org, owner=owner.user)
    scan.scan_full(org)  # indexed now: found through DedupKey, not the in-memory index
    assert DedupKey.objects.for_org(org).filter(contact_id=existing.pk).exists()

    job = import_file(owner, rows_csv(HEADER, [BOB_ROW]))

    (pair,) = import_pairs(org, job)
    assert existing.pk in (pair.contact_a_id, pair.contact_b_id)
    assert pair.found_by == DuplicatePair.FoundBy.IMPORT


def test_exact_email_matches_update_and_are_not_flagged(org, owner, client_as):
    existing = robert(org, owner=owner.user, email="bob.smith@mail.example")

    job = import_file(owner, rows_csv(HEADER, [BOB_ROW]))

    assert (job.created_count, job.updated_count) == (0, 1)
    assert Contact.objects.for_org(org).get().pk == existing.pk
    assert import_pairs(org, job) == []
    assert job.result["duplicates"]["rows"] == 0
    detail = page(client_as(owner).get(reverse("contacts:import_detail", args=[job.public_id])))
    assert "looks like existing" not in detail and "look like existing" not in detail


def test_an_import_never_pairs_with_another_organizations_contact(org, other_org, owner):
    robert(other_org)

    job = import_file(owner, rows_csv(HEADER, [BOB_ROW]))

    assert job.created_count == 1
    assert DuplicatePair.objects.all_orgs().count() == 0
    assert job.result["duplicates"]["rows"] == 0


def test_rows_of_the_same_file_are_not_existing_contacts(org, owner):
    second = [*BOB_ROW]
    second[2] = "robert.smith@other.example"

    job = import_file(owner, rows_csv(HEADER, [BOB_ROW, second]))

    assert job.created_count == 2
    assert import_pairs(org, job) == []


def test_a_dismissed_pair_is_not_flagged_again(org, owner):
    existing = robert(org, owner=owner.user)
    job = import_file(owner, rows_csv(HEADER, [BOB_ROW]))
    (pair,) = import_pairs(org, job)
    DuplicateDismissal.objects.for_org(org).create(
        org=org, contact_a_id=pair.contact_a_id, contact_b_id=pair.contact_b_id
    )
    pair.delete()

    figures = import_duplicates.flag_import_duplicates(job, selectors.created_ids(job))

    assert figures["rows"] == 0
    assert import_pairs(org, job) == []
    assert existing.pk in (pair.contact_a_id, pair.contact_b_id)


def test_a_pair_a_scan_found_already_is_left_as_it_is(org, owner):
    existing = robert(org, owner=owner.user)
    job = import_file(owner, rows_csv(HEADER, [BOB_ROW]))
    (pair,) = import_pairs(org, job)
    DuplicatePair.objects.for_org(org).filter(pk=pair.pk).update(
        found_by=DuplicatePair.FoundBy.SCAN, import_job=None
    )

    figures = import_duplicates.flag_import_duplicates(job, selectors.created_ids(job))

    assert figures["rows"] == 1
    stored = DuplicatePair.objects.for_org(org).get()
    assert stored.found_by == DuplicatePair.FoundBy.SCAN
    assert existing.pk in (stored.contact_a_id, stored.contact_b_id)


def test_the_check_is_capped_and_the_summary_says_so(org, owner, client_as, monkeypatch):
    monkeypatch.setattr(import_duplicates, "CHECK_CAP", 1)
    robert(org, owner=owner.user)

    job = import_file(owner, rows_csv(HEADER, [STRANGER_ROW, BOB_ROW]))

    assert job.created_count == 2
    assert job.result["duplicates"]["checked"] == 1
    assert job.result["duplicates"]["unchecked"] == 1
    detail = page(client_as(owner).get(reverse("contacts:import_detail", args=[job.public_id])))
    assert "Only the first 1 new contacts were compared" in detail


def test_a_failing_check_never_fails_the_import(org, owner, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(import_duplicates, "flag_import_duplicates", broken)
    robert(org, owner=owner.user)

    job = import_file(owner, rows_csv(HEADER, [BOB_ROW]))

    assert (job.status, job.created_count) == ("done", 1)
    assert "duplicates" not in (job.result or {})


def test_naughty_names_in_an_import_summary_stay_out_of_it(org, owner, client_as):
    robert(org, owner=owner.user, first_name="<img src=x onerror=alert(1)>")
    row = [*BOB_ROW]
    row[0] = "<img src=x onerror=alert(1)>"

    job = import_file(owner, rows_csv(HEADER, [row]))

    assert len(import_pairs(org, job)) == 1
    detail = page(client_as(owner).get(reverse("contacts:import_detail", args=[job.public_id])))
    assert "<img src=x" not in detail
    health = page(client_as(owner).get(reverse("contacts:data_health")))
    assert "<img src=x" not in health
    assert "&lt;img src=x" in health
