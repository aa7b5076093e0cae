"""A realistic history for demo contacts: notes, tasks and timeline entries (calls,
meetings, emails), dated so that nothing happens before its contact exists, and the
contacts' activity dates that follow from them.
"""

from __future__ import annotations

import datetime as dt
import random

from django.db import connection
from django.utils import timezone

from ..models import Activity, Contact, Note, Task
from .pools import EMAIL_SUBJECTS, MEETING_SUBJECTS, NOTE_BODIES, TASK_TITLES


def add_history(org, contact_ids: list[int], member_ids: dict, rng: random.Random) -> None:
    """Notes, tasks and timeline entries for the new contacts. Every date follows the
    record it belongs to: "added" is the contact's own created_at (the System panel shows
    the same moment), nothing happens before a contact exists, a note's entry is the
    note's time and a completed task has its "done" entry."""
    now = timezone.now()
    authors = [uid for uid in member_ids.values() if uid]
    owner_id = member_ids.get("owner")
    team_id = member_ids.get("team")
    created = dict(
        Contact.objects.for_org(org).filter(pk__in=contact_ids).values_list("pk", "created_at")
    )

    def since_created(contact_id: int, within: dt.timedelta) -> dt.datetime:
        """A moment in the last `within`, never before the contact was added."""
        span = min(within, max(now - created[contact_id], dt.timedelta(0)))
        return now - span * rng.random()

    notes, activities, tasks = [], [], []
    for contact_id in contact_ids:
        activities.append(
            Activity(
                org=org,
                type=Activity.Type.CREATED,
                contact_id=contact_id,
                actor_id=rng.choice(authors),
                subject="Contact added",
                occurred_at=created[contact_id],
            )
        )
        for _ in range(rng.choice((0, 1, 1, 2, 3))):
            kind = rng.choice(
                (
                    Activity.Type.CALL,
                    Activity.Type.MEETING,
                    Activity.Type.EMAIL_SENT,
                    Activity.Type.EMAIL_RECEIVED,
                    Activity.Type.EMAIL_OPENED,
                )
            )
            subject = {
                Activity.Type.CALL: "Call: checked in on the evaluation",
                Activity.Type.MEETING: rng.choice(MEETING_SUBJECTS),
            }.get(kind, rng.choice(EMAIL_SUBJECTS))
            activities.append(
                Activity(
                    org=org,
                    type=kind,
                    contact_id=contact_id,
                    actor_id=rng.choice(authors),
                    subject=subject,
                    occurred_at=since_created(contact_id, dt.timedelta(days=60)),
                )
            )
        if rng.random() < 0.4:
            notes.append(
                Note(
                    org=org,
                    contact_id=contact_id,
                    author_id=rng.choice(authors),
                    body=rng.choice(NOTE_BODIES),
                )
            )
    for index, contact_id in enumerate(rng.sample(contact_ids, k=min(len(contact_ids), 70))):
        assignee = (
            owner_id if index % 3 == 0 else (team_id if index % 3 == 1 else rng.choice(authors))
        )
        if index % 4 == 0:
            due, status, done_at = now - dt.timedelta(days=rng.randrange(1, 10)), "open", None
        elif index % 4 == 1:
            due, status, done_at = now + dt.timedelta(hours=rng.randrange(1, 30)), "open", None
        elif index % 4 == 2:
            due, status, done_at = now + dt.timedelta(days=rng.randrange(2, 21)), "open", None
        else:
            due = since_created(contact_id, dt.timedelta(days=30))
            status, done_at = "done", due
        tasks.append(
            Task(
                org=org,
                title=rng.choice(TASK_TITLES),
                due_at=due,
                priority=rng.choice(Task.Priority.values),
                status=status,
                completed_at=done_at,
                assignee_id=assignee,
                created_by_id=owner_id,
                contact_id=contact_id,
            )
        )
    Note.objects.for_org(org).bulk_create(notes, batch_size=2000)
    Task.objects.for_org(org).bulk_create(tasks, batch_size=2000)
    # What the services would have written with them: a note's entry, a completed task's.
    for note in notes:
        activities.append(
            Activity(
                org=org,
                type=Activity.Type.NOTE,
                contact_id=note.contact_id,
                actor_id=note.author_id,
                subject=note.body.strip().splitlines()[0][:120],
                body=note.body,
                data={"note": str(note.public_id)},
                occurred_at=note.created_at,
            )
        )
    for task in tasks:
        if task.status == "done":
            activities.append(
                Activity(
                    org=org,
                    type=Activity.Type.TASK_COMPLETED,
                    contact_id=task.contact_id,
                    actor_id=task.assignee_id,
                    subject=task.title,
                    data={"task": str(task.public_id)},
                    occurred_at=task.completed_at,
                )
            )
    Activity.objects.for_org(org).bulk_create(activities, batch_size=2000)
    # The contact's activity dates follow its timeline (bookkeeping entries do not count).
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE contacts_contact c
               SET last_activity_at = a.latest,
                   last_contacted_at = a.contacted
              FROM (SELECT contact_id, MAX(occurred_at) AS latest,
                           MAX(occurred_at) FILTER (WHERE type IN ('call', 'meeting', 'email_sent'))
                             AS contacted
                      FROM contacts_activity
                     WHERE org_id = %s AND type <> 'created'
                     GROUP BY contact_id) a
             WHERE c.id = a.contact_id AND c.org_id = %s
            """,
            [org.pk, org.pk],
        )
