"""Issue 11, class 1: a row is refused only when nothing identifies the person; every other
problem is a warning on its field. The contact arrives without that value (a phone number
that cannot be checked is kept as typed and flagged unverified), and the preview, the job's
page and the downloadable report say which values, per row and field, with counts per kind."""

import csv
import datetime as dt
import io
import re
import threading

import pytest
from django.urls import reverse
from django.utils import timezone

from contacts import services as contact_services
from contacts.importing import services
from contacts.importing.engine import Importer
from contacts.importing.models import ImportJob, ImportRowError
from contacts.importing.services import run as import_run
from contacts.importing.warning_kinds import KINDS, warning_sentences
from contacts.models import Contact
from crm import jobs
from crm.permissions import Policy
from crm.services import Actor
from tests.factories import OrganizationFactory, member

from .test_import_pipeline import (
    existing_contact,
    import_file,
    map_job,
    rows_csv,
    started_and_killed_after_two_chunks,
    undo,
    upload,
)

pytestmark = pytest.mark.django_db

LONG_TITLE = "Chief " + "very " * 60 + "important officer"  # > 200 characters

EVERY_KIND = rows_csv(
    ["First Name", "Email", "Phone", "Owner", "Stage", "Job Title", "Consent Date"],
    [
        ["Ada", "ada@example.com", "12", "", "", "", ""],
        ["Bob", "not-an-email", "", "", "", "", ""],
        ["Cy", "cy@example.com", "", "old-crm-user@elsewhere.example", "", "", ""],
        ["Di", "di@example.com", "", "", "Wizard", "", ""],
        ["Ed", "ed@example.com", "", "", "", LONG_TITLE, ""],
        ["Flo", "flo@example.com", "", "", "", "", "31/31/2020"],
        ["Gus", "gus@example.com", "+44 20 7946 0958", "", "", "", ""],
    ],
)
EVERY_KIND_MAPPING = {
    "First Name": "first_name",
    "Email": "email",
    "Phone": "phone",
    "Owner": "owner",
    "Stage": "lifecycle_stage",
    "Job Title": "job_title",
    "Consent Date": "consent_date",
}


def report_rows(client, job) -> list[list[str]]:
    response = client.get(reverse("contacts:import_errors", args=[job.public_id]))
    assert response.status_code == 200
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text)))


# Each kind --------------------------------------------------------------------------------


def test_each_kind_of_bad_value_is_a_warning_and_every_row_is_imported(org, owner):
    job = import_file(
        owner, EVERY_KIND, mapping=EVERY_KIND_MAPPING, owner=str(owner.user.public_id)
    )

    assert job.status == ImportJob.Status.DONE, job.error
    assert (job.created_count, job.error_count, job.warning_count) == (7, 0, 6)
    assert job.warning_counts == {
        "phone_as_typed": 1,
        "email_left_out": 1,
        "owner_unmatched": 1,
        "choice_unmatched": 1,
        "truncated": 1,
        "value_left_out": 1,
    }
    people = {c.first_name: c for c in Contact.objects.filter(org=org)}
    assert (people["Ada"].phone, people["Ada"].phone_unverified) == ("12", True)
    assert (people["Gus"].phone, people["Gus"].phone_unverified) == ("+442079460958", False)
    assert people["Bob"].email == ""
    assert people["Cy"].owner_id == owner.user.pk  # the default owner applies
    assert people["Di"].lifecycle_stage == Contact.Stage.STAGE  # the import's default
    assert people["Ed"].job_title == LONG_TITLE[:200]
    assert people["Flo"].consent_date is None

    warned = {e.row_number: e for e in ImportRowError.objects.filter(job=job, is_warning=True)}
    assert sorted(warned) == [2, 3, 4, 5, 6, 7]
    kinds = {n: [f["kind"] for f in e.fields] for n, e in warned.items()}
    assert kinds == {
        2: ["phone_as_typed"],
        3: ["email_left_out"],
        4: ["owner_unmatched"],
        5: ["choice_unmatched"],
        6: ["truncated"],
        7: ["value_left_out"],
    }
    (truncated,) = warned[6].fields
    assert truncated["column"] == "Job Title"
    assert truncated["value"] == LONG_TITLE  # the full value, nothing silently dropped
    assert "cut to fit" in truncated["message"]
    assert warned[4].fields[0]["value"] == "old-crm-user@elsewhere.example"

    sentences = [s["text"] for s in warning_sentences(job.warning_counts, job)]
    assert "1 phone number kept as typed: marked unverified until someone corrects them" in (
        sentences
    )
    assert "1 owner not matched: the default owner was used" in sentences


