"""The import pipeline through its services, on the real Postgres: preview, the set-based
load, policies, companies, the timeline and audit trail, the error report, undo, resuming a
dead worker's job, a real Celery worker, encodings and workbooks, and the end notification."""

import csv
import datetime as dt
import io
import multiprocessing
import multiprocessing.util
import os
import threading
import time
import uuid
import zoneinfo

import pytest
from celery.contrib.testing.worker import start_worker
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import OperationalError
from django.urls import reverse
from django.utils import timezone
from openpyxl import Workbook

from contacts import scoring
from contacts import services as contact_services
from contacts.importing import selectors, services
from contacts.importing.engine import Importer
from contacts.importing.models import ImportJob, ImportPart, ImportRecord, ImportRowError
from contacts.importing.services import run as import_run
from contacts.importing.services import undo as import_undo
from contacts.importing.services import wizard as import_wizard
from contacts.models import Activity, Company, Contact
from crm import jobs
from crm.celery import app as celery_app
from crm.models import AuditEvent, Notification, OutboxEvent
from crm.permissions import Policy
from crm.services import Actor
from tests.factories import OrganizationFactory, member

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _uploads_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


def upload(membership, content, name="people.csv", encoding="utf-8") -> ImportJob:
    data = content.encode(encoding) if isinstance(content, str) else content
    return services.import_create(
        org=membership.org,
        actor=Actor.for_user(membership.user),
        policy=Policy(membership),
        upload=SimpleUploadedFile(name, data),
    )


def map_job(job, membership, *, mapping=None, policy="upsert", blanks="keep", **defaults):
    return services.import_set_mapping(
        job=job,
        actor=Actor.for_user(membership.user),
        policy=Policy(membership),
        mapping=job.mapping if mapping is None else mapping,
        defaults=defaults,
        import_policy=policy,
        blank_policy=blanks,
    )


def run(job, membership, *, chunk_rows=None) -> ImportJob:
    """Start the job as the wizard does, then run the task's work in this process (the `db`
    fixture's transaction never commits, so nothing reaches the broker)."""
    services.import_start(job=job, actor=Actor.for_user(membership.user), policy=Policy(membership))
    services.run_import(org_id=job.org_id, job_id=job.pk, chunk_rows=chunk_rows)
    job.refresh_from_db()
    return job


def import_file(membership, content, *, name="people.csv", chunk_rows=None, **mapping_kwargs):
    job = map_job(upload(membership, content, name=name), membership, **mapping_kwargs)
    return run(job, membership, chunk_rows=chunk_rows)


def created_by(job) -> list[int]:
    """The contact ids the job's parts list as created by it."""
    return [i for ids in job.parts.values_list("created_ids", flat=True) for i in ids]


def existing_contact(org, **data) -> Contact:
    return contact_services.contact_create(org=org, actor=Actor.system("test"), data=data)


def rows_csv(header, rows) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


# Preview ---------------------------------------------------------------------------------


def test_preview_counts_creates_updates_skips_and_every_kind_of_row_error(org, owner):
    contact_services.customfield_create(
        org=org,
        actor=Actor.for_user(owner.user),
        data={
            "key": "member_code",
            "label": "Member code",
            "field_type": "text",
            "regex": r"[A-Z]{3}-\d{3}",
            "regex_message": "Use three capitals, a dash and three digits, like ABC-123.",
        },
    )
    existing_contact(org, first_name="Ada", last_name="Lovelace", email="ada@example.com")
    existing_contact(org, first_name="Grace", last_name="Hopper", email="grace@example.com")
    content = rows_csv(
        ["First Name", "Last Name", "Email", "Phone", "Consent Date", "Member code"],
        [
            ["Alan", "Turing", "alan@example.com", "+44 20 7946 0000", "2024-05-01", "ABC-123"],
            ["Ada", "King", "ada@example.com", "", "", ""],  # changes the last name
            ["Grace", "Hopper", "grace@example.com", "", "", ""],  # changes nothing
            ["Bad", "Email", "not-an-email", "", "", ""],
            ["Bad", "Date", "date@example.com", "", "31/31/2020", ""],
            ["Bad", "Phone", "phone@example.com", "12", "", ""],
            ["Bad", "Code", "code@example.com", "", "", "abc"],
            ["Alan", "Again", "ALAN@example.com", "", "", ""],
        ],
    )
    job = map_job(upload(owner, content), owner)
    assert job.mapping["Member code"] == "custom.member_code"

    preview = services.import_preview(job)

    # Rows 5 to 8 are created without their bad cell (the phone kept as typed); each is
    # still reported, as a warning. Only the duplicate is an error.
    assert (preview["created"], preview["updated"], preview["skipped"], preview["errors"]) == (
        5,
        1,
        1,
        1,
    )
    assert preview["warnings"] == 4
    assert preview["warning_counts"] == {
        "email_left_out": 1,
        "value_left_out": 2,
        "phone_as_typed": 1,
    }
    assert preview["estimated"] is False
    by_row = {row["row"]: row for row in preview["rows"]}
    assert [by_row[n]["action"] for n in range(2, 10)] == [
        "create",
        "update",
        "skip",
        "create",
        "create",
        "create",
        "create",
        "error",
    ]
    assert [w["column"] for w in by_row[5]["warnings"]] == ["Email"]
    assert "not-an-email" in by_row[5]["warnings"][0]["message"]
    ((date,),) = [by_row[6]["warnings"]]
    assert (date["column"], date["value"]) == ("Consent Date", "31/31/2020")
    assert date["message"].endswith("Left out.") and by_row[6]["problem"] == ""
    assert by_row[6]["values"]["email"] == "date@example.com"
    assert by_row[7]["warnings"][0]["kind"] == "phone_as_typed"
    assert by_row[7]["values"]["phone"] == "12"
    assert "Use three capitals, a dash and three digits" in by_row[8]["warnings"][0]["message"]
    assert "Duplicate inside the file" in by_row[9]["problem"] and "row 2" in by_row[9]["problem"]
    assert by_row[2]["values"]["phone"] == "+442079460000"
    # A preview is a dry run: nothing was written.
    assert Contact.objects.for_org(org).count() == 2
    assert not ImportRowError.objects.filter(job=job).exists()
    assert Contact.objects.get(email="ada@example.com").last_name == "Lovelace"


def test_preview_of_a_big_file_is_an_estimate_from_its_first_rows(org, owner, monkeypatch):
    monkeypatch.setattr(import_wizard, "PREVIEW_ROWS", 50)
    content = rows_csv(["Email"], [[f"p{i}@example.com"] for i in range(80)])
    job = map_job(upload(owner, content), owner)

    preview = services.import_preview(job)

    assert preview["estimated"] is True
    assert preview["created"] == 50
    assert preview["counted_rows"] == 50


# Policies ----------------------------------------------------------------------------------

POLICY_FILE = rows_csv(
    ["Email", "Job Title"],
    [["known@example.com", "CTO"], ["new@example.com", "Engineer"]],
)


@pytest.mark.parametrize(
    ("policy", "created", "updated", "skipped", "known_title", "new_exists"),
    [
        ("upsert", 1, 1, 0, "CTO", True),
        ("create", 1, 0, 1, "Founder", True),
        ("update", 0, 1, 1, "CTO", False),
    ],
)
def test_update_policy_decides_between_creating_and_updating(
    org, owner, policy, created, updated, skipped, known_title, new_exists
):
    existing_contact(org, email="known@example.com", job_title="Founder")

    job = import_file(owner, POLICY_FILE, policy=policy)

    assert job.status == ImportJob.Status.DONE, job.error
    assert (job.created_count, job.updated_count, job.skipped_count) == (created, updated, skipped)
    assert Contact.objects.get(email="known@example.com").job_title == known_title
    assert Contact.objects.filter(org=org, email="new@example.com").exists() is new_exists
    assert Contact.objects.filter(org=org, email="known@example.com").count() == 1


