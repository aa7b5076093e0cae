"""Lead scoring: rules compile from the filter language, scores are the clamped sum computed
in SQL, the reasons behind a score come from one query, and editing rules rescores the org
through a background job."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from contacts.models import Contact, CustomFieldDefinition, ScoringRule
from contacts.scoring import rescore_contact, rescore_contacts, score_reasons
from contacts.services import contact_create
from crm.models import AuditEvent, BackgroundJob, Membership
from crm.permissions import Policy
from crm.services import Actor
from tests.factories import ContactFactory, TagFactory, custom_role, member
from tests.jobhelpers import run_job


def rule(org, name, field, op, value, points, **extra):
    return ScoringRule.objects.create(
        org=org,
        name=name,
        condition={"field": field, "op": op, "value": value},
        points=points,
        **extra,
    )


def score_of(contact) -> int:
    return Contact.objects.get(pk=contact.pk).lead_score


def test_the_score_is_the_sum_of_the_rules_a_contact_meets(org):
    rule(org, "Senior title", "job_title", "contains", "VP", 20)
    rule(org, "Customer", "lifecycle_stage", "eq", "customer", 25)
    rule(org, "No email", "email", "is_empty", None, -30)
    vp = ContactFactory(org=org, job_title="VP Sales", lifecycle_stage="customer")
    intern = ContactFactory(org=org, job_title="Intern", lifecycle_stage="lead")
    anonymous = ContactFactory(org=org, job_title="VP Ops", email="")

    rescore_contacts(org)

    assert score_of(vp) == 45
    assert score_of(intern) == 0
    assert score_of(anonymous) == 0  # 20 - 30, clamped at 0


def test_scores_are_clamped_between_0_and_100(org):
    rule(org, "Big", "job_title", "contains", "CEO", 80)
    rule(org, "Bigger", "lifecycle_stage", "eq", "customer", 70)
    rule(org, "Bad", "status", "eq", "bounced", -100)
    top = ContactFactory(org=org, job_title="CEO", lifecycle_stage="customer")
    bottom = ContactFactory(org=org, job_title="Clerk", status="bounced")

    rescore_contacts(org)

    assert score_of(top) == 100
    assert score_of(bottom) == 0


def test_rules_on_tags_and_custom_fields_compile_into_the_same_update(org):
    CustomFieldDefinition.objects.create(
        org=org,
        key="industry_fit",
        label="Industry fit",
        field_type="list",
        choices=["Strong", "Weak"],
    )
    rule(org, "VIP", "tags", "any_of", ["vip"], 30)
    rule(org, "Strong fit", "custom.industry_fit", "eq", "Strong", 15)
    both = ContactFactory(
        org=org, custom={"industry_fit": "Strong"}, tags=[TagFactory(org=org, name="vip")]
    )
    neither = ContactFactory(org=org, custom={"industry_fit": "Weak"})

    with CaptureQueriesContext(connection) as captured:
        rescore_contacts(org, ids=[both.pk, neither.pk])

    assert score_of(both) == 45
    assert score_of(neither) == 0
    updates = [q for q in captured.captured_queries if q["sql"].startswith("UPDATE")]
    assert len(updates) == 1


def test_inactive_rules_and_other_orgs_rules_do_not_count(org, other_org):
    rule(org, "Paused", "job_title", "contains", "VP", 50, is_active=False)
    rule(other_org, "Theirs", "job_title", "contains", "VP", 50)
    contact = ContactFactory(org=org, job_title="VP Sales")

    rescore_contacts(org)

    assert score_of(contact) == 0


def test_rescore_contact_puts_the_new_score_on_the_instance(org):
    rule(org, "Senior title", "job_title", "contains", "VP", 20)
    contact = ContactFactory(org=org, job_title="VP Sales")

    assert rescore_contact(contact) == 20
    assert contact.lead_score == 20 == score_of(contact)


def test_new_contacts_are_scored_when_created(org, owner):
    rule(org, "Senior title", "job_title", "contains", "VP", 20)

    contact = contact_create(
        org=org,
        actor=Actor.for_user(owner.user),
        data={"first_name": "Grace", "email": "grace@navy.example", "job_title": "VP Eng"},
        policy=Policy(owner),
    )

    assert score_of(contact) == 20


def test_the_reasons_behind_a_score_come_from_one_query(org):
    rule(org, "Senior title", "job_title", "contains", "VP", 20)
    rule(org, "No email", "email", "is_empty", None, -30)
    rule(org, "Customer", "lifecycle_stage", "eq", "customer", 25)
    rule(org, "VIP", "tags", "eq", "vip", 40)
    contact = ContactFactory(org=org, job_title="VP Sales", email="", lifecycle_stage="lead")

    with CaptureQueriesContext(connection) as captured:
        reasons = score_reasons(contact)

    assert [(r.name, r.points) for r in reasons] == [("Senior title", 20), ("No email", -30)]
    assert reasons[0].condition == "Job title contains VP"
    contact_queries = [q for q in captured.captured_queries if "contacts_contact" in q["sql"]]
    assert len(contact_queries) == 1


def test_reasons_on_hidden_fields_keep_points_but_not_wording(org):
    rule(org, "Senior title", "job_title", "contains", "VP", 20)
    contact = ContactFactory(org=org, job_title="VP Sales")
    role = custom_role(
        org,
        permissions={"contacts": {"access": True, "view": True, "scope": "all"}},
        field_rules={"job_title": "hidden"},
    )
    viewer = member(org, "team")
    Membership.objects.filter(pk=viewer.pk).update(role=role)
    viewer.refresh_from_db()

    [reason] = score_reasons(contact, Policy(viewer))

    assert (reason.name, reason.points, reason.condition) == ("Senior title", 20, "")


def test_the_contact_page_partial_explains_the_score(org, members, client_as, other_org):
    rule(org, "Senior title", "job_title", "contains", "VP", 20)
    contact = ContactFactory(org=org, job_title="VP Sales")
    rescore_contact(contact)
    url = reverse("contacts:score_reasons", args=[contact.public_id])

    partial = client_as(members["viewer"], htmx=True).get(url)
    page = client_as(members["viewer"]).get(url)
    stranger = client_as(member(other_org, "owner")).get(url)

    assert "+20" in partial.content.decode()
    assert "Job title contains VP" in partial.content.decode()
    assert "Why 20?" in page.content.decode()
    assert stranger.status_code == 404


def test_adding_a_rule_queues_a_rescore_job_that_rescores_everyone(
    org, members, client_as, django_capture_on_commit_callbacks
):
    contacts = ContactFactory.create_batch(5, org=org, job_title="VP Sales")
    ContactFactory(org=org, job_title="Intern")
    client = client_as(members["admin"])

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(
            reverse("contacts:scoring"),
            {
                "name": "Senior title",
                "field": "job_title",
                "op": "contains",
                "value": "VP",
                "points": "35",
                "is_active": "on",
            },
        )

    assert response.status_code == 302
    assert len(callbacks) == 1
    job = BackgroundJob.objects.get(kind="contacts.rescore")
    assert job.total == 6
    assert run_job(job) == "ran"
    job.refresh_from_db()
    assert (job.status, job.progress, job.percent) == ("done", 6, 100)
    assert {score_of(c) for c in contacts} == {35}
    assert AuditEvent.objects.filter(verb="scoring_rule.created").count() == 1


def test_editing_and_deleting_rules_rescore_again(
    org, members, client_as, django_capture_on_commit_callbacks
):
    senior = rule(org, "Senior title", "job_title", "contains", "VP", 20)
    contact = ContactFactory(org=org, job_title="VP Sales")
    client = client_as(members["admin"])

    with django_capture_on_commit_callbacks(execute=False):
        client.post(
            reverse("contacts:scoring_rule_edit", args=[senior.public_id]),
            {
                "name": "Senior title",
                "field": "job_title",
                "op": "contains",
                "value": "VP",
                "points": "60",
                "is_active": "on",
            },
        )
    run_job(BackgroundJob.objects.latest("created_at"))
    edited = score_of(contact)
    with django_capture_on_commit_callbacks(execute=False):
        client.post(reverse("contacts:scoring_rule_delete", args=[senior.public_id]))
    run_job(BackgroundJob.objects.latest("created_at"))

    assert edited == 60
    assert score_of(contact) == 0
    assert not ScoringRule.objects.filter(pk=senior.pk).exists()


@pytest.mark.parametrize(
    ("field", "op", "value", "message"),
    [
        ("lead_score", "gt", "lots", "needs a number"),
        ("lead_score", "contains", "5", "can use"),
        ("lifecycle_stage", "eq", "Nirvana", "has no option"),
        ("created_at", "before", "31/12/2026", "needs a date like"),
    ],
)
def test_the_rule_form_explains_an_invalid_condition(
    org, members, client_as, field, op, value, message
):
    response = client_as(members["admin"]).post(
        reverse("contacts:scoring"),
        {"name": "Broken", "field": field, "op": op, "value": value, "points": "10"},
    )

    assert response.status_code == 400
    assert message in response.content.decode()
    assert not ScoringRule.objects.exists()


def test_points_outside_minus_100_to_100_are_refused(org, members, client_as):
    response = client_as(members["admin"]).post(
        reverse("contacts:scoring"),
        {"name": "Huge", "field": "job_title", "op": "contains", "value": "VP", "points": "150"},
    )

    assert response.status_code == 400
    assert not ScoringRule.objects.exists()


def test_the_scoring_page_needs_settings_rights(org, members, client_as):
    senior = rule(org, "Senior title", "job_title", "contains", "VP", 20)

    assert client_as(members["team"]).get(reverse("contacts:scoring")).status_code == 403
    assert client_as(members["viewer"]).get(reverse("contacts:scoring")).status_code == 403
    forged = client_as(members["team"]).post(
        reverse("contacts:scoring_rule_delete", args=[senior.public_id])
    )
    assert forged.status_code == 403
    page = client_as(members["admin"]).get(reverse("contacts:scoring"))
    assert page.status_code == 200
    assert "Senior title" in page.content.decode()
    assert "Job title contains VP" in page.content.decode()


def test_nightly_refresh_queues_a_rescore_only_where_rules_depend_on_time(org, other_org):
    from contacts.scoring import queue_nightly_rescores
    from crm.models import BackgroundJob
    from tests.factories import ScoringRuleFactory

    ScoringRuleFactory(
        org=org,
        name="Active lately",
        condition={"field": "last_activity_at", "op": "in_last_days", "value": 30},
        points=20,
    )
    ScoringRuleFactory(
        org=other_org,
        name="VP",
        condition={"field": "job_title", "op": "contains", "value": "VP"},
        points=20,
    )

    assert queue_nightly_rescores() == 1
    assert BackgroundJob.objects.for_org(org).filter(kind="contacts.rescore").count() == 1
    assert not BackgroundJob.objects.for_org(other_org).exists()