def test_counts_read_as_sentences_in_singular_and_plural():
    kind = KINDS["phone_as_typed"]
    assert kind.sentence(142).startswith("142 phone numbers kept as typed")
    assert kind.sentence(1).startswith("1 phone number kept as typed")
    assert KINDS["owner_unmatched"].sentence(3, tail="the default owner was used") == (
        "3 owners not matched: the default owner was used"
    )
    assert KINDS["email_left_out"].sentence(1_500).startswith("1,500 email addresses")


# The identity rule ------------------------------------------------------------------------


def test_a_row_with_only_a_bad_email_is_an_error_and_with_a_name_a_warning(org, owner):
    content = rows_csv(
        ["First Name", "Email", "City"],
        [["", "not-an-email", "Oslo"], ["Kim", "not-an-email", "Oslo"]],
    )

    job = import_file(owner, content)

    assert (job.created_count, job.error_count, job.warning_count) == (1, 1, 1)
    error = ImportRowError.objects.get(job=job, is_warning=False)
    assert error.row_number == 2
    assert error.message.startswith("The row has no name, email or phone. Email: “not-an-email”")
    warning = ImportRowError.objects.get(job=job, is_warning=True)
    assert warning.row_number == 3
    assert Contact.objects.get(org=org, first_name="Kim").city == "Oslo"


def test_a_cell_with_a_good_and_a_bad_email_keeps_the_good_one(org, owner):
    content = rows_csv(
        ["Name", "Email"],
        [["Ann", "broken; ann@example.com, ann@work.example"]],
    )

    job = import_file(owner, content)

    contact = Contact.objects.get(org=org)
    assert contact.email == "ann@example.com"
    assert contact.other_emails == ["ann@work.example"]
    (warning,) = ImportRowError.objects.filter(job=job, is_warning=True)
    assert [(f["kind"], f["value"]) for f in warning.fields] == [
        ("email_left_out", "broken; ann@example.com, ann@work.example")
    ]
    assert "“broken”" in warning.fields[0]["message"]


def test_a_phone_kept_as_typed_identifies_a_row_but_never_matches_a_contact(org, owner):
    existing = existing_contact(org, first_name="Known")
    Contact.objects.filter(pk=existing.pk).update(phone="n/a 12", phone_unverified=True)
    content = rows_csv(["Phone", "City"], [["n/a 12", "Oslo"], ["n/a 12", "Rome"]])

    job = import_file(owner, content)

    # Both rows arrive as new contacts: junk shared by many rows is nobody's key.
    assert (job.created_count, job.updated_count, job.error_count) == (2, 0, 0), job.error
    existing.refresh_from_db()
    assert existing.city == ""
    assert set(
        Contact.objects.filter(org=org, import_job=job).values_list(
            "phone", "phone_unverified", "city"
        )
    ) == {("n/a 12", True, "Oslo"), ("n/a 12", True, "Rome")}


def test_a_phone_cell_with_no_digit_is_no_number_and_is_left_out(org, owner):
    job = import_file(owner, rows_csv(["Name", "Phone"], [["Lee", "n/a"], ["Kim", "ask desk"]]))

    assert set(Contact.objects.filter(org=org).values_list("phone", "phone_unverified")) == {
        ("", False)
    }
    assert job.warning_counts == {"value_left_out": 2}


def test_a_phone_too_long_to_keep_is_left_out_with_a_warning(org, owner):
    junk = "call the front desk and ask for the person in charge of purchasing " * 2
    job = import_file(owner, rows_csv(["Name", "Phone"], [["Lee", junk]]))

    contact = Contact.objects.get(org=org)
    assert (contact.phone, contact.phone_unverified) == ("", False)
    assert job.warning_counts == {"value_left_out": 1}


# Exact counts over chunks and lanes --------------------------------------------------------