def test_matching_falls_back_to_phone_when_the_row_has_no_email(org, owner):
    known = existing_contact(org, first_name="Kim", phone="+14155550100")

    job = import_file(
        owner, rows_csv(["Name", "Phone", "City"], [["Kim", "+1 415 555 0100", "Oslo"]])
    )

    assert (job.created_count, job.updated_count) == (0, 1)
    known.refresh_from_db()
    assert known.city == "Oslo"


def test_a_member_limited_to_own_contacts_cannot_change_others_through_a_file(org, owner, members):
    rep = members["team"]  # contacts scope "own"
    theirs = existing_contact(org, email="theirs@example.com", job_title="CFO", owner=owner.user)
    mine = existing_contact(org, email="mine@example.com", job_title="Intern", owner=rep.user)
    content = rows_csv(
        ["Email", "Job Title"],
        [["theirs@example.com", "Hacked"], ["mine@example.com", "Analyst"], ["n@example.com", ""]],
    )

    job = import_file(rep, content)

    assert (job.created_count, job.updated_count, job.error_count) == (1, 1, 1), job.error
    theirs.refresh_from_db()
    mine.refresh_from_db()
    assert theirs.job_title == "CFO"
    assert mine.job_title == "Analyst"
    error = ImportRowError.objects.get(job=job)
    assert error.row_number == 2
    assert "belongs to someone your role may not change" in error.message


def test_blank_cells_keep_existing_values_unless_told_to_overwrite(org, owner):
    existing_contact(org, email="keep@example.com", job_title="CTO", city="Berlin")
    existing_contact(org, email="wipe@example.com", job_title="CTO", city="Berlin")
    header = ["Email", "Job Title", "City"]

    import_file(owner, rows_csv(header, [["keep@example.com", "", "Paris"]]), blanks="keep")
    import_file(owner, rows_csv(header, [["wipe@example.com", "", "Paris"]]), blanks="overwrite")

    kept = Contact.objects.get(email="keep@example.com")
    wiped = Contact.objects.get(email="wipe@example.com")
    assert (kept.job_title, kept.city) == ("CTO", "Paris")
    assert (wiped.job_title, wiped.city) == ("", "Paris")


# What lands -------------------------------------------------------------------------------


def test_multi_value_cells_are_split_into_emails_and_tags(org, owner):
    content = rows_csv(
        ["Name", "Email", "Tags"],
        [["Lin Wu", "lin@work.example; lin@home.example", "VIP;Newsletter"]],
    )

    job = import_file(owner, content)

    assert job.created_count == 1, job.error
    contact = Contact.objects.get(org=org)
    assert contact.email == "lin@work.example"
    assert contact.other_emails == ["lin@home.example"]
    assert sorted(contact.tags.values_list("name", flat=True)) == ["Newsletter", "VIP"]
    assert (contact.first_name, contact.last_name) == ("Lin", "Wu")


def test_companies_are_found_by_domain_then_by_name_or_created(org, owner):
    by_domain = Company.objects.create(org=org, name="Initech Inc", domain="initech.com")
    by_name = Company.objects.create(org=org, name="Globex")
    content = rows_csv(
        ["Email", "Company", "Website"],
        [
            ["a@initech.com", "Initech", "https://www.initech.com/about"],
            ["b@globex.example", "globex", ""],
            ["c@hooli.example", "Hooli", "hooli.xyz"],
            ["d@hooli.example", "Hooli", "hooli.xyz"],
        ],
    )

    job = import_file(owner, content)

    assert job.created_count == 4, job.error
    company_of = dict(Contact.objects.filter(org=org).values_list("email", "company_id"))
    assert company_of["a@initech.com"] == by_domain.pk
    assert company_of["b@globex.example"] == by_name.pk
    hooli = Company.objects.get(org=org, domain="hooli.xyz")
    assert hooli.name == "Hooli"
    assert company_of["c@hooli.example"] == company_of["d@hooli.example"] == hooli.pk
    assert Company.objects.filter(org=org).count() == 3


def test_new_contacts_land_in_the_stage_lifecycle_stage_with_imported_consent(org, owner):
    import_file(owner, rows_csv(["Email"], [["x@example.com"]]))

    contact = Contact.objects.get(org=org)
    assert contact.lifecycle_stage == Contact.Stage.STAGE
    assert contact.consent_type == Contact.ConsentType.IMPORTED


def test_defaults_fill_what_the_file_leaves_empty(org, owner, members):
    rep = members["team"]
    content = rows_csv(["Email", "Source"], [["a@example.com", ""], ["b@example.com", "Webinar"]])

    import_file(
        owner,
        content,
        owner=str(rep.user.public_id),
        source="Trade show",
        tags="Imported, Fair 2026",
        consent_status="pending",
    )

    contacts = {c.email: c for c in Contact.objects.filter(org=org)}
    assert contacts["a@example.com"].source == "Trade show"
    assert contacts["b@example.com"].source == "Webinar"
    assert {c.owner_id for c in contacts.values()} == {rep.user_id}
    assert {c.consent_status for c in contacts.values()} == {"pending"}
    assert sorted(contacts["a@example.com"].tags.values_list("name", flat=True)) == [
        "Fair 2026",
        "Imported",
    ]


def test_timeline_says_imported_from_the_file_and_each_record_is_audited(org, owner, client_as):
    old = existing_contact(org, email="old@example.com", job_title="Intern")
    content = rows_csv(["Email", "Job Title"], [["old@example.com", "CEO"], ["n@example.com", ""]])

    job = import_file(owner, content, name="crm-export.csv")

    assert (job.created_count, job.updated_count) == (1, 1)
    new = Contact.objects.get(org=org, email="n@example.com")
    # The updated contact gets a timeline row; the created one knows its import.
    (entry,) = Activity.objects.filter(org=org, type="imported")
    assert (entry.contact_id, entry.subject) == (old.id, "Imported from crm-export.csv")
    assert new.import_job_id == job.id and old.import_job_id is None
    for contact in (old, new):
        url = reverse("contacts:contact_detail", args=[contact.public_id]) + "?tab=timeline"
        page = client_as(owner).get(url).text
        assert page.count("Imported from crm-export.csv") == 1
        assert owner.user.display_name in page
    # The audit log gets one event per chunk, naming the rows; each record's before/after
    # is the import's own record of it.
    (event,) = AuditEvent.objects.filter(org=org, verb="import.rows_written")
    assert event.actor_user_id == owner.user_id
    assert (event.object_type, event.object_id) == ("importjob", str(job.public_id))
    assert event.object_repr == "crm-export.csv, rows 2–3"
    assert event.changes == {"created": 1, "updated": 1, "rows": "2–3"}
    updated = ImportRecord.objects.get(job=job, action="updated")
    assert (updated.contact_id, updated.changes) == (old.id, {"job_title": ["Intern", "CEO"]})
    (part,) = ImportPart.objects.filter(job=job)
    assert (part.created_ids, part.created_rows) == ([new.id], [3])


def test_a_chunked_import_audits_each_chunk_and_the_log_links_to_its_changes(org, owner, client_as):
    content = rows_csv(["Email"], [[f"c{i}@example.com"] for i in range(25)])
    upload_job = map_job(upload(owner, content), owner)
    services.import_start(job=upload_job, actor=Actor.for_user(owner.user), policy=Policy(owner))
    services.run_import(org_id=org.pk, job_id=upload_job.pk, chunk_rows=10)

    events = AuditEvent.objects.filter(org=org, verb="import.rows_written").order_by("id")
    assert [e.changes["rows"] for e in events] == ["2–11", "12–21", "22–26"]
    assert sum(e.changes["created"] for e in events) == 25
    page = client_as(owner).get(reverse("crm:audit_log"))
    assert reverse("contacts:import_detail", args=[upload_job.public_id]) in page.text


