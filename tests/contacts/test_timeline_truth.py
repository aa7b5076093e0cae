"""The timeline tells the truth: every change made through a service shows who, when and
before → after (a burst by one person as one entry), a hidden field's change stays hidden,
the creation date is the record's own, and tasks show as upcoming or done."""

import datetime as dt
import importlib
import random

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from contacts import demo, services
from contacts.fields import contact_field_catalog
from contacts.models import Activity, Contact, Task
from contacts.timeline import visible_entries
from crm.permissions import Policy
from crm.services import Actor
from tests.factories import (
    CompanyFactory,
    ContactFactory,
    CustomFieldDefinitionFactory,
    TaskFactory,
    member,
    role,
)

UPCOMING_MARK = 'aria-label="Upcoming tasks"'
TIMELINE_MARK = 'aria-label="Timeline, newest first"'


def detail_url(contact, **params):
    url = reverse("contacts:contact_detail", kwargs={"public_id": contact.public_id})
    if params:
        url += "?" + "&".join(f"{k}={v}" for k, v in params.items())
    return url


def field_edit_url(contact, key):
    return reverse(
        "contacts:contact_field_edit", kwargs={"public_id": contact.public_id, "key": key}
    )


def timeline_html(client, contact, **params) -> str:
    response = client.get(detail_url(contact, tab="timeline", **params))
    assert response.status_code == 200
    return response.content.decode()


def entries_part(html: str) -> str:
    """The timeline's entries (after the upcoming tasks, if any); "" when there are none."""
    if TIMELINE_MARK not in html:
        return ""
    return html.split(TIMELINE_MARK, 1)[1]


def upcoming_part(html: str) -> str:
    if UPCOMING_MARK not in html:
        return ""
    return html.split(UPCOMING_MARK, 1)[1].split("</ol>", 1)[0]


def inline_edit(client, contact, key, value):
    response = client.post(field_edit_url(contact, key), {key: value})
    assert response.status_code == 200, response.content[:500]
    return response


def update(membership, contact, **data):
    membership.refresh_from_db()
    return services.contact_update(
        contact=contact,
        actor=Actor.for_user(membership.user),
        data=data,
        policy=Policy(membership),
    )


def change_entries(contact):
    return list(contact.activities.filter(type=Activity.Type.UPDATED).order_by("occurred_at"))


def age_entries(contact, minutes: int) -> None:
    """Move the contact's change entries back in time, as if the edits were older."""
    for entry in change_entries(contact):
        entry.occurred_at -= dt.timedelta(minutes=minutes)
        entry.data["first_at"] = (
            dt.datetime.fromisoformat(entry.data["first_at"]) - dt.timedelta(minutes=minutes)
        ).isoformat()
        entry.save(update_fields=["occurred_at", "data"])


@pytest.fixture
def ada(org, owner):
    company = CompanyFactory(org=org, name="Acme Rockets", domain="acme.example")
    return ContactFactory(
        org=org,
        first_name="Ada",
        last_name="Lovelace",
        job_title="VP Engineering",
        department="R&D",
        company=company,
        owner=owner.user,
    )


@pytest.fixture
def no_job_title_role(org):
    """Executives may not see job titles."""
    executive = role(org, "executive")
    executive.field_rules = {"job_title": "hidden"}
    executive.save()
    return executive


# Field changes ------------------------------------------------------------------------------


def test_inline_edit_shows_on_the_timeline_with_who_before_and_after(client_as, owner, ada):
    inline_edit(client_as(owner, htmx=True), ada, "job_title", "Chief Technology Officer")

    html = entries_part(timeline_html(client_as(owner), ada))

    assert "Job title" in html
    assert 'class="change-before">VP Engineering<' in html
    assert 'class="change-after">Chief Technology Officer<' in html
    assert owner.user.display_name in html
    entry = ada.activities.get(type=Activity.Type.UPDATED)
    assert entry.actor == owner.user
    assert abs(entry.occurred_at - timezone.now()) < dt.timedelta(minutes=1)


def test_record_changes_filter_shows_field_changes(client_as, owner, ada):
    inline_edit(client_as(owner, htmx=True), ada, "job_title", "CTO")

    html = entries_part(timeline_html(client_as(owner), ada, type="system"))

    assert 'class="change-after">CTO<' in html