def test_counts_are_exact_over_a_multi_chunk_import_in_parallel_lanes(
    transactional_db, monkeypatch
):
    org = OrganizationFactory()
    owner = member(org, "owner")
    rows = []
    for i in range(60):
        phone = "12" if i % 3 == 0 else f"+49 30 1234 56{i:02d}"
        stage = "Wizard" if i % 5 == 0 else "Lead"
        email = f"p{i}@example.com" if i % 7 else "nope"
        rows.append([f"P{i}", email, phone, stage])
    rows.append(["", "nope", "", ""])  # nothing identifies this one: an error
    content = rows_csv(["Name", "Email", "Phone", "Stage"], rows)
    threads = set()
    real = Importer._commit_part

    def recording(self, *args):
        threads.add(threading.current_thread().name)
        return real(self, *args)

    monkeypatch.setattr(Importer, "_commit_part", recording)
    job = map_job(upload(owner, content), owner)
    services.import_start(job=job, actor=Actor.for_user(owner.user), policy=Policy(owner))
    services.run_import(org_id=org.pk, job_id=job.pk, chunk_rows=10)
    job.refresh_from_db()

    assert job.status == ImportJob.Status.DONE, job.error
    assert job.merge_lanes == 2 and {"import-lane-0", "import-lane-1"} <= threads
    phones = len([i for i in range(60) if i % 3 == 0])
    stages = len([i for i in range(60) if i % 5 == 0])
    emails = len([i for i in range(60) if i % 7 == 0])
    warned = len([i for i in range(60) if i % 3 == 0 or i % 5 == 0 or i % 7 == 0])
    assert job.warning_counts == {
        "phone_as_typed": phones,
        "choice_unmatched": stages,
        "email_left_out": emails,
    }
    assert (job.created_count, job.error_count, job.warning_count) == (60, 1, warned)
    assert ImportRowError.objects.filter(job=job, is_warning=True).count() == warned
    assert ImportRowError.objects.filter(job=job, is_warning=False).count() == 1


def test_a_resumed_job_does_not_count_warnings_twice(org, owner, monkeypatch):
    content = rows_csv(["Name", "Phone"], [[f"P{i}", "12"] for i in range(25)])

    job = started_and_killed_after_two_chunks(owner, content, monkeypatch)

    assert (job.warning_count, job.warning_counts) == (20, {"phone_as_typed": 20})
    stale = timezone.now() - dt.timedelta(seconds=jobs.STALE_AFTER_SECONDS + 5)
    ImportJob.objects.filter(pk=job.pk).update(heartbeat_at=stale)
    monkeypatch.setattr(import_run, "Importer", Importer)

    services.run_import(org_id=org.pk, job_id=job.pk, chunk_rows=10)

    job.refresh_from_db()
    assert job.status == ImportJob.Status.DONE, job.error
    assert (job.created_count, job.warning_count) == (25, 25)
    assert job.warning_counts == {"phone_as_typed": 25}


# The report, the preview, the job's page --------------------------------------------------


def test_the_report_has_an_error_and_a_warnings_column(org, owner, client_as):
    content = rows_csv(
        ["First Name", "Email", "Phone", "Job Title"],
        [
            ["", "broken", "", ""],
            ["Ada", "ada@example.com", "12", LONG_TITLE],
            ["Bob", "bob@example.com", "", ""],
        ],
    )
    job = import_file(owner, content)

    rows = report_rows(client_as(owner), job)

    assert rows[0] == ["First Name", "Email", "Phone", "Job Title", "Error", "Warnings"]
    assert len(rows) == 3
    assert rows[1][:4] == ["", "broken", "", ""]
    assert rows[1][4].startswith("Row 2: The row has no name, email or phone.")
    assert rows[1][5] == ""
    assert rows[2][:4] == ["Ada", "ada@example.com", "12", LONG_TITLE]  # the full value
    assert rows[2][4] == ""
    lines = rows[2][5].split("\n")
    assert lines[0].startswith("Phone: “12”") and lines[0].endswith("marked unverified.")
    assert lines[1].startswith("Job Title: Longer than the 200 characters")


def test_a_fixed_report_uploads_again_without_stacking_its_columns(org, owner, client_as):
    job = import_file(owner, rows_csv(["Name", "Email", "Phone"], [["Ada", "a@x.example", "12"]]))
    rows = report_rows(client_as(owner), job)
    rows[1][2] = "+44 20 7946 0958"
    out = io.StringIO()
    csv.writer(out).writerows(rows)

    second = upload(owner, out.getvalue(), name="people-errors.csv")
    assert second.headers == ["Name", "Email", "Phone", "Error", "Warnings"]
    mapping = {**second.mapping, "Error": "__skip__", "Warnings": "__skip__"}
    second = services.import_set_mapping(
        job=second,
        actor=Actor.for_user(owner.user),
        policy=Policy(owner),
        mapping=mapping,
        defaults={},
        import_policy="upsert",
        blank_policy="keep",
    )
    services.import_start(job=second, actor=Actor.for_user(owner.user), policy=Policy(owner))
    services.run_import(org_id=org.pk, job_id=second.pk)
    second.refresh_from_db()

    assert (second.updated_count, second.warning_count) == (1, 0), second.error
    contact = Contact.objects.get(org=org)
    assert (contact.phone, contact.phone_unverified) == ("+442079460958", False)
    assert report_rows(client_as(owner), second)[0] == [
        "Name",
        "Email",
        "Phone",
        "Error",
        "Warnings",
    ]