# The error report ---------------------------------------------------------------------------


def test_error_report_has_the_header_an_error_column_and_neutralized_formulas(
    org, owner, client_as
):
    content = rows_csv(
        ["First Name", "Email"],
        [
            ["Ok", "ok@example.com"],
            ['=HYPERLINK("http://evil.example")', "broken-email"],
            ["@SUM(A1)", ""],
        ],
    )
    job = import_file(owner, content)
    # Every row has a name, so each is imported; the broken email is a warning.
    assert (job.error_count, job.warning_count) == (0, 1), job.error

    response = client_as(owner).get(reverse("contacts:import_errors", args=[job.public_id]))

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["First Name", "Email", "Error", "Warnings"]
    assert len(rows) == 2
    assert rows[1][0] == '\'=HYPERLINK("http://evil.example")'
    assert rows[1][1] == "broken-email"
    assert rows[1][2] == ""
    assert rows[1][3].startswith("Email: “broken-email” is not a valid email address.")


def test_a_fixed_error_report_uploads_again_with_the_original_values(org, owner, client_as):
    # Nothing identifies the person once the email is left out: the row is refused.
    content = rows_csv(["Job Title", "Email"], [["=cmd", "broken"]])
    job = import_file(owner, content)
    assert (job.error_count, job.created_count) == (1, 0)
    report = b"".join(
        client_as(owner)
        .get(reverse("contacts:import_errors", args=[job.public_id]))
        .streaming_content
    ).decode("utf-8-sig")
    fixed = report.replace("broken", "fixed@example.com")

    second = upload(owner, fixed.encode("utf-8-sig"), name="people-errors.csv")
    assert second.headers == ["Job Title", "Email", "Error", "Warnings"]
    mapping = {**second.mapping, "Error": "__skip__", "Warnings": "__skip__"}
    second = run(map_job(second, owner, mapping=mapping), owner)

    assert second.created_count == 1, second.error
    assert Contact.objects.get(org=org, email="fixed@example.com").job_title == "=cmd"


# Undo -------------------------------------------------------------------------------------


def undo(job, membership) -> ImportJob:
    """Start the undo as the page does, then run the task's work in this process."""
    services.import_undo(job=job, actor=Actor.for_user(membership.user), policy=Policy(membership))
    services.run_undo(org_id=job.org_id, job_id=job.pk)
    job.refresh_from_db()
    return job


def edit(membership, contact, **data) -> None:
    contact_services.contact_update(
        contact=contact, actor=Actor.for_user(membership.user), data=data, policy=Policy(membership)
    )


def undo_scenario(owner) -> ImportJob:
    """An import in parts of ten rows that updated five existing contacts and created twenty;
    afterwards one updated and one created contact were edited by hand."""
    for i in range(5):
        existing_contact(owner.org, email=f"old{i}@example.com", job_title="Before")
    rows = [[f"old{i}@example.com", "After"] for i in range(5)]
    rows += [[f"new{i}@example.com", "Dev"] for i in range(20)]
    job = import_file(owner, rows_csv(["Email", "Job Title"], rows), chunk_rows=10)
    assert (job.created_count, job.updated_count) == (20, 5)
    assert job.parts.count() > 1
    edit(owner, Contact.objects.get(org=owner.org, email="old1@example.com"), job_title="Mine")
    edit(owner, Contact.objects.get(org=owner.org, email="new7@example.com"), job_title="Mine")
    return job


def assert_scenario_undone(job) -> None:
    """What undoing `undo_scenario` must leave, whatever the batches: every count once."""
    org = job.org
    edited = sorted(
        Contact.objects.filter(
            org=org, email__in=["old1@example.com", "new7@example.com"]
        ).values_list("id", flat=True)
    )
    assert job.status == ImportJob.Status.UNDONE
    assert job.undone_at is not None
    assert job.undo_result == {
        "deleted": 19,
        "restored": 4,
        "kept_edited": 2,
        "edited_contact_ids": edited,
    }
    assert (job.undo_done, job.undo_total) == (25, 25)
    titles = dict(Contact.objects.filter(org=org).values_list("email", "job_title"))
    assert titles == {
        **{f"old{i}@example.com": "Before" for i in (0, 2, 3, 4)},
        "old1@example.com": "Mine",
        "new7@example.com": "Mine",
    }
    deletions = AuditEvent.objects.filter(
        org=org, verb="contact.deleted", changes__undo_import="people.csv"
    )
    assert deletions.count() == deletions.values("object_id").distinct().count() == 19
    restores = AuditEvent.objects.filter(
        org=org, verb="contact.updated", changes__undo_import="people.csv"
    )
    assert restores.count() == 4
    assert AuditEvent.objects.filter(org=org, verb="import.undone").count() == 1
    assert OutboxEvent.objects.filter(org=org, event_type="contacts.import_undone").count() == 1


def test_undo_deletes_what_it_created_and_restores_what_it_changed(org, owner):
    kept = existing_contact(org, email="known@example.com", job_title="Founder", city="Rome")
    content = rows_csv(
        ["Email", "Job Title", "City", "Tags"],
        [["known@example.com", "CEO", "", ""], ["new@example.com", "Dev", "Oslo", "x"]],
    )
    job = import_file(owner, content)
    assert (job.created_count, job.updated_count) == (1, 1)

    started = services.import_undo(job=job, actor=Actor.for_user(owner.user), policy=Policy(owner))

    # Starting only hands the work to the background job.
    assert started.status == ImportJob.Status.UNDOING
    assert Contact.objects.filter(org=org, email="new@example.com").exists()
    assert AuditEvent.objects.filter(org=org, verb="import.undo_started").exists()

    services.run_undo(org_id=org.pk, job_id=job.pk)

    job.refresh_from_db()
    assert job.status == ImportJob.Status.UNDONE
    assert job.undo_result == {
        "deleted": 1,
        "restored": 1,
        "kept_edited": 0,
        "edited_contact_ids": [],
    }
    assert not Contact.objects.filter(org=org, email="new@example.com").exists()
    kept.refresh_from_db()
    assert (kept.job_title, kept.city) == ("Founder", "Rome")
    assert AuditEvent.objects.filter(org=org, verb="import.undone").exists()
    event = OutboxEvent.objects.get(org=org, event_type="contacts.import_undone")
    assert event.payload["import"] == str(job.public_id)
    assert event.payload["deleted"] == 1


def test_undo_keeps_and_lists_contacts_edited_since_the_import(org, owner):
    content = rows_csv(["Email", "Job Title"], [["a@example.com", "Dev"], ["b@example.com", "Ops"]])
    job = import_file(owner, content)
    edited = Contact.objects.get(org=org, email="a@example.com")
    edit(owner, edited, job_title="Lead Dev")

    result = undo(job, owner).undo_result

    assert result["deleted"] == 1
    assert result["kept_edited"] == 1
    assert result["edited_contact_ids"] == [edited.pk]
    edited.refresh_from_db()
    assert edited.job_title == "Lead Dev"
    assert not Contact.objects.filter(org=org, email="b@example.com").exists()