def test_change_entry_is_written_with_the_change_and_not_without_one(org, owner, ada):
    update(owner, ada, job_title="VP Engineering")  # the same value: nothing changed
    assert change_entries(ada) == []

    update(owner, ada, job_title="CTO")
    (entry,) = change_entries(ada)
    assert entry.data["fields"] == ["job_title"]
    assert entry.data["changes"][0]["before"] == "VP Engineering"
    assert entry.data["changes"][0]["after"] == "CTO"


def test_a_burst_of_edits_by_one_person_is_one_entry_listing_each_field(client_as, owner, ada):
    client = client_as(owner, htmx=True)
    inline_edit(client, ada, "job_title", "CTO")
    inline_edit(client, ada, "department", "Platform")
    inline_edit(client, ada, "job_title", "Chief Technology Officer")

    (entry,) = change_entries(ada)
    assert entry.data["fields"] == ["job_title", "department"]
    by_field = {c["field"]: c for c in entry.data["changes"]}
    # A field changed twice keeps where it started and where it ended.
    assert (by_field["job_title"]["before"], by_field["job_title"]["after"]) == (
        "VP Engineering",
        "Chief Technology Officer",
    )
    html = entries_part(timeline_html(client_as(owner), ada))
    assert html.count('data-type="updated"') == 1
    assert 'class="change-after">Platform<' in html
    assert 'class="change-after">Chief Technology Officer<' in html
    assert ">CTO<" not in html


def test_an_edit_that_undoes_the_burst_leaves_no_empty_entry(owner, ada):
    update(owner, ada, job_title="CTO")
    update(owner, ada, job_title="VP Engineering")

    assert change_entries(ada) == []


def test_edits_by_someone_else_or_later_start_a_new_entry(org, owner, ada):
    colleague = member(org, "admin")
    update(owner, ada, job_title="CTO")
    update(colleague, ada, department="Platform")  # another person
    assert len(change_entries(ada)) == 2

    age_entries(ada, minutes=30)
    update(colleague, ada, department="Research")  # the same person, much later
    entries = change_entries(ada)
    assert len(entries) == 3
    assert entries[-1].data["changes"][0]["before"] == "Platform"


def test_another_entry_in_between_ends_the_burst(org, owner, ada):
    update(owner, ada, job_title="CTO")
    services.quick_log(
        org=org, actor=Actor.for_user(owner.user), type="call", contact=ada, subject="Intro"
    )
    update(owner, ada, department="Platform")

    assert len(change_entries(ada)) == 2


def test_tags_choices_and_custom_fields_show_readable_values(org, owner, ada):
    CustomFieldDefinitionFactory(
        org=org, key="budget", label="Budget", field_type="number", entity="contact"
    )
    update(owner, ada, status="inactive", tags=["vip", "beta"], **{"custom.budget": "1200"})

    (entry,) = change_entries(ada)
    by_field = {c["field"]: c for c in entry.data["changes"]}
    assert by_field["status"]["after"] == "Inactive"
    assert by_field["tags"]["after"] == ["beta", "vip"]
    assert by_field["custom.budget"]["label"] == "Budget"


def test_stage_and_owner_keep_their_own_entries(org, owner, ada):
    update(owner, ada, lifecycle_stage="customer", job_title="CTO")

    (entry,) = change_entries(ada)
    assert entry.data["fields"] == ["job_title"]
    assert ada.activities.filter(type=Activity.Type.STAGE_CHANGE).count() == 1


def test_change_values_are_escaped(client_as, owner, ada):
    inline_edit(client_as(owner, htmx=True), ada, "job_title", "<b>boss</b>")

    html = entries_part(timeline_html(client_as(owner), ada))

    assert "&lt;b&gt;boss&lt;/b&gt;" in html
    assert "<b>boss</b>" not in html


# Field visibility -------------------------------------------------------------------------------


def test_a_hidden_fields_change_is_not_shown_to_who_cannot_see_it(
    client_as, org, owner, ada, no_job_title_role
):
    inline_edit(client_as(owner, htmx=True), ada, "job_title", "Chief Technology Officer")
    executive = member(org, "executive")

    hidden = timeline_html(client_as(executive), ada)  # the whole page
    shown = entries_part(timeline_html(client_as(owner), ada))

    assert "Chief Technology Officer" not in hidden and "VP Engineering" not in hidden
    assert "Job title" not in hidden
    assert 'class="change-after">Chief Technology Officer<' in shown
    # Left out in SQL, so a page of the timeline stays a full page.
    keys = [spec.key for spec in contact_field_catalog(org)]
    entries = Activity.objects.for_org(org).filter(contact=ada, type=Activity.Type.UPDATED)
    assert entries.exists()
    assert not visible_entries(entries, Policy(executive), keys).exists()
    assert visible_entries(entries, Policy(owner), keys).exists()