def test_warnings_of_a_hidden_field_show_neither_its_value_nor_a_message_quoting_it(
    org, owner, client_as
):
    from crm.permissions import _matrix
    from tests.factories import MembershipFactory, custom_role

    content = rows_csv(
        ["Name", "Email", "Phone"],
        [["Ada", "ada@example.com", "secret-555"], ["", "", "secret-777"]],
    )
    job = import_file(owner, content)
    role = custom_role(org, permissions=_matrix("vced"), field_rules={"phone": "hidden"})
    reader = MembershipFactory(org=org, role=role)

    rows = report_rows(client_as(reader), job)

    text = "\n".join(",".join(r) for r in rows)
    assert "secret" not in text
    warning = next(r for r in rows if r[0] == "Ada")
    assert warning[4] == (
        "Phone: Not a phone number we could check: kept as typed and marked unverified."
    )
    # The uploader sees their own file whole.
    assert "secret-555" in "\n".join(",".join(r) for r in report_rows(client_as(owner), job))


def test_preview_shows_warnings_per_row_and_field_and_counts_per_kind(org, owner, client_as):
    job = map_job(upload(owner, EVERY_KIND), owner, mapping=EVERY_KIND_MAPPING)

    response = client_as(owner).get(reverse("contacts:import_preview", args=[job.public_id]))

    page = response.content.decode()
    assert response.status_code == 200
    assert re.search(r'figure-value">6</span><span class="figure-label">rows with warnings', page)
    assert re.search(r'figure-value">0</span><span class="figure-label">rows? with errors', page)
    assert "1 phone number kept as typed" in page
    assert "1 owner not matched: no owner was set from the file" in page
    assert 'data-warnings-row="6"' in page
    assert "<strong>Job Title:</strong> Longer than the 200 characters" in page
    # Nothing was written by the preview.
    assert not ImportRowError.objects.filter(job=job).exists()


def test_the_job_page_shows_counts_per_kind_apart_from_errors(org, owner, client_as):
    job = import_file(
        owner, EVERY_KIND, mapping=EVERY_KIND_MAPPING, owner=str(owner.user.public_id)
    )

    page = client_as(owner).get(reverse("contacts:import_detail", args=[job.public_id]))

    text = page.content.decode()
    assert '<dd data-count="errors">0</dd>' in text
    assert '<dd data-count="warnings">6</dd>' in text
    assert "1 owner not matched: the default owner was used" in text
    assert "1 value cut to fit its field" in text
    assert "6 rows with warnings (CSV)" in text


# Update imports and Undo ------------------------------------------------------------------


def test_update_import_and_undo_restore_phones_and_their_flags_exactly(org, owner):
    a = existing_contact(org, email="a@example.com", phone="+442079460958", city="Rome")
    b = existing_contact(org, email="b@example.com", city="Rome")
    c = existing_contact(org, email="c@example.com", phone="+442079460958")
    Contact.objects.filter(pk=c.pk).update(phone="old junk", phone_unverified=True)
    content = rows_csv(
        ["Email", "Phone", "City", "Stage"],
        [
            ["a@example.com", "12", "Oslo", "Wizard"],  # valid number → as typed
            ["b@example.com", "+44 20 7946 0959", "Oslo", ""],  # none → valid
            ["c@example.com", "+44 20 7946 0960", "", ""],  # as typed → valid
        ],
    )
    before = {
        x.pk: (x.phone, x.phone_unverified, x.city, x.lifecycle_stage)
        for x in Contact.objects.filter(org=org)
    }

    job = import_file(owner, content, policy="update")

    assert (job.updated_count, job.warning_count) == (3, 1), job.error
    assert job.warning_counts == {"phone_as_typed": 1, "choice_unmatched": 1}
    after = {x.pk: (x.phone, x.phone_unverified, x.city) for x in Contact.objects.filter(org=org)}
    assert after == {
        a.pk: ("12", True, "Oslo"),
        b.pk: ("+442079460959", False, "Oslo"),
        c.pk: ("+442079460960", False, ""),
    }

    job = undo(job, owner)

    assert job.status == ImportJob.Status.UNDONE
    restored = {
        x.pk: (x.phone, x.phone_unverified, x.city, x.lifecycle_stage)
        for x in Contact.objects.filter(org=org)
    }
    assert restored == before