def test_lead_scores_of_everything_the_import_wrote_are_recomputed_in_batches(
    org, owner, monkeypatch
):
    from tests.factories import ScoringRuleFactory

    ScoringRuleFactory(
        org=org,
        name="VP",
        condition={"field": "job_title", "op": "contains", "value": "VP"},
        points=20,
    )
    existing_contact(org, email="known@example.com", job_title="Founder")
    untouched = existing_contact(org, email="other@example.com", job_title="VP Sales")
    Contact.objects.filter(pk=untouched.pk).update(lead_score=0)  # as if scored before the rule
    monkeypatch.setattr(import_run, "RESCORE_BATCH", 2)
    rows = [["known@example.com", "VP Marketing"]] + [
        [f"p{i}@example.com", "VP Ops" if i % 2 else "Engineer"] for i in range(5)
    ]
    job = map_job(upload(owner, rows_csv(["Email", "Job Title"], rows)), owner)
    real_rescore, batches = scoring.rescore_contacts, []

    def rescore_noting_the_heartbeat(org, ids):
        batches.append((len(ids), ImportJob.objects.get(pk=job.pk).heartbeat_at))
        return real_rescore(org, ids=ids)

    monkeypatch.setattr(scoring, "rescore_contacts", rescore_noting_the_heartbeat)

    run(job, owner)

    scores = dict(Contact.objects.filter(org=org).values_list("email", "lead_score"))
    assert scores == {
        "known@example.com": 20,
        "other@example.com": 0,  # not in the file: left alone
        **{f"p{i}@example.com": 20 if i % 2 else 0 for i in range(5)},
    }
    # Six contacts in batches of two; the heartbeat moves on after each batch.
    assert [size for size, _ in batches] == [2, 2, 2]
    beats = [beat for _, beat in batches]
    assert beats == sorted(set(beats))


def test_a_row_that_only_adds_tags_updates_the_contact_and_undo_takes_them_off(org, owner):
    known = existing_contact(org, email="known@example.com", job_title="Founder")
    edit(owner, known, tags="Existing")
    job = import_file(owner, rows_csv(["Email", "Tags"], [["known@example.com", "VIP;existing"]]))

    assert (job.created_count, job.updated_count, job.skipped_count) == (0, 1, 0)
    assert sorted(known.tags.values_list("name", flat=True)) == ["Existing", "VIP"]
    record = ImportRecord.objects.get(job=job)
    assert record.changes == {"tags": [None, ["VIP"]]}

    undo(job, owner)

    assert list(known.tags.values_list("name", flat=True)) == ["Existing"]


def test_undo_needs_the_right_to_delete_contacts(org, owner, members):
    job = import_file(owner, rows_csv(["Email"], [["a@example.com"]]))
    team = members["team"]

    with pytest.raises(PermissionDenied) as refused:
        services.import_undo(job=job, actor=Actor.for_user(team.user), policy=Policy(team))

    assert str(refused.value) == "Undoing an import deletes contacts; your role may not."
    job.refresh_from_db()
    assert job.status == ImportJob.Status.DONE
    assert Contact.objects.filter(org=org, email="a@example.com").exists()


def test_starting_an_undo_twice_starts_one_undo(org, owner, django_capture_on_commit_callbacks):
    job = import_file(owner, rows_csv(["Email"], [["a@example.com"]]))
    actor, policy = Actor.for_user(owner.user), Policy(owner)

    with django_capture_on_commit_callbacks() as callbacks:
        services.import_undo(job=job, actor=actor, policy=policy)
        with pytest.raises(ValidationError) as again:
            services.import_undo(job=job, actor=actor, policy=policy)

    assert again.value.messages == ["This import is already being undone."]
    assert len(callbacks) == 1  # one task is sent, when the first start commits
    assert AuditEvent.objects.filter(org=org, verb="import.undo_started").count() == 1
    job.refresh_from_db()
    assert (job.status, job.status_before_undo) == ("undoing", "done")
    assert (job.undo_by, job.undo_by_label) == (owner.user, owner.user.email)

    services.run_undo(org_id=org.pk, job_id=job.pk)

    # A redelivered task finds nothing left to do, and the finished undo can't start again.
    assert services.run_undo(org_id=org.pk, job_id=job.pk) is None
    with pytest.raises(ValidationError) as after:
        services.import_undo(job=job, actor=actor, policy=policy)
    assert after.value.messages == ["This import was already undone."]
    assert AuditEvent.objects.filter(org=org, verb="import.undone").count() == 1


def test_an_unfinished_import_cannot_be_undone(org, owner):
    job = map_job(upload(owner, rows_csv(["Email"], [["a@example.com"]])), owner)

    with pytest.raises(ValidationError) as refused:
        services.import_undo(job=job, actor=Actor.for_user(owner.user), policy=Policy(owner))

    assert refused.value.messages == ["Only a finished import can be undone."]
    job.refresh_from_db()
    assert job.status == ImportJob.Status.MAPPED


