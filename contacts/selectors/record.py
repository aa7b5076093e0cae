"""Reads for the contact page (contacts/views/record.py): the contact with its tab counts, its
timeline, tasks and notes, and the look-ups behind its forms and actions.

Each takes the organization and the member's policy and returns rows or a queryset that stays
inside both: another org's record or one outside the member's scope is simply not there, and
the view turns that into a 404 with `get_object_or_404(queryset, public_id=...)`.
"""

from __future__ import annotations

from django.db.models import Count, F, OuterRef, QuerySet, Subquery
from django.utils import timezone

from ..models import Activity, Company, Contact, ImportJob, Note, Task
from ..timeline import BOOKKEEPING_TYPES, visible_entries

# Search vectors are for the database; a page never reads them, so they are not fetched.
RECORD_DEFERRED = ("search_vector", "company__search_vector")

# The timeline filter: one choice per kind a rep thinks in, each a set of entry types.
TIMELINE_FILTERS = {
    "note": ("Notes", {Activity.Type.NOTE}),
    "call": ("Calls", {Activity.Type.CALL}),
    "meeting": ("Meetings", {Activity.Type.MEETING}),
    "email": (
        "Emails",
        {
            Activity.Type.EMAIL_SENT,
            Activity.Type.EMAIL_RECEIVED,
            Activity.Type.EMAIL_OPENED,
            Activity.Type.EMAIL_CLICKED,
        },
    ),
    "sms": ("SMS", {Activity.Type.SMS}),
    "form_submit": ("Form submissions", {Activity.Type.FORM_SUBMIT}),
    "stage_change": ("Stage changes", {Activity.Type.STAGE_CHANGE}),
    "deal": (
        "Deals",
        {
            Activity.Type.DEAL_CREATED,
            Activity.Type.DEAL_STAGE_CHANGED,
            Activity.Type.DEAL_WON,
            Activity.Type.DEAL_LOST,
            Activity.Type.DEAL_REOPENED,
        },
    ),
    # Open tasks show above the entries as upcoming; completed ones are entries.
    "task_completed": ("Tasks", {Activity.Type.TASK_COMPLETED}),
    "system": ("Record changes", set(BOOKKEEPING_TYPES)),
}


def scoped_contacts(org, policy) -> QuerySet:
    """The contacts of `org` that the member may see."""
    return Contact.objects.for_org(org).filter(policy.scope_filter("contacts"))


def contact_in_scope(org, policy, contact_id) -> bool:
    """Whether the member may still open contact `contact_id` (after giving it away, say)."""
    return scoped_contacts(org, policy).filter(pk=contact_id).exists()


def scoped_tasks(org, policy) -> QuerySet:
    return Task.objects.for_org(org).filter(policy.scope_filter("tasks", "assignee"))


def contacts_with_counts(org, policy) -> QuerySet:
    """The member's contacts as the contact page shows them: company, owner and tags loaded,
    and the open tasks (the ones the member may see) and notes counted for the tab labels,
    all in two queries."""
    open_tasks = scoped_tasks(org, policy).filter(contact=OuterRef("pk"), status=Task.Status.OPEN)
    notes = Note.objects.for_org(org).filter(contact=OuterRef("pk"))
    return (
        scoped_contacts(org, policy)
        .select_related("company", "owner")
        .defer(*RECORD_DEFERRED)
        .prefetch_related("tags")
        .annotate(open_task_count=_count(open_tasks), note_count=_count(notes))
    )


def _count(related: QuerySet) -> Subquery:
    """How many rows of `related` (filtered on OuterRef("pk")) belong to the outer contact."""
    return Subquery(related.order_by().values("contact").annotate(n=Count("*")).values("n")[:1])


def timeline_entries(org, policy, contact: Contact, kind: str, field_keys) -> QuerySet:
    """The contact's timeline as this member may see it, of one kind of TIMELINE_FILTERS (""
    for all), with each entry's actor. `field_keys`: the org's contact field keys."""
    queryset = visible_entries(
        Activity.objects.for_org(org).filter(contact=contact), policy, field_keys
    )
    if kind in TIMELINE_FILTERS:
        queryset = queryset.filter(type__in=TIMELINE_FILTERS[kind][1])
    return queryset.select_related("actor")


def import_origin(org, contact: Contact) -> Activity | None:
    """The first entry of an imported contact's timeline, "Imported from <file>": imports
    write no timeline row for the contacts they create (a million rows nobody would read
    otherwise); the contact knows its import instead. Not saved: made for the page."""
    if contact.import_job_id is None:
        return None
    job = (
        ImportJob.objects.for_org(org)
        .filter(pk=contact.import_job_id)
        .select_related("created_by")
        .first()
    )
    if job is None:
        return None
    return Activity(
        org_id=contact.org_id,
        contact=contact,
        type=Activity.Type.IMPORTED,
        actor=job.created_by,
        subject=job.timeline_subject,
        data=job.timeline_data,
        occurred_at=contact.created_at,
    )


def upcoming_tasks(org, policy, contact: Contact, limit: int) -> list[Task]:
    """The contact's open tasks this member may see, soonest due first (undated last), each
    with `is_overdue` set."""
    tasks = list(
        scoped_tasks(org, policy)
        .filter(contact=contact, status=Task.Status.OPEN)
        .select_related("assignee")
        .order_by(F("due_at").asc(nulls_last=True), "id")[:limit]
    )
    now = timezone.now()
    for task in tasks:
        task.is_overdue = task.due_at is not None and task.due_at < now
    return tasks


def contact_tasks(org, policy, contact: Contact, done_limit: int) -> tuple[list, list]:
    """(open tasks by due date, the latest `done_limit` completed ones) of the contact that
    this member may see."""
    tasks = scoped_tasks(org, policy).filter(contact=contact).select_related("assignee")
    return (
        list(tasks.filter(status=Task.Status.OPEN).order_by("due_at", "id")),
        list(tasks.filter(status=Task.Status.DONE).order_by("-completed_at", "-id")[:done_limit]),
    )


def contact_notes(org, contact: Contact) -> QuerySet:
    return Note.objects.for_org(org).filter(contact=contact).select_related("author")


def notes_with_contacts(org) -> QuerySet:
    """Notes of `org` with their contact and author (check the contact's scope apart)."""
    return Note.objects.for_org(org).select_related("contact", "author")


def company_suggestions(org, policy, limit: int = 50) -> list[tuple[str, str]]:
    """(name, domain) of the first `limit` live companies by name that the member may see:
    what the contact form's company input suggests before anything is typed."""
    return list(
        Company.objects.for_org(org)
        .filter(policy.scope_filter("companies"), is_archived=False)
        .order_by("name")
        .values_list("name", "domain")[:limit]
    )