def test_overwrite_blanks_clears_a_phone_and_its_flag(org, owner):
    c = existing_contact(org, email="c@example.com")
    Contact.objects.filter(pk=c.pk).update(phone="old junk", phone_unverified=True)

    import_file(
        owner,
        rows_csv(["Email", "Phone", "City"], [["c@example.com", "", "Oslo"]]),
        blanks="overwrite",
    )

    c.refresh_from_db()
    assert (c.phone, c.phone_unverified, c.city) == ("", False, "Oslo")


def test_keep_blanks_keeps_a_phone_and_its_flag(org, owner):
    c = existing_contact(org, email="c@example.com")
    Contact.objects.filter(pk=c.pk).update(phone="old junk", phone_unverified=True)

    import_file(owner, rows_csv(["Email", "Phone", "City"], [["c@example.com", "", "Oslo"]]))

    c.refresh_from_db()
    assert (c.phone, c.phone_unverified, c.city) == ("old junk", True, "Oslo")


# The contact's pages ----------------------------------------------------------------------


def as_typed_contact(org, owner):
    import_file(owner, rows_csv(["Name", "Email", "Phone"], [["Ada", "ada@example.com", "12 34"]]))
    contact = Contact.objects.get(org=org, email="ada@example.com")
    assert (contact.phone, contact.phone_unverified) == ("12 34", True)
    return contact


def test_a_phone_kept_as_typed_shows_as_typed_with_a_badge_and_no_call_link(org, owner, client_as):
    contact = as_typed_contact(org, owner)

    page = client_as(owner).get(reverse("contacts:contact_detail", args=[contact.public_id]))

    text = page.content.decode()
    assert "12 34" in text and "Unverified" in text
    assert 'href="tel:12 34"' not in text and "tel:12" not in text


def test_saving_other_fields_keeps_an_as_typed_phone_and_a_new_number_clears_the_flag(org, owner):
    contact = as_typed_contact(org, owner)
    actor, policy = Actor.for_user(owner.user), Policy(owner)

    # Sent back unchanged (an API client sending the whole record): accepted as it is.
    contact_services.contact_update(
        contact=contact, actor=actor, policy=policy, data={"phone": "12 34", "city": "Oslo"}
    )
    contact.refresh_from_db()
    assert (contact.phone, contact.phone_unverified, contact.city) == ("12 34", True, "Oslo")

    # A changed value is checked as usual, and the flag goes once it is a real number.
    with pytest.raises(Exception) as refused:
        contact_services.contact_update(
            contact=contact, actor=actor, policy=policy, data={"phone": "12 345"}
        )
    assert "phone" in refused.value.message_dict
    contact_services.contact_update(
        contact=contact, actor=actor, policy=policy, data={"phone": "+44 20 7946 0958"}
    )
    contact.refresh_from_db()
    assert (contact.phone, contact.phone_unverified) == ("+442079460958", False)


def test_the_edit_form_shows_the_as_typed_phone_and_saves_other_fields(org, owner, client_as):
    contact = as_typed_contact(org, owner)
    client = client_as(owner)
    url = reverse("contacts:contact_edit", args=[contact.public_id])

    form = client.get(url).context["form"]
    assert form["phone"].value() == "12 34"
    data = {k: v for k, v in form.initial.items() if v is not None}
    data["city"] = "Oslo"
    response = client.post(url, data)

    assert response.status_code in (200, 302)
    contact.refresh_from_db()
    assert (contact.city, contact.phone, contact.phone_unverified) == ("Oslo", "12 34", True)


def test_a_warning_row_with_nul_characters_is_reported_without_them(org, owner):
    job = import_file(owner, rows_csv(["Name", "Phone", "Note"], [["Lee", "12\x00", "a\x00b"]]))

    (reported,) = ImportRowError.objects.filter(job=job)
    assert reported.is_warning
    assert "\x00" not in "".join(reported.values)
    assert all("\x00" not in str(f["value"]) for f in reported.fields)