@pytest.mark.parametrize("batch", [2000, 3, 1])
def test_an_undo_in_batches_gives_the_same_result_as_in_one(org, owner, monkeypatch, batch):
    job = undo_scenario(owner)
    monkeypatch.setattr(import_undo, "UNDO_BATCH", batch)
    steps = []
    real_step = import_undo._undo_step
    monkeypatch.setattr(import_undo, "_undo_step", lambda *a: steps.append(1) or real_step(*a))

    job = undo(job, owner)

    assert_scenario_undone(job)
    # A first step counts, then each batch of each phase, and one empty look per phase.
    assert len(steps) == 1 + -(-5 // batch) + 1 + -(-20 // batch) + 1


def test_an_undo_whose_worker_died_resumes_after_its_last_batch_without_duplicates(
    org, owner, monkeypatch
):
    job = undo_scenario(owner)
    monkeypatch.setattr(import_undo, "UNDO_BATCH", 4)
    real_delete = import_undo._delete_created
    batches = []

    def dies_in_the_third_deleting_batch(job, ids, actor):
        batches.append(ids)
        deleted = real_delete(job, ids, actor)
        if len(batches) == 3:
            raise WorkerKilled  # after its deletes, before its batch commits
        return deleted

    monkeypatch.setattr(import_undo, "_delete_created", dies_in_the_third_deleting_batch)
    services.import_undo(job=job, actor=Actor.for_user(owner.user), policy=Policy(owner))
    with pytest.raises(WorkerKilled):
        services.run_undo(org_id=org.pk, job_id=job.pk)
    job.refresh_from_db()
    # Five updated contacts and two batches of four created ones were committed; the third
    # batch's deletes went with the worker.
    assert (job.status, job.undo_phase, job.undo_done) == ("undoing", "delete", 13)
    assert job.undo_result["restored"] == 4
    deleted = job.undo_result["deleted"]
    assert deleted + job.undo_result["kept_edited"] == 1 + 8  # old1 kept, eight handled
    assert Contact.objects.filter(org=org).count() == 25 - deleted
    # Until its heartbeat goes stale, the undo still belongs to the (dead) worker.
    assert services.run_undo(org_id=org.pk, job_id=job.pk) is None
    stale = timezone.now() - dt.timedelta(seconds=jobs.STALE_AFTER_SECONDS + 5)
    ImportJob.objects.filter(pk=job.pk).update(heartbeat_at=stale)
    monkeypatch.setattr(import_undo, "_delete_created", real_delete)

    resumed = services.run_undo(org_id=org.pk, job_id=job.pk)

    assert resumed is not None
    job.refresh_from_db()
    assert_scenario_undone(job)


@pytest.mark.parametrize(
    ("failing", "handled"),
    # Batches of four: five updated contacts, then twenty created ones.
    [("_restore_updated", 4), ("_delete_created", 5 + 4)],
)
def test_an_undo_that_fails_gives_the_import_back_and_says_what_stays_undone(
    org, owner, monkeypatch, django_capture_on_commit_callbacks, failing, handled
):
    job = undo_scenario(owner)
    assert selectors.undo_counts(job) == {"delete": 19, "restore": 4, "keep": 2}
    monkeypatch.setattr(import_undo, "UNDO_BATCH", 4)
    real = getattr(import_undo, failing)
    batches = []

    def fails_in_the_second_batch(*args):
        batches.append(args)
        if len(batches) == 2:
            raise RuntimeError("the disk is full")
        return real(*args)

    monkeypatch.setattr(import_undo, failing, fails_in_the_second_batch)
    services.import_undo(job=job, actor=Actor.for_user(owner.user), policy=Policy(owner))

    with django_capture_on_commit_callbacks(execute=True):
        services.run_undo(org_id=org.pk, job_id=job.pk)

    job.refresh_from_db()
    assert (job.status, job.undone_at) == (ImportJob.Status.DONE, None)
    failure = job.undo_result["failure"]
    assert failure.startswith("The undo stopped: the disk is full.")
    assert "already deleted or restored stay that way" in failure
    done = job.undo_result
    assert job.undo_done == handled  # up to the batch that failed, which left nothing
    assert done["deleted"] + done["restored"] + done["kept_edited"] == handled
    assert Contact.objects.filter(org=org).count() == 25 - done["deleted"]
    note = Notification.objects.get(org=org, user=owner.user, level="error")
    assert note.title == "Undo of people.csv stopped"
    assert note.body.startswith(failure)
    assert [m.to for m in mail.outbox] == [[owner.user.email]]
    assert AuditEvent.objects.filter(org=org, verb="import.undo_failed").count() == 1
    # Asked again, the confirm page counts only what the stopped undo left.
    assert selectors.undo_counts(job) == {
        "delete": 19 - done["deleted"],
        "restore": 4 - done["restored"],
        "keep": 2 - done["kept_edited"],
    }

    # Undoing again carries on where it stopped, counting nothing twice.
    monkeypatch.setattr(import_undo, failing, real)
    job = undo(job, owner)

    assert_scenario_undone(job)


def test_a_lost_database_leaves_the_undo_to_the_retried_task(org, owner, monkeypatch):
    job = import_file(owner, rows_csv(["Email"], [["a@example.com"], ["b@example.com"]]))
    services.import_undo(job=job, actor=Actor.for_user(owner.user), policy=Policy(owner))
    real_delete = import_undo._delete_created

    def connection_lost(*args):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(import_undo, "_delete_created", connection_lost)
    with pytest.raises(OperationalError):
        services.run_undo(org_id=org.pk, job_id=job.pk)
    job.refresh_from_db()
    # Still undoing, and free for the retry to claim at once.
    assert (job.status, job.heartbeat_at) == (ImportJob.Status.UNDOING, None)
    assert Contact.objects.filter(org=org).count() == 2

    monkeypatch.setattr(import_undo, "_delete_created", real_delete)
    assert services.run_undo(org_id=org.pk, job_id=job.pk) is not None

    job.refresh_from_db()
    assert (job.status, job.undo_result["deleted"]) == (ImportJob.Status.UNDONE, 2)
    assert not Contact.objects.filter(org=org).exists()


def test_finishing_an_undo_notifies_and_audits_as_the_member_who_asked(
    org, owner, members, django_capture_on_commit_callbacks
):
    admin = members["admin"]
    job = import_file(owner, rows_csv(["Email"], [["a@example.com"], ["b@example.com"]]))
    services.import_undo(
        job=job, actor=Actor.for_user(admin.user, ip="203.0.113.9"), policy=Policy(admin)
    )

    with django_capture_on_commit_callbacks(execute=True):
        services.run_undo(org_id=org.pk, job_id=job.pk)

    note = Notification.objects.get(org=org, user=admin.user)
    assert note.title == "Undo of people.csv finished"
    assert note.body == "2 contacts deleted, 0 restored to their values before the import."
    assert (note.level, note.url) == (
        "success",
        reverse("contacts:import_detail", args=[job.public_id]),
    )
    assert [m.to for m in mail.outbox] == [[admin.user.email]]
    who = set(
        AuditEvent.objects.filter(
            org=org, verb__in=["contact.deleted", "import.undone"]
        ).values_list("actor_user", "actor_label", "ip_address")
    )
    assert who == {(admin.user.id, admin.user.email, "203.0.113.9")}


def in_a_real_worker(job, start, *, until) -> None:
    """Run `start` outside a transaction, as a request does (its task is sent when it
    commits), and give a real Celery worker up to 30 s to bring the job to a status in
    `until`."""
    celery_app.control.purge()  # tasks left on this broker by earlier runs must not interfere
    with start_worker(celery_app, perform_ping_check=False, shutdown_timeout=30):
        start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            job.refresh_from_db()
            if job.status in until:
                break
            time.sleep(0.2)


@pytest.mark.slow
def test_a_real_celery_worker_runs_a_started_undo(transactional_db):
    org = OrganizationFactory()
    owner = member(org, "owner")
    job = import_file(owner, rows_csv(["Email"], [["u1@example.com"], ["u2@example.com"]]))

    in_a_real_worker(
        job,
        lambda: services.import_undo(
            job=job, actor=Actor.for_user(owner.user), policy=Policy(owner)
        ),
        until=(ImportJob.Status.UNDONE, ImportJob.Status.DONE),
    )

    assert job.status == ImportJob.Status.UNDONE, job.undo_result
    assert job.undo_result["deleted"] == 2
    assert not Contact.objects.filter(org=org).exists()


# Workers: resuming, claiming, a real Celery worker ---------------------------------------------


class WorkerKilled(BaseException):
    """Stands for the worker process dying mid-job: no code of the import catches it, so the
    job is left as a dead worker leaves it (running, with the heartbeat of its last chunk)."""


class DiesAfterTwoChunks(Importer):
    chunks_written = 0

    def merge(self, part, *, dry_run):
        if not dry_run:
            if DiesAfterTwoChunks.chunks_written == 2:
                raise WorkerKilled
            DiesAfterTwoChunks.chunks_written += 1
        return super().merge(part, dry_run=dry_run)


def started_and_killed_after_two_chunks(membership, content, monkeypatch) -> ImportJob:
    """Start an import of `content` in chunks of ten whose worker dies after two chunks
    committed; the job is left as the dead worker leaves it, and the Importer that dies
    stays in place."""
    job = map_job(upload(membership, content), membership)
    services.import_start(job=job, actor=Actor.for_user(membership.user), policy=Policy(membership))
    monkeypatch.setattr(DiesAfterTwoChunks, "chunks_written", 0)
    monkeypatch.setattr(import_run, "Importer", DiesAfterTwoChunks)
    with pytest.raises(WorkerKilled):
        services.run_import(org_id=job.org_id, job_id=job.pk, chunk_rows=10)
    job.refresh_from_db()
    return job


def test_a_job_whose_worker_died_resumes_after_its_last_chunk_without_duplicates(
    org, owner, monkeypatch
):
    content = rows_csv(["Email", "City"], [[f"p{i}@example.com", "Lyon"] for i in range(25)])
    job = started_and_killed_after_two_chunks(owner, content, monkeypatch)
    assert (job.status, job.progress, job.created_count) == (ImportJob.Status.RUNNING, 20, 20)
    assert Contact.objects.filter(org=org).count() == 20
    # Until its heartbeat goes stale, the job still belongs to the (dead) worker.
    assert services.run_import(org_id=org.pk, job_id=job.pk, chunk_rows=10) is None
    stale = timezone.now() - dt.timedelta(seconds=jobs.STALE_AFTER_SECONDS + 5)
    ImportJob.objects.filter(pk=job.pk).update(heartbeat_at=stale)
    monkeypatch.setattr(import_run, "Importer", Importer)

    resumed = services.run_import(org_id=org.pk, job_id=job.pk, chunk_rows=10)

    assert resumed is not None
    job.refresh_from_db()
    assert job.status == ImportJob.Status.DONE, job.error
    assert (job.created_count, job.error_count, job.progress, job.total) == (25, 0, 25, 25)
    emails = list(Contact.objects.filter(org=org).values_list("email", flat=True))
    assert len(emails) == 25
    assert len(set(emails)) == 25
    # Every contact is listed once, on the part that created it, and points at the job.
    assert sorted(created_by(job)) == sorted(
        Contact.objects.filter(org=org).values_list("id", flat=True)
    )
    assert ImportPart.objects.filter(job=job).count() == 3
    assert set(Contact.objects.filter(org=org).values_list("import_job", flat=True)) == {job.id}


@pytest.mark.parametrize("daemonic", [False, True], ids=["command", "celery-prefork-child"])
def test_a_multi_chunk_import_converts_in_worker_processes(org, owner, monkeypatch, daemonic):
    # Celery's prefork pool runs tasks in daemonic processes, which multiprocessing would
    # not let start children.
    process = multiprocessing.current_process()
    monkeypatch.setitem(process._config, "daemon", daemonic)
    paths = []
    for name in ("_converted_in_processes", "_converted_in_thread"):
        real = getattr(Importer, name)
        monkeypatch.setattr(
            Importer, name, lambda self, *a, _r=real, _n=name: paths.append(_n) or _r(self, *a)
        )
    rows = [
        [f"p{i}@example.com", f"+49 30 1234 56{i:02d}", "bad" if i == 17 else ""] for i in range(25)
    ]
    contact_services.customfield_create(
        org=org,
        actor=Actor.system("test"),
        data={"label": "Score", "key": "score", "field_type": "number"},
    )
    job = import_file(
        owner,
        rows_csv(["Email", "Phone", "Score"], rows),
        chunk_rows=10,
        mapping={"Email": "email", "Phone": "phone", "Score": "custom.score"},
    )

    assert paths == ["_converted_in_processes"]
    assert process._config["daemon"] is daemonic
    # Row 19's bad score is left out and reported as a warning; the contact is imported.
    assert (job.status, job.created_count, job.error_count) == (ImportJob.Status.DONE, 25, 0)
    assert (job.warning_count, job.warning_counts) == (1, {"value_left_out": 1})
    noted = ImportRowError.objects.get(job=job)
    assert noted.is_warning and noted.row_number == 19
    assert noted.message.startswith("Score: “bad” is not a number.")
    assert Contact.objects.get(org=org, email="p17@example.com").custom == {}
    assert Contact.objects.get(org=org, email="p3@example.com").phone == "+4930123456" + "03"


def _dies(rows, lanes):
    os._exit(1)  # a converting worker killed mid-chunk (for memory, say)


def test_a_converting_worker_that_dies_fails_the_job_instead_of_hanging_it(org, owner, monkeypatch):
    from contacts.importing.engine import pipeline as engine

    monkeypatch.setattr(engine, "_convert_in_worker", _dies)
    monkeypatch.setattr(engine, "WORKER_TIMEOUT", 2)
    content = rows_csv(["Email"], [[f"d{i}@example.com"] for i in range(25)])

    job = import_file(owner, content, chunk_rows=10)

    assert job.status == ImportJob.Status.FAILED
    assert "A converting worker stopped answering within 2 s." in job.error
    assert not Contact.objects.filter(org=org).exists()


class _BrokerConnection:
    """Stands for a library object that cleans up after a fork, like kombu's connection pool."""


def _hangs_after_fork(connection):
    time.sleep(3600)  # as kombu's clean-up does when a pooled connection awaits a reply


def test_converting_workers_are_forked_without_other_libraries_after_fork_hooks(
    org, owner, monkeypatch
):
    from contacts.importing.engine import pipeline as engine

    monkeypatch.setattr(engine, "WORKER_TIMEOUT", 5)
    connection = _BrokerConnection()
    multiprocessing.util.register_after_fork(connection, _hangs_after_fork)
    content = rows_csv(["Email"], [[f"f{i}@example.com"] for i in range(25)])

    job = import_file(owner, content, chunk_rows=10)

    assert (job.status, job.created_count) == (ImportJob.Status.DONE, 25), job.error
    # This process keeps its hooks for whatever it forks next.
    registered = multiprocessing.util._afterfork_registry.values()
    assert any(obj is connection for obj in registered)


def test_a_single_chunk_import_converts_in_a_thread(org, owner, monkeypatch):
    monkeypatch.setattr(
        Importer, "_converted_in_processes", lambda *a: pytest.fail("no pool for one chunk")
    )
    job = import_file(owner, rows_csv(["Email"], [["one@example.com"]]))
    assert (job.status, job.created_count) == (ImportJob.Status.DONE, 1)


def test_claim_refuses_a_job_that_a_live_worker_holds(org, owner):
    job = map_job(upload(owner, rows_csv(["Email"], [["a@example.com"]])), owner)
    services.import_start(job=job, actor=Actor.for_user(owner.user), policy=Policy(owner))

    assert claim(job) is True
    assert claim(job) is False
    assert services.run_import(org_id=org.pk, job_id=job.pk) is None
    job.refresh_from_db()
    assert job.status == ImportJob.Status.RUNNING
    assert not Contact.objects.filter(org=org).exists()


def test_claim_takes_over_a_running_job_whose_heartbeat_went_stale(org, owner):
    job = map_job(upload(owner, rows_csv(["Email"], [["a@example.com"]])), owner)
    stale = timezone.now() - dt.timedelta(seconds=jobs.STALE_AFTER_SECONDS + 1)
    ImportJob.objects.filter(pk=job.pk).update(
        status="running", claimed_by="a-worker-that-died", heartbeat_at=stale
    )

    assert claim(job) is True
    assert claim(job) is False


def claim(job, kind: str = import_run.JOB_KIND) -> bool:
    """A worker's claim of the job (each call is a different worker)."""
    return jobs.claim(kind, job.org_id, job.pk, holder=f"worker-{uuid.uuid4()}") is not None


def went_quiet(job) -> None:
    stale = timezone.now() - dt.timedelta(seconds=jobs.STALE_AFTER_SECONDS + 5)
    ImportJob.objects.filter(pk=job.pk).update(heartbeat_at=stale)


def test_an_import_that_keeps_taking_its_worker_down_fails_instead_of_looping(org, owner):
    job = map_job(upload(owner, rows_csv(["Email"], [["a@example.com"]])), owner)
    services.import_start(job=job, actor=Actor.for_user(owner.user), policy=Policy(owner))
    assert claim(job) is True  # the first worker, which dies

    for _ in range(jobs.MAX_TAKEOVERS):  # each next one dies too
        went_quiet(job)
        assert claim(job) is True
    went_quiet(job)
    assert claim(job) is False
    assert claim(job) is False  # ended once, by one worker

    job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED
    assert job.error == (
        "The import stopped: its worker stopped answering 3 times in a row without finishing "
        "a chunk (a file that makes it run out of memory can do that)."
    )
    assert Notification.objects.filter(user=owner.user, title__endswith="failed").count() == 1


def test_a_committed_chunk_clears_the_takeovers(org, owner, monkeypatch):
    content = rows_csv(["Email"], [[f"p{i}@example.com"] for i in range(25)])
    job = started_and_killed_after_two_chunks(owner, content, monkeypatch)
    monkeypatch.setattr(import_run, "Importer", Importer)
    ImportJob.objects.filter(pk=job.pk).update(takeovers=jobs.MAX_TAKEOVERS - 1)
    went_quiet(job)

    services.run_import(org_id=org.pk, job_id=job.pk)

    job.refresh_from_db()
    assert (job.status, job.takeovers, job.created_count) == (ImportJob.Status.DONE, 0, 25)


def test_an_undo_that_keeps_taking_its_worker_down_stops_and_keeps_what_it_did(org, owner):
    job = import_file(owner, rows_csv(["Email"], [["a@example.com"], ["b@example.com"]]))
    services.import_undo(job=job, actor=Actor.for_user(owner.user), policy=Policy(owner))
    assert claim(job, import_undo.JOB_KIND) is True  # the first worker, which dies
    # A batch it committed before dying clears the count: only takeovers in a row count.
    job.refresh_from_db()
    import_undo._undo_step(job, org, import_undo._undo_actor(job))
    assert ImportJob.objects.get(pk=job.pk).takeovers == 0

    for _ in range(jobs.MAX_TAKEOVERS):
        went_quiet(job)
        assert claim(job, import_undo.JOB_KIND) is True
    went_quiet(job)
    assert claim(job, import_undo.JOB_KIND) is False

    job.refresh_from_db()
    assert job.status == ImportJob.Status.DONE  # given back, and can be undone again
    assert job.undo_result["failure"].startswith(
        "The undo stopped: its worker stopped answering 3 times in a row without finishing a batch"
    )
    assert AuditEvent.objects.filter(org=org, verb="import.undo_failed").count() == 1
    services.import_undo(job=job, actor=Actor.for_user(owner.user), policy=Policy(owner))
    job.refresh_from_db()
    assert (job.status, job.takeovers) == (ImportJob.Status.UNDOING, 0)


def sent_tasks(callbacks) -> list[tuple[str, int, int]]:
    """(job kind, org id, job id) of each job the captured on-commit callbacks send."""
    return sorted(c.args for c in callbacks)


def test_the_sweeper_sends_the_task_again_only_for_stalled_imports_and_undos(
    org, other_org, owner, django_capture_on_commit_callbacks
):
    now = timezone.now()
    ago = lambda seconds: now - dt.timedelta(seconds=seconds)  # noqa: E731
    other_owner = member(other_org, "owner")
    undo = import_undo.JOB_KIND
    states = {
        "queued just now": (owner, dict(status="queued", sent_at=ago(60))),
        "queued, never taken": (owner, dict(status="queued", sent_at=ago(660))),
        "running": (
            owner,
            dict(status="running", claimed_by="w", heartbeat_at=ago(5), sent_at=ago(900)),
        ),
        "running, worker died": (
            other_owner,
            dict(status="running", claimed_by="w", heartbeat_at=ago(300), sent_at=ago(900)),
        ),
        "running, worker died, just sent again": (
            owner,
            dict(status="running", claimed_by="w", heartbeat_at=ago(300), sent_at=ago(30)),
        ),
        "undo never taken": (owner, dict(status="undoing", kind=undo, sent_at=ago(660))),
        "undo just started": (owner, dict(status="undoing", kind=undo, sent_at=ago(10))),
        "undo, worker died": (
            owner,
            dict(status="undoing", kind=undo, claimed_by="w", heartbeat_at=ago(300)),
        ),
        "done": (owner, dict(status="done", heartbeat_at=ago(3000), sent_at=ago(3000))),
    }
    stalled_jobs = {}
    for name, (membership, fields) in states.items():
        stalled_jobs[name] = upload(membership, rows_csv(["Email"], [["a@example.com"]]))
        ImportJob.objects.filter(pk=stalled_jobs[name].pk).update(**fields)

    with django_capture_on_commit_callbacks() as callbacks:
        assert jobs.sweep_stalled() == 4

    run = import_run.JOB_KIND
    assert sent_tasks(callbacks) == sorted(
        [
            (run, org.pk, stalled_jobs["queued, never taken"].pk),
            (run, other_org.pk, stalled_jobs["running, worker died"].pk),
            (undo, org.pk, stalled_jobs["undo never taken"].pk),
            (undo, org.pk, stalled_jobs["undo, worker died"].pk),
        ]
    )
    # Each stalled job gets one extra message at a time, not one per sweep.
    with django_capture_on_commit_callbacks() as again:
        assert jobs.sweep_stalled() == 0
    assert again == []


def test_the_sweeper_finishes_an_import_whose_worker_died(
    org, owner, monkeypatch, django_capture_on_commit_callbacks
):
    content = rows_csv(["Email"], [[f"p{i}@example.com"] for i in range(25)])
    job = started_and_killed_after_two_chunks(owner, content, monkeypatch)
    monkeypatch.setattr(import_run, "Importer", Importer)
    # Its message is gone with the worker; after a while its heartbeat is stale.
    stale = timezone.now() - dt.timedelta(seconds=jobs.STALE_AFTER_SECONDS + 5)
    ImportJob.objects.filter(pk=job.pk).update(heartbeat_at=stale, sent_at=stale)
    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)

    with django_capture_on_commit_callbacks(execute=True):
        assert jobs.sweep_stalled() == 1

    job.refresh_from_db()
    assert job.status == ImportJob.Status.DONE, job.error
    assert (job.created_count, job.progress) == (25, 25)
    assert Contact.objects.filter(org=org).count() == 25
    assert Notification.objects.filter(user=owner.user, title__contains="finished").count() == 1


