"""Retention rules: selection, preview = run, legal holds, enabling on a seen figure, the
nightly schedule, reports and audit, and who may do what."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from compliance import jobs as retention_jobs
from compliance.models import ErasureTombstone, RetentionPolicy, RetentionRun
from compliance.services import retention
from contacts.models import Contact, Note
from crm.models import AuditEvent
from crm.services import Actor
from tests.factories import ContactFactory, NoteFactory, RetentionPolicyFactory, member

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 6, 30, 12, 0, tzinfo=dt.UTC)


def aged(org, *, months_idle=None, archived_months=None, **fields):
    """A contact last active (or archived) that many months before NOW."""
    contact = ContactFactory(org=org, **fields)
    changes = {}
    if months_idle is not None:
        changes["last_activity_at"] = retention.cutoff(months_idle, NOW) - dt.timedelta(days=1)
        changes["created_at"] = changes["last_activity_at"]
    if archived_months is not None:
        changes.update(
            is_archived=True,
            archived_at=retention.cutoff(archived_months, NOW) - dt.timedelta(days=1),
        )
    Contact.objects.for_org(org).filter(pk=contact.pk).update(**changes)
    contact.refresh_from_db()
    return contact


def rule(org, **fields):
    values = {
        "name": "Old leads",
        "action": "delete",
        "condition": "no_activity",
        "months": 24,
        "lifecycle_stage": "lead",
        **fields,
    }
    return RetentionPolicyFactory(org=org, **values)


@pytest.mark.parametrize(
    ("now", "months", "expected"),
    [
        (dt.datetime(2026, 3, 31, tzinfo=dt.UTC), 1, dt.datetime(2026, 2, 28, tzinfo=dt.UTC)),
        (dt.datetime(2026, 1, 15, tzinfo=dt.UTC), 24, dt.datetime(2024, 1, 15, tzinfo=dt.UTC)),
        (dt.datetime(2026, 5, 31, tzinfo=dt.UTC), 15, dt.datetime(2025, 2, 28, tzinfo=dt.UTC)),
    ],
)
def test_the_cutoff_counts_calendar_months(now, months, expected):
    assert retention.cutoff(months, now) == expected


def test_no_activity_selects_idle_contacts_of_the_stage_and_spares_legal_holds(org):
    idle_lead = aged(org, months_idle=25, lifecycle_stage="lead")
    aged(org, months_idle=25, lifecycle_stage="customer")
    aged(org, months_idle=10, lifecycle_stage="lead")
    held = aged(org, months_idle=30, lifecycle_stage="lead", legal_hold=True)
    policy = rule(org)
    assert list(retention.affected(policy, NOW)) == [idle_lead]
    shown = retention.preview(policy, NOW)
    assert (shown.count, shown.on_hold) == (1, 1)
    assert held.pk not in [c.pk for c in retention.affected(policy, NOW)]


def test_the_preview_equals_what_the_run_does(org):
    doomed = [aged(org, months_idle=26, lifecycle_stage="lead") for _ in range(4)]
    aged(org, months_idle=26, lifecycle_stage="lead", legal_hold=True)
    aged(org, months_idle=3, lifecycle_stage="lead")
    policy = rule(org)
    shown = retention.preview(policy, NOW)

    run = retention.run_policy(policy, now=NOW)

    assert run.affected == shown.count == 4
    assert run.skipped_on_hold == shown.on_hold == 1
    assert not Contact.objects.for_org(org).filter(pk__in=[c.pk for c in doomed]).exists()
    assert retention.preview(policy, NOW).count == 0


def test_a_deleting_rule_leaves_no_tombstone_so_the_person_may_come_back(org):
    aged(org, months_idle=30, lifecycle_stage="lead", email="gone@example.com")
    retention.run_policy(rule(org), now=NOW)
    assert not ErasureTombstone.objects.for_org(org).exists()
    from contacts import services

    back = services.contact_create(
        org=org, actor=Actor.system("test"), data={"email": "gone@example.com"}
    )
    assert back.pk


def test_anonymizing_keeps_the_record_without_personal_data_and_only_once(org):
    contact = aged(
        org,
        archived_months=13,
        first_name="Greta",
        last_name="Lindqvist",
        email="greta@example.com",
        phone="+46701234567",
        city="Malmö",
    )
    NoteFactory(org=org, contact=contact, body="Greta prefers calls")
    policy = rule(org, action="anonymize", condition="archived", months=12, lifecycle_stage="")

    run = retention.run_policy(policy, now=NOW)

    assert run.affected == 1
    contact.refresh_from_db()
    assert contact.anonymized_at is not None
    assert (contact.email, contact.phone, contact.last_name) == ("", "", "")
    assert "Greta" not in f"{contact.first_name} {contact.city}"
    assert not Note.objects.for_org(org).filter(contact=contact).exists()
    # The next night finds nothing left to do.
    assert retention.preview(policy, NOW).count == 0
    assert retention.run_policy(policy, now=NOW).affected == 0


def test_each_run_leaves_a_report_and_an_audit_entry_naming_nobody(org):
    aged(org, months_idle=30, lifecycle_stage="lead", email="someone@example.com")
    policy = rule(org)
    run = retention.run_policy(policy, now=NOW)
    assert run.finished_at is not None
    assert run.report["affected"] == 1 and run.report["action"] == "delete"
    entry = AuditEvent.objects.for_org(org).get(verb="retention.ran")
    assert entry.changes["affected"] == 1
    assert "someone@example.com" not in str(run.report) + str(entry.changes)


def test_enabling_needs_the_figure_the_admin_saw(org):
    owner = member(org, "owner").user
    aged(org, months_idle=30, lifecycle_stage="lead")
    policy = rule(org)
    with pytest.raises(ValidationError, match="now affects 1"):
        retention.enable_policy(policy=policy, actor=Actor.for_user(owner), previewed_count=0)
    policy.refresh_from_db()
    assert not policy.enabled
    retention.enable_policy(policy=policy, actor=Actor.for_user(owner), previewed_count=1)
    policy.refresh_from_db()
    assert policy.enabled and policy.previewed_count == 1
    assert AuditEvent.objects.for_org(org).filter(verb="retention.enabled").exists()


def test_changing_a_rule_turns_it_off_until_it_is_previewed_again(org):
    owner = member(org, "owner").user
    policy = rule(org, enabled=True)
    data = {
        "name": policy.name,
        "action": "delete",
        "condition": "no_activity",
        "months": 6,
        "lifecycle_stage": "lead",
    }
    retention.save_policy(org=org, actor=Actor.for_user(owner), data=data, policy=policy)
    policy.refresh_from_db()
    assert policy.months == 6 and not policy.enabled


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("months", 0, "between 1 and"),
        ("months", "twelve", "whole number"),
        ("action", "shred", "delete or anonymize"),
        ("condition", "whenever", "condition"),
        ("lifecycle_stage", "prospect", "lifecycle stage"),
        ("name", " ", "name"),
    ],
)
def test_bad_rules_are_refused_field_by_field(org, field, value, message):
    data = {"name": "R", "action": "delete", "condition": "created", "months": 12, field: value}
    with pytest.raises(ValidationError) as caught:
        retention.save_policy(org=org, actor=Actor.system("t"), data=data)
    assert message in " ".join(caught.value.message_dict[field])
    assert not RetentionPolicy.objects.for_org(org).exists()


def test_the_schedule_queues_organizations_with_a_rule_on_not_run_today(org, other_org):
    rule(org, enabled=True)
    rule(other_org, enabled=False)
    assert retention_jobs.due_organizations() == [org]
    RetentionRun.objects.for_org(org).create(
        org=org, policy=RetentionPolicy.objects.for_org(org).get(), started_at=timezone.now()
    )
    assert retention_jobs.due_organizations() == []


def test_the_job_runs_every_enabled_rule(org):
    from crm import jobs

    aged(org, months_idle=30, lifecycle_stage="lead")
    rule(org, enabled=True)
    rule(org, name="Off rule", enabled=False, lifecycle_stage="")
    job = retention_jobs.start_retention_job(org, Actor.system("test"))
    jobs.run_inline(job.kind, org.pk, job.pk)
    runs = RetentionRun.objects.for_org(org)
    assert [r.policy.name for r in runs] == ["Old leads"]
    assert runs[0].affected == 1


def test_pages_follow_the_compliance_rights(org, client_as):
    policy = rule(org)
    rep = client_as(member(org, "team"))
    assert rep.get(reverse("compliance:retention")).status_code == 403
    director = client_as(member(org, "director"))  # compliance: view only
    assert director.get(reverse("compliance:retention")).status_code == 200
    assert (
        director.post(reverse("compliance:retention_enable", args=[policy.public_id])).status_code
        == 403
    )
    admin = client_as(member(org, "admin"))
    page = admin.get(reverse("compliance:retention_preview", args=[policy.public_id]))
    assert page.status_code == 200 and b"would be deleted" in page.content


def test_an_admin_creates_previews_and_enables_a_rule_through_the_pages(org, client_as):
    aged(org, months_idle=40, lifecycle_stage="lead")
    admin = client_as(member(org, "admin"))
    response = admin.post(
        reverse("compliance:retention"),
        {
            "name": "Stale leads",
            "action": "delete",
            "condition": "no_activity",
            "months": "24",
            "lifecycle_stage": "lead",
        },
    )
    policy = RetentionPolicy.objects.for_org(org).get(name="Stale leads")
    assert response.status_code == 302 and not policy.enabled
    stale = admin.post(
        reverse("compliance:retention_enable", args=[policy.public_id]), {"previewed_count": "7"}
    )
    assert stale.status_code == 409 and b"now affects 1" in stale.content
    admin.post(
        reverse("compliance:retention_enable", args=[policy.public_id]), {"previewed_count": "1"}
    )
    policy.refresh_from_db()
    assert policy.enabled


def test_another_organizations_rule_is_not_found(org, other_org, client_as):
    theirs = rule(other_org)
    admin = client_as(member(org, "admin"))
    for name in ("retention_detail", "retention_preview"):
        assert admin.get(reverse(f"compliance:{name}", args=[theirs.public_id])).status_code == 404
    assert (
        admin.post(reverse("compliance:retention_delete", args=[theirs.public_id])).status_code
        == 404
    )
    assert RetentionPolicy.objects.for_org(other_org).filter(pk=theirs.pk).exists()