def test_in_a_mixed_burst_only_the_visible_fields_show(
    client_as, org, owner, ada, no_job_title_role
):
    client = client_as(owner, htmx=True)
    inline_edit(client, ada, "job_title", "Chief Technology Officer")
    inline_edit(client, ada, "department", "Platform")
    executive = member(org, "executive")

    html = timeline_html(client_as(executive), ada)  # the whole page

    assert 'class="change-after">Platform<' in entries_part(html)
    assert "Chief Technology Officer" not in html and "Job title" not in html


def test_hidden_changes_do_not_leak_on_the_company_page(
    client_as, org, owner, ada, no_job_title_role
):
    inline_edit(client_as(owner, htmx=True), ada, "job_title", "Chief Technology Officer")
    executive = member(org, "executive")
    company_url = reverse("contacts:company_detail", kwargs={"public_id": ada.company.public_id})

    hidden = client_as(executive).get(company_url).content.decode()
    shown = client_as(owner).get(company_url).content.decode()

    assert "Chief Technology Officer" not in hidden
    assert "Chief Technology Officer" in shown


def test_company_changes_show_on_the_company_page(client_as, org, owner, members, ada):
    company = ada.company
    actor = Actor.for_user(owner.user)
    services.company_update(company=company, actor=actor, data={"name": "Acme Space"})
    services.company_update(company=company, actor=actor, data={"domain": "space.example"})
    company_url = reverse("contacts:company_detail", kwargs={"public_id": company.public_id})

    (entry,) = company.activities.filter(type=Activity.Type.UPDATED)
    assert entry.contact_id is None
    assert entry.data["fields"] == ["name", "domain"]
    # Contact field rules do not apply to a company's fields that share a key.
    executive = role(org, "executive")
    executive.field_rules = {"name": "hidden", "domain": "hidden"}
    executive.save()
    html = client_as(member(org, "executive")).get(company_url).content.decode()
    assert 'class="change-before">Acme Rockets<' in html
    assert 'class="change-after">Acme Space<' in html


# One source of truth for dates ------------------------------------------------------------------


def test_created_entry_on_the_timeline_is_the_records_created_date(client_as, org, owner):
    response = client_as(owner).post(
        reverse("contacts:contact_create"), {"first_name": "Grace", "last_name": "Hopper"}
    )
    assert response.status_code in (200, 302)
    contact = Contact.objects.for_org(org).get(first_name="Grace")

    created = contact.activities.get(type=Activity.Type.CREATED)
    assert created.occurred_at == contact.created_at

    shown = timezone.localtime(contact.created_at).strftime("%b %-d, %Y, %H:%M")
    details = client_as(owner).get(detail_url(contact)).content.decode()
    assert shown in details  # the System panel's "Created"
    assert shown in entries_part(timeline_html(client_as(owner), contact))


def test_demo_history_dates_follow_the_records(org, members):
    demo.seed_realistic(org, contacts=30, companies=4, acme=False, rng=random.Random(7), log=str)

    created = {c.pk: c.created_at for c in Contact.objects.for_org(org)}
    activities = Activity.objects.for_org(org).filter(contact__isnull=False)
    for entry in activities.filter(type=Activity.Type.CREATED):
        assert entry.occurred_at == created[entry.contact_id]
    for entry in activities.exclude(type=Activity.Type.CREATED):
        assert entry.occurred_at >= created[entry.contact_id], entry.type
    done = Task.objects.for_org(org).filter(status="done", contact__isnull=False)
    assert done.exists()
    for task in done:
        assert activities.filter(
            type=Activity.Type.TASK_COMPLETED, data__task=str(task.public_id)
        ).exists()