@pytest.mark.slow
def test_a_real_celery_worker_runs_a_started_import(transactional_db):
    org = OrganizationFactory()
    owner = member(org, "owner")
    job = map_job(
        upload(owner, rows_csv(["Email"], [["w1@example.com"], ["w2@example.com"]])), owner
    )

    in_a_real_worker(
        job,
        lambda: services.import_start(
            job=job, actor=Actor.for_user(owner.user), policy=Policy(owner)
        ),
        until=(ImportJob.Status.DONE, ImportJob.Status.FAILED),
    )

    assert job.status == ImportJob.Status.DONE, job.error
    assert job.created_count == 2
    assert Contact.objects.filter(org=org).count() == 2


# Parallel merge lanes (real commits, so each lane's connection sees the others' work) --------


def lanes_file(org):
    """45 rows in five chunks of ten: five existing contacts updated, a company without a
    domain and one with, and a tag on every row; row 30 repeats row 14's email and row 40
    reaches row 6's existing contact by phone instead of email (so by another lane)."""
    for i in range(5):
        existing_contact(org, email=f"old{i}@example.com", phone=f"+4930123450{i:02d}")
    rows = []
    for i in range(45):
        email, phone = f"n{i}@example.com", ""
        if i < 5:
            email = f"old{i}@example.com"
        if i == 28:
            email = "n12@example.com"
        if i == 38:
            email, phone = "", "+49 30 1234 5004"
        company = "Initech" if i % 2 else "Globex Corp"
        website = "" if i % 2 else "https://globex.example"
        rows.append([f"Name{i}", email, phone, f"Title {i}", company, website, "vip"])
    return rows_csv(
        ["First Name", "Email", "Phone", "Job Title", "Company", "Website", "Tags"], rows
    )


