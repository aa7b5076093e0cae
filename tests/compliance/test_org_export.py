"""Compliance → Export all data: the background job writes one ZIP with a CSV and a JSON Lines
file per object, of its own organization only, without the fields a non-Owner may not see;
the page starts it (with the right) and follows it; the download link is the starter's or an
Owner's, and expires; a job whose worker died resumes without duplicates, and one that fails
leaves no files behind."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import zipfile

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from compliance.models import ConsentRecord, DataRequest, Suppression
from compliance.services import org_export as service
from compliance.services.org_export import job as export_job
from compliance.services.org_export import objects as export_objects
from contacts.models import (
    Activity,
    Company,
    Contact,
    ContactList,
    ContactTag,
    CustomFieldDefinition,
    Note,
    Tag,
    Task,
)
from crm import jobs
from crm.jobs.tasks import run_job_task
from crm.models import AuditEvent, BackgroundJob, Notification
from crm.permissions import ACTIONS, MODULE_KEYS, Policy
from crm.services import Actor
from pipeline.models import (
    Deal,
    DealContact,
    DealTag,
    ObjectAssociation,
    ObjectField,
    ObjectRecord,
    ObjectType,
    Order,
)
from tests.factories import (
    ActivityFactory,
    CompanyFactory,
    ConsentRecordFactory,
    ContactFactory,
    ContactListFactory,
    CustomFieldDefinitionFactory,
    DataRequestFactory,
    DealContactFactory,
    DealFactory,
    MembershipFactory,
    NoteFactory,
    ObjectAssociationFactory,
    ObjectFieldFactory,
    OrderFactory,
    SuppressionFactory,
    TagFactory,
    TaskFactory,
    custom_role,
    member,
)

SECTION_MODELS = {
    "contacts": Contact,
    "companies": Company,
    "deals": Deal,
    "deal_contacts": DealContact,
    "activities": Activity,
    "notes": Note,
    "tasks": Task,
    "tags": Tag,
    "contact_tags": None,
    "deal_tags": None,
    "lists": ContactList,
    "list_memberships": None,
    "custom_field_definitions": CustomFieldDefinition,
    "orders": Order,
    "custom_object_types": ObjectType,
    "custom_object_fields": ObjectField,
    "custom_object_records": ObjectRecord,
    "custom_object_associations": ObjectAssociation,
    "consent_records": ConsentRecord,
    "suppressions": Suppression,
    "data_requests": DataRequest,
    "audit_log": AuditEvent,
}


def expected_counts(org) -> dict[str, int]:
    counts = {
        name: model.objects.for_org(org).count()
        for name, model in SECTION_MODELS.items()
        if model is not None
    }
    counts["contact_tags"] = ContactTag.objects.filter(contact__org=org).count()
    counts["deal_tags"] = DealTag.objects.filter(org=org).count()
    counts["list_memberships"] = ContactList.contacts.through.objects.filter(
        contactlist__org=org
    ).count()
    return counts


def seed(org, marker: str) -> dict:
    """One or two rows of every exported object, their text marked with `marker`."""
    CustomFieldDefinitionFactory(org=org, key="tier", label="Tier")
    tag = TagFactory(org=org, name=f"{marker}-tag")
    company = CompanyFactory(org=org, name=f"{marker} Company", domain=f"{marker}.example")
    contact = ContactFactory(
        org=org,
        first_name=f"{marker}first",
        email=f"person@{marker}.example",
        company=company,
        custom={"tier": f"{marker}-gold"},
        tags=[tag],
    )
    second = ContactFactory(org=org, email=f"second@{marker}.example")
    deal = DealFactory(org=org, title=f"{marker} deal", contact=contact, value=4321)
    DealTag.objects.create(org=org, deal=deal, tag=tag)
    DealContactFactory(org=org, deal=deal, contact=second)
    ActivityFactory(org=org, contact=contact, subject=f"{marker} call")
    NoteFactory(org=org, contact=contact, body=f"{marker} note")
    TaskFactory(org=org, contact=contact, title=f"{marker} task")
    contact_list = ContactListFactory(org=org, name=f"{marker} list")
    contact_list.contacts.add(contact, second)
    OrderFactory(org=org, contact=contact, title=f"{marker} order")
    field = ObjectFieldFactory(org=org)
    ObjectAssociationFactory(
        org=org,
        record__object_type=field.object_type,
        record__display_name=f"{marker} record",
        contact=contact,
    )
    ConsentRecordFactory(org=org, contact=contact, source=f"{marker} form")
    SuppressionFactory(org=org, address=f"blocked@{marker}.example")
    DataRequestFactory(org=org, contact=contact, requester_email=f"asker@{marker}.example")
    return {"contact": contact, "second": second, "deal": deal}


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


@pytest.fixture
def owner(org):
    return member(org, "owner")


def start(org, who) -> BackgroundJob:
    return service.start_org_export(org=org, actor=Actor.for_user(who.user), policy=Policy(who))


def run(job: BackgroundJob) -> BackgroundJob:
    run_job_task.apply(args=[service.JOB_KIND, job.org_id, job.pk])
    job.refresh_from_db()
    return job


def read_zip(job: BackgroundJob) -> dict[str, bytes]:
    with zipfile.ZipFile(service.zip_path(job)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def csv_rows(data: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"))))


def jsonl_rows(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.decode("utf-8").splitlines() if line]


def export_role(org, *, field_rules=None):
    """A non-Owner role: view on every module, plus the Compliance export right."""
    permissions = {
        module: {"access": True, "view": True, "scope": "all"}
        | {action: False for action in ACTIONS if action != "view"}
        for module in MODULE_KEYS
    }
    permissions["compliance"]["export"] = True
    return custom_role(org, name="Exporter", permissions=permissions, field_rules=field_rules or {})


# The file ---------------------------------------------------------------------------------------


def test_the_zip_holds_every_file_with_the_organizations_rows(org, other_org, owner):
    seeded = seed(org, "acme")
    seed(other_org, "globex")
    job = start(org, owner)
    expected = expected_counts(org)

    job = run(job)

    assert job.status == "done", job.error
    files = read_zip(job)
    names = [f"{name}.{ext}" for name in SECTION_MODELS for ext in ("csv", "jsonl")]
    assert sorted(files) == sorted([*names, "manifest.json"])
    for name in SECTION_MODELS:
        assert len(csv_rows(files[f"{name}.csv"])) == expected[name], name
        assert len(jsonl_rows(files[f"{name}.jsonl"])) == expected[name], name
    assert all(expected[name] > 0 for name in SECTION_MODELS), expected
    manifest = json.loads(files["manifest.json"])
    assert {f["object"]: f["rows"] for f in manifest["files"]} == expected

    contacts = {row["ID"]: row for row in csv_rows(files["contacts.csv"])}
    first = contacts[str(seeded["contact"].public_id)]
    assert first["Email"] == "person@acme.example"
    assert first["Tier (custom)"] == "acme-gold"
    assert first["Company"] == "acme Company"
    assert first["Tags"] == "acme-tag"
    record = next(
        r
        for r in jsonl_rows(files["contacts.jsonl"])
        if r["id"] == str(seeded["contact"].public_id)
    )
    assert record["custom"] == {"tier": "acme-gold"}
    deal = csv_rows(files["deals.csv"])[0]
    assert (deal["title"], deal["value"], deal["contact_id"]) == (
        "acme deal",
        "4321.00",
        str(seeded["contact"].public_id),
    )
    memberships = jsonl_rows(files["list_memberships.jsonl"])
    assert {m["contact_id"] for m in memberships} == {
        str(seeded["contact"].public_id),
        str(seeded["second"].public_id),
    }
    verbs = [row["verb"] for row in csv_rows(files["audit_log.csv"])]
    assert "compliance.org_export_started" in verbs


def test_another_organizations_rows_never_appear(org, other_org, owner):
    seed(org, "acme")
    theirs = seed(other_org, "globex")

    job = run(start(org, owner))

    for name, data in read_zip(job).items():
        text = data.decode("utf-8")
        assert "globex" not in text, name
        assert str(theirs["contact"].public_id) not in text, name


def test_a_non_owner_exporter_does_not_get_hidden_fields(org):
    seeded = seed(org, "acme")
    role = export_role(
        org, field_rules={"email": "hidden", "custom.tier": "hidden", "deal.value": "hidden"}
    )
    exporter = MembershipFactory(org=org, role=role)

    job = run(start(org, exporter))

    assert job.status == "done", job.error
    files = read_zip(job)
    contacts = csv_rows(files["contacts.csv"])
    assert "Email" not in contacts[0] and "Tier (custom)" not in contacts[0]
    assert "First name" in contacts[0]
    records = jsonl_rows(files["contacts.jsonl"])
    assert all("email" not in r and "tier" not in r.get("custom", {}) for r in records)
    assert b"person@acme.example" not in files["contacts.csv"]
    assert b"acme-gold" not in files["contacts.jsonl"]
    deals = csv_rows(files["deals.csv"])
    assert "value" not in deals[0] and deals[0]["title"] == "acme deal"
    manifest = json.loads(files["manifest.json"])
    assert {"email", "custom.tier"} <= set(manifest["hidden_fields"]["contacts"])
    assert str(seeded["contact"].public_id) in files["contacts.csv"].decode()


def test_hidden_emails_stay_hidden_in_suppressions_and_data_requests_too(org):
    seed(org, "acme")
    role = export_role(org, field_rules={"email": "hidden"})
    job = run(start(org, MembershipFactory(org=org, role=role)))

    files = read_zip(job)
    for name, data in files.items():
        if name.startswith("audit_log."):
            continue  # read whole under the settings right, as on the audit log page
        for address in (b"person@acme", b"blocked@acme", b"asker@acme", b"second@acme"):
            assert address not in data, f"{address!r} in {name}"
    suppressions = csv_rows(files["suppressions.csv"])
    assert {row["address"] for row in suppressions} == {"(hidden)"}


def test_a_non_owner_gets_only_the_objects_their_role_may_view(org):
    seed(org, "acme")
    role = export_role(org)
    for module in ("settings", "pipeline", "custom_objects"):
        role.permissions[module] = {"access": False, "scope": "all"} | dict.fromkeys(ACTIONS, False)
    role.save(update_fields=["permissions"])
    job = run(start(org, MembershipFactory(org=org, role=role)))

    names = {name.rsplit(".", 1)[0] for name in read_zip(job)}
    assert {"contacts", "companies", "suppressions", "consent_records"} <= names
    assert not names & {"audit_log", "deals", "orders", "custom_object_records"}


def test_an_owner_gets_every_field_whatever_the_rules(org, owner):
    seed(org, "acme")
    owner.role.field_rules = {"email": "hidden"}
    owner.role.save()

    files = read_zip(run(start(org, owner)))

    assert "Email" in csv_rows(files["contacts.csv"])[0]


def test_progress_is_written_as_it_goes_and_reaches_100(org, owner, monkeypatch):
    seed(org, "acme")
    ContactFactory.create_batch(5, org=org)
    monkeypatch.setattr(export_objects, "CHUNK_ROWS", 2)
    seen: list[tuple[int, int]] = []
    commit = export_job._commit

    def spy(job, locked, *, result, progress):
        commit(job, locked, result=result, progress=progress)
        seen.append((job.progress, locked.total))

    monkeypatch.setattr(export_job, "_commit", spy)
    job = start(org, owner)
    expected_rows = sum(expected_counts(org).values())

    job = run(job)

    assert (job.status, job.percent, job.progress, job.total) == (
        "done",
        100,
        2 * expected_rows,
        2 * expected_rows,
    )
    partial = [progress for progress, total in seen if 0 < progress < total]
    assert len(partial) > 3 and partial == sorted(partial)


def test_cells_and_headers_a_spreadsheet_would_run_are_neutralized(org, owner):
    CustomFieldDefinitionFactory(org=org, key="calc", label="=SUM(A1:A9)")
    ContactFactory(org=org, first_name='=HYPERLINK("http://evil.example")', custom={"calc": "x"})

    files = read_zip(run(start(org, owner)))

    header = next(csv.reader(io.StringIO(files["contacts.csv"].decode())))
    assert "'=SUM(A1:A9) (custom)" in header
    assert csv_rows(files["contacts.csv"])[0]["First name"].startswith("'=HYPERLINK")
    # JSON is for programs: the value stays exactly as stored.
    assert jsonl_rows(files["contacts.jsonl"])[0]["first_name"].startswith("=HYPERLINK")


# Starting and the page ----------------------------------------------------------------------------


def test_a_member_without_the_export_right_gets_403(org, client_as):
    executive = member(org, "executive")  # views Compliance, may not export it
    client = client_as(executive)

    assert client.get(reverse("compliance:org_export")).status_code == 403
    assert client.post(reverse("compliance:org_export_start")).status_code == 403
    assert not BackgroundJob.objects.for_org(org).filter(kind=service.JOB_KIND).exists()


def test_the_page_starts_an_export_and_shows_its_progress_bar(
    org, owner, client_as, django_capture_on_commit_callbacks
):
    client = client_as(owner)
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(reverse("compliance:org_export_start"))

    assert response.status_code == 302
    job = BackgroundJob.objects.for_org(org).get(kind=service.JOB_KIND)
    assert (job.status, job.created_by_id) == ("queued", owner.user_id)
    assert [c.args for c in callbacks] == [(service.JOB_KIND, org.pk, job.pk)]
    page = client.get(reverse("compliance:org_export")).content.decode()
    assert 'class="progress-bar"' in page
    assert reverse("compliance:org_export_progress", args=[job.public_id]) in page
    # A second start while the first runs is refused with a message, not a second job.
    client.post(reverse("compliance:org_export_start"))
    assert BackgroundJob.objects.for_org(org).filter(kind=service.JOB_KIND).count() == 1


def test_the_progress_row_polls_until_done_then_offers_the_download(org, owner, client_as):
    seed(org, "acme")
    job = start(org, owner)
    client = client_as(owner, htmx=True)
    url = reverse("compliance:org_export_progress", args=[job.public_id])
    assert 'hx-trigger="every 2s"' in client.get(url).content.decode()

    run(job)

    row = client.get(url).content.decode()
    assert "hx-trigger" not in row
    assert "Download ZIP" in row and "Ready" in row


def test_the_home_page_links_to_the_export_for_members_with_the_right(org, owner, client_as):
    link = reverse("compliance:org_export")
    assert link in client_as(owner).get(reverse("compliance:home")).content.decode()
    executive = member(org, "executive")
    assert link not in client_as(executive).get(reverse("compliance:home")).content.decode()


def test_the_starter_gets_an_email_and_a_notification_when_it_is_done(org, owner):
    seed(org, "acme")
    job = run(start(org, owner))

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [owner.user.email]
    assert "is ready" in message.subject
    assert "/compliance/export-all/download/" in message.body
    assert Notification.objects.for_org(org).filter(user=owner.user, level="success").exists()
    assert job.result["size"] == service.zip_path(job).stat().st_size


# The download link -------------------------------------------------------------------------


def test_the_download_link_serves_the_zip_to_the_starter_and_to_owners(org, owner, client_as):
    seed(org, "acme")
    exporter = MembershipFactory(org=org, role=export_role(org))
    job = run(start(org, exporter))
    url = service.download_path(job)

    for who in (exporter, owner):
        response = client_as(who).get(url)
        assert response.status_code == 200
        assert response["Content-Type"] == "application/zip"
        body = b"".join(response.streaming_content)
        assert zipfile.ZipFile(io.BytesIO(body)).testzip() is None
    assert (
        AuditEvent.objects.for_org(org).filter(verb="compliance.org_export_downloaded").count() == 2
    )


def test_the_download_link_refuses_another_member(org, owner, client_as):
    seed(org, "acme")
    job = run(start(org, owner))
    admin = member(org, "admin")  # may export, but this export is not theirs

    assert client_as(admin).get(service.download_path(job)).status_code == 404
    progress = reverse("compliance:org_export_progress", args=[job.public_id])
    assert client_as(admin, htmx=True).get(progress).status_code == 404
    assert (
        str(job.public_id)
        not in client_as(admin).get(reverse("compliance:org_export")).content.decode()
    )


def test_the_download_link_is_a_404_in_another_organization(org, other_org, owner, client_as):
    seed(org, "acme")
    job = run(start(org, owner))
    their_owner = member(other_org, "owner")

    assert client_as(their_owner).get(service.download_path(job)).status_code == 404


def test_a_changed_link_is_a_404(org, owner, client_as):
    seed(org, "acme")
    job = run(start(org, owner))
    token = service.download_token(job)

    url = reverse("compliance:org_export_download", args=[token[:-2] + "xx"])
    assert client_as(owner).get(url).status_code == 404


def test_an_expired_link_says_so_and_the_file_is_deleted(org, owner, client_as):
    seed(org, "acme")
    job = run(start(org, owner))
    old_link = service.download_path(job)
    past = timezone.now() - dt.timedelta(minutes=1)
    job.result = {**job.result, "expires_at": past.isoformat()}
    job.save(update_fields=["result"])
    client = client_as(owner)

    for url in (old_link, service.download_path(job)):
        response = client.get(url)
        assert response.status_code == 410
        assert "This download link has expired" in response.content.decode()

    page = client.get(reverse("compliance:org_export")).content.decode()
    assert "Expired" in page and "Download ZIP" not in page
    assert not service.zip_path(job).exists()


# Resuming and failing ----------------------------------------------------------------------


def test_a_job_whose_worker_died_resumes_without_duplicates(org, owner, monkeypatch):
    seed(org, "acme")
    ContactFactory.create_batch(6, org=org)
    monkeypatch.setattr(export_objects, "CHUNK_ROWS", 3)
    original = export_objects.contact_section
    calls = {"n": 0}

    def dying_section(*args):
        section = original(*args)
        read = section.read

        def read_then_die(ids):
            calls["n"] += 1
            rows = read(ids)
            if calls["n"] == 2:  # the worker dies half-way through its second chunk
                yield next(iter(rows))
                raise RuntimeError("worker lost")
            yield from rows

        section.read = read_then_die
        return section

    monkeypatch.setattr(export_objects, "contact_section", dying_section)
    job = start(org, owner)
    claimed = jobs.claim(service.JOB_KIND, org.pk, job.pk, holder="dead-worker")
    with pytest.raises(RuntimeError), jobs.working_for(org.pk):
        service.run_org_export(claimed)
    job.refresh_from_db()
    assert (job.status, job.result["section"], job.result["rows"]) == (
        "running",
        0,
        {"contacts": 3},
    )
    committed = job.result["csv_bytes"]
    assert (service.work_dir(job) / "contacts.csv").stat().st_size > committed

    stale = timezone.now() - dt.timedelta(seconds=jobs.STALE_AFTER_SECONDS + 1)
    BackgroundJob.objects.for_org(org).filter(pk=job.pk).update(heartbeat_at=stale)
    job = run(job)

    assert job.status == "done", job.error
    ids = [row["ID"] for row in csv_rows(read_zip(job)["contacts.csv"])]
    assert len(ids) == len(set(ids)) == Contact.objects.for_org(org).count()
    records = jsonl_rows(read_zip(job)["contacts.jsonl"])
    assert sorted(r["id"] for r in records) == sorted(ids)
    assert not service.work_dir(job).exists()


def test_a_job_that_fails_leaves_no_files_and_tells_the_starter(org, owner, monkeypatch):
    seed(org, "acme")

    original = export_objects.deal_section

    def broken_deals(*args):
        section = original(*args)

        def read(ids):
            raise RuntimeError("disk on fire")

        section.read = read
        return section

    monkeypatch.setattr(export_objects, "deal_section", broken_deals)
    written = []
    job = start(org, owner)
    real_commit = export_job._commit

    def spy(job, locked, *, result, progress):
        real_commit(job, locked, result=result, progress=progress)
        written.extend(p.name for p in service.work_dir(job).iterdir())

    monkeypatch.setattr(export_job, "_commit", spy)
    job = run(job)

    assert "contacts.csv" in written  # the contacts were written before the deals failed
    assert job.status == "failed"
    assert "unexpected error" in job.error
    assert not service.work_dir(job).exists()
    assert not service.zip_path(job).exists()
    assert Notification.objects.for_org(org).filter(user=owner.user, level="error").exists()


def test_a_starter_who_lost_the_right_gets_a_failed_job_and_no_data(org):
    seed(org, "acme")
    exporter = MembershipFactory(org=org, role=export_role(org))
    job = start(org, exporter)
    exporter.role.permissions["compliance"]["export"] = False
    exporter.role.save()

    job = run(job)

    assert (job.status, job.error) == ("failed", service.NO_RIGHT)
    assert not service.zip_path(job).exists()


def test_a_finished_export_whose_file_is_gone_says_so(org, owner, client_as):
    seed(org, "acme")
    job = run(start(org, owner))
    service.zip_path(job).unlink()
    client = client_as(owner)

    page = client.get(reverse("compliance:org_export")).content.decode()
    assert "The file is no longer stored" in page and "Download ZIP" not in page
    assert client.get(service.download_path(job)).status_code == 404