def test_migration_fixes_dates_and_done_tasks_written_before(org, owner):
    migration = importlib.import_module("contacts.migrations.0013_timeline_dates_from_records")
    contact = ContactFactory(org=org)
    wrong = Activity.objects.create(
        org=org,
        contact=contact,
        type=Activity.Type.CREATED,
        subject="Contact was added",
        occurred_at=contact.created_at - dt.timedelta(days=90),
    )
    done = TaskFactory(
        org=org,
        contact=contact,
        assignee=owner.user,
        status="done",
        completed_at=timezone.now() - dt.timedelta(days=2),
    )
    logged = TaskFactory(org=org, contact=contact, title="Already logged")
    services.task_complete(task=logged, actor=Actor.for_user(owner.user))

    with connection.cursor() as cursor:
        cursor.execute(migration.CREATED_FROM_RECORDS)
        cursor.execute(migration.DONE_TASK_ENTRIES)
        cursor.execute(migration.DONE_TASK_ENTRIES)  # twice: still one entry per task

    wrong.refresh_from_db()
    assert wrong.occurred_at == contact.created_at
    assert wrong.subject == "Contact added"
    entries = contact.activities.filter(type=Activity.Type.TASK_COMPLETED)
    assert entries.count() == 2
    entry = entries.get(data__task=str(done.public_id))
    assert entry.occurred_at == done.completed_at and entry.subject == done.title


# Tasks: upcoming and done -----------------------------------------------------------------------


def test_open_task_shows_as_upcoming_and_completed_as_done(client_as, org, owner, ada):
    due = timezone.now() + dt.timedelta(days=2)
    task = TaskFactory(
        org=org, contact=ada, assignee=owner.user, title="Send the proposal", due_at=due
    )
    client = client_as(owner)

    before = timeline_html(client, ada)
    assert "Send the proposal" in upcoming_part(before)
    assert "Send the proposal" not in entries_part(before)

    url = reverse("contacts:task_complete", kwargs={"public_id": task.public_id})
    assert client.post(url).status_code in (200, 302)

    after = timeline_html(client, ada)
    assert "Send the proposal" not in upcoming_part(after)
    done = entries_part(after)
    assert "Send the proposal" in done
    assert "Task completed" in done


def test_reopened_task_goes_back_to_upcoming(client_as, org, owner, ada):
    task = TaskFactory(org=org, contact=ada, assignee=owner.user, title="Book the demo")
    actor = Actor.for_user(owner.user)
    services.task_complete(task=task, actor=actor)
    services.task_reopen(task=task, actor=actor)

    html = timeline_html(client_as(owner), ada)

    assert "Book the demo" in upcoming_part(html)
    assert "Book the demo" not in entries_part(html)


def test_overdue_open_task_is_marked(client_as, org, owner, ada):
    TaskFactory(
        org=org,
        contact=ada,
        assignee=owner.user,
        title="Call back",
        due_at=timezone.now() - dt.timedelta(days=1),
    )

    assert "Overdue" in upcoming_part(timeline_html(client_as(owner), ada))


def test_upcoming_tasks_follow_the_task_scope(client_as, org, owner, ada):
    TaskFactory(org=org, contact=ada, assignee=owner.user, title="Owner's private task")
    team_member = member(org, "team")
    ada.owner = team_member.user
    ada.save()

    TaskFactory(org=org, contact=ada, assignee=team_member.user, title="My own task")

    html = timeline_html(client_as(team_member), ada)

    assert "My own task" in upcoming_part(html)
    assert "Owner&#x27;s private task" not in html and "private task" not in html


def test_timeline_query_count_does_not_grow_with_changes_and_tasks(client_as, org, owner, ada):
    client = client_as(owner)

    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            timeline_html(client, ada)
        return len(ctx.captured_queries)

    update(owner, ada, job_title="CTO")
    TaskFactory(org=org, contact=ada, assignee=owner.user)
    queries()
    few = queries()

    for n in range(15):
        age_entries(ada, minutes=30)
        update(member(org, "admin"), ada, department=f"Team {n}")
        TaskFactory(org=org, contact=ada, assignee=member(org, "team").user)

    assert queries() == few


def test_a_long_history_pages(client_as, org, owner, ada):
    start = timezone.now() - dt.timedelta(days=30)
    Activity.objects.bulk_create(
        Activity(
            org=org,
            contact=ada,
            actor=owner.user,
            type=Activity.Type.UPDATED,
            data={
                "fields": ["department"],
                "changes": [
                    {"field": "department", "label": "Department", "before": "", "after": f"D{i}"}
                ],
                "first_at": (start + dt.timedelta(minutes=i)).isoformat(),
            },
            occurred_at=start + dt.timedelta(minutes=i),
        )
        for i in range(1000)
    )

    html = entries_part(timeline_html(client_as(owner), ada))

    assert 'class="change-after">D999<' in html
    assert 'class="change-after">D900<' not in html
    assert 'id="timeline-more"' in html