def run_in_lanes(owner, content, monkeypatch, *, importer=Importer):
    threads = set()
    real = Importer._commit_part

    def recording(self, *args):
        threads.add(threading.current_thread().name)
        return real(self, *args)

    monkeypatch.setattr(Importer, "_commit_part", recording)
    monkeypatch.setattr(import_run, "Importer", importer)
    job = map_job(upload(owner, content), owner)
    services.import_start(job=job, actor=Actor.for_user(owner.user), policy=Policy(owner))
    services.run_import(org_id=owner.org_id, job_id=job.pk, chunk_rows=10)
    job.refresh_from_db()
    return job, threads


def assert_lanes_result(org, job):
    assert job.merge_lanes == 2
    assert sorted(job.chunks_done) == list(range(10))
    assert (job.progress, job.created_count, job.updated_count, job.error_count) == (
        45,
        38,
        5,
        2,
    )
    errors = dict(ImportRowError.objects.filter(job=job).values_list("row_number", "message"))
    assert errors == {
        30: "Duplicate inside the file: same contact as row 14",
        40: "Duplicate inside the file: same contact as row 6",
    }
    assert Contact.objects.filter(org=org).count() == 43
    assert Company.objects.filter(org=org, name="Initech").count() == 1
    assert Company.objects.filter(org=org, domain="globex.example").count() == 1
    assert Contact.objects.filter(org=org, company__name="Initech").count() == 22
    created = created_by(job)
    updated = list(ImportRecord.objects.filter(job=job).values_list("contact_id", flat=True))
    assert (len(created), len(updated), len(set(created + updated))) == (38, 5, 43)
    vip = Contact.objects.filter(org=org, tags__name="vip")
    assert vip.count() == 43


def test_lanes_merge_in_parallel_to_the_same_result_as_one_connection(
    transactional_db, monkeypatch
):
    org = OrganizationFactory()
    owner = member(org, "owner")

    job, threads = run_in_lanes(owner, lanes_file(org), monkeypatch)

    assert job.status == ImportJob.Status.DONE, job.error
    assert threads == {"import-lane-0", "import-lane-1"}
    assert_lanes_result(org, job)


class LaneDiesAfterThreeParts(Importer):
    parts_written = 0

    def merge(self, part, *, dry_run):
        if not dry_run:
            with _parts_lock:
                if LaneDiesAfterThreeParts.parts_written >= 3:
                    raise WorkerKilled
                LaneDiesAfterThreeParts.parts_written += 1
        return super().merge(part, dry_run=dry_run)


_parts_lock = threading.Lock()


def test_a_job_whose_lanes_died_resumes_with_exactly_the_missing_parts(
    transactional_db, monkeypatch
):
    org = OrganizationFactory()
    owner = member(org, "owner")
    monkeypatch.setattr(LaneDiesAfterThreeParts, "parts_written", 0)

    with pytest.raises(WorkerKilled):
        run_in_lanes(owner, lanes_file(org), monkeypatch, importer=LaneDiesAfterThreeParts)
    job = ImportJob.objects.get(org=org)
    assert job.status == ImportJob.Status.RUNNING
    assert len(job.chunks_done) == 3
    stale = timezone.now() - dt.timedelta(seconds=jobs.STALE_AFTER_SECONDS + 5)
    ImportJob.objects.filter(pk=job.pk).update(heartbeat_at=stale)
    monkeypatch.setattr(import_run, "Importer", Importer)

    services.run_import(org_id=org.pk, job_id=job.pk, chunk_rows=10)

    job.refresh_from_db()
    assert job.status == ImportJob.Status.DONE, job.error
    assert_lanes_result(org, job)


# Files: encodings, delimiters, workbooks ---------------------------------------------------------


def test_utf16_tab_separated_file_imports_end_to_end(org, owner):
    text = "Vorname\tNachname\tE-Mail\r\nJürgen\tMüller\tjuergen@example.de\r\n"
    job = upload(owner, "\ufeff" + text, name="outlook.txt", encoding="utf-16-le")
    assert (job.encoding, job.delimiter) == ("utf-16", "\t")

    job = run(map_job(job, owner), owner)

    assert job.created_count == 1, job.error
    contact = Contact.objects.get(org=org)
    assert (contact.first_name, contact.last_name) == ("Jürgen", "Müller")


def test_windows_1252_semicolon_file_imports_end_to_end(org, owner):
    text = "Prénom;Nom;Courriel;Ville\r\nFrançois;Lefèvre;francois@example.fr;Besançon\r\n"
    job = upload(owner, text, name="export.csv", encoding="cp1252")
    assert (job.encoding, job.delimiter) == ("cp1252", ";")

    job = run(map_job(job, owner), owner)

    assert job.created_count == 1, job.error
    contact = Contact.objects.get(org=org)
    assert (contact.first_name, contact.last_name, contact.city) == (
        "François",
        "Lefèvre",
        "Besançon",
    )


def test_xlsx_workbook_imports_end_to_end(org, owner):
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["First name", "Last name", "Email", "Consent date"])
    sheet.append(["Mae", "Jemison", "mae@example.com", dt.datetime(2024, 3, 1, 9, 30)])
    sheet.append(["Sally", "Ride", "sally@example.com", None])
    sheet.append(["Katherine", "Johnson", "katherine@example.com", dt.datetime(2024, 3, 2)])
    buffer = io.BytesIO()
    workbook.save(buffer)

    job = upload(owner, buffer.getvalue(), name="people.xlsx")
    assert job.file_kind == "xlsx"
    job = run(map_job(job, owner), owner)

    assert job.created_count == 3, job.error
    assert job.total == job.progress == 3  # counted from the sheet's row tags
    mae = Contact.objects.get(org=org, email="mae@example.com")
    assert mae.consent_date is not None
    assert mae.consent_date.date() == dt.date(2024, 3, 1)
    # A cell at midnight comes in as its date, which a date-and-time field takes as well.
    katherine = Contact.objects.get(org=org, email="katherine@example.com")
    org_zone = zoneinfo.ZoneInfo(org.timezone or "UTC")
    assert timezone.localtime(katherine.consent_date, org_zone).date() == dt.date(2024, 3, 2)


# The end of a job ---------------------------------------------------------------------------------


def test_finishing_an_import_notifies_its_author_in_the_app_and_by_email(
    org, owner, django_capture_on_commit_callbacks
):
    owner.user.email = "owner@example.com"
    owner.user.save()
    job = map_job(upload(owner, rows_csv(["Email"], [["a@example.com"], ["bad"]])), owner)
    services.import_start(job=job, actor=Actor.for_user(owner.user), policy=Policy(owner))

    # The email goes out when the job's last write commits.
    with django_capture_on_commit_callbacks(execute=True):
        services.run_import(org_id=org.pk, job_id=job.pk)

    note = Notification.objects.get(org=org, user=owner.user)
    assert note.title == "Import of people.csv finished"
    assert "1 created" in note.body and "1 error." in note.body
    assert note.url == reverse("contacts:import_detail", args=[job.public_id])
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["owner@example.com"]
    assert "people.csv" in mail.outbox[0].subject


def test_imports_from_before_parts_keep_their_created_contacts_for_undo(org, owner):
    """The upgrade turns the per-contact "created" records of older imports into parts, one
    per chunk (one written_at), so Undo and the diff view still find those contacts."""
    import importlib

    from django.db import connection

    migration = importlib.import_module("contacts.migrations.0007_import_parts_and_contact_source")
    job = import_file(owner, rows_csv(["Email"], [["keep@example.com"]]))
    job.parts.all().delete()
    first, second = timezone.now() - dt.timedelta(hours=2), timezone.now() - dt.timedelta(hours=1)
    contacts = [existing_contact(org, email=f"old{i}@example.com") for i in range(3)]
    for i, (contact, written_at) in enumerate(zip(contacts, [first, first, second], strict=True)):
        ImportRecord.objects.create(
            job=job,
            contact_id=contact.id,
            row_number=i + 2,
            action="created",
            written_at=written_at,
        )
    ImportRecord.objects.create(
        job=job, contact_id=contacts[0].id, row_number=9, action="updated", written_at=second
    )

    with connection.cursor() as cur:
        cur.execute(migration.CREATED_RECORDS_TO_PARTS)

    parts = list(
        job.parts.order_by("number").values_list("created_ids", "created_rows", "written_at")
    )
    assert parts == [
        ([contacts[0].id, contacts[1].id], [2, 3], first),
        ([contacts[2].id], [4], second),
    ]
    assert list(ImportRecord.objects.filter(job=job).values_list("action", flat=True)) == [
        "updated"
    ]
