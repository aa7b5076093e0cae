import datetime as dt
import re
import zoneinfo

import pytest
from django.urls import reverse
from django.utils import timezone

from contacts.models import Activity, Note, Task
from crm.models import AuditEvent
from tests.factories import ContactFactory, NoteFactory, TaskFactory, member, role

INBOX = "/contacts/inbox/"


def task_url(name, task):
    return reverse(f"contacts:{name}", kwargs={"public_id": task.public_id})


def test_inbox_url_is_the_sidebar_target():
    assert reverse("contacts:inbox") == INBOX


def test_inbox_lists_only_my_open_tasks_grouped_by_due_date(client_as, org, members):
    me, colleague = members["executive"], members["admin"]
    tz = zoneinfo.ZoneInfo(org.timezone)
    now = timezone.now().astimezone(tz)
    TaskFactory(org=org, assignee=me.user, title="Upcoming call", due_at=now + dt.timedelta(days=3))
    TaskFactory(org=org, assignee=me.user, title="Overdue quote", due_at=now - dt.timedelta(days=2))
    TaskFactory(org=org, assignee=me.user, title="Someday idea", due_at=None)
    TaskFactory(
        org=org, assignee=me.user, title="Later today", due_at=now.replace(hour=23, minute=59)
    )
    TaskFactory(org=org, assignee=colleague.user, title="Colleague task", due_at=now)
    TaskFactory(
        org=org,
        assignee=me.user,
        title="Finished long ago",
        status="done",
        completed_at=now - dt.timedelta(days=5),
    )

    html = client_as(me).get(INBOX).content.decode()

    order = ["Overdue quote", "Later today", "Upcoming call", "Someday idea"]
    positions = [html.index(title) for title in order]
    assert positions == sorted(positions)
    assert html.index('id="group-overdue"') < positions[0]
    assert html.index('id="group-none"') < positions[3]
    assert "Colleague task" not in html
    assert "Finished long ago" not in html


def test_inbox_is_empty_state_when_caught_up(client_as, owner):
    assert "all caught up" in client_as(owner).get(INBOX).content.decode()


def test_complete_and_reopen_inline_return_the_row(client_as, org, owner):
    contact = ContactFactory(org=org)
    task = TaskFactory(org=org, assignee=owner.user, contact=contact, title="Send deck")
    client = client_as(owner, htmx=True)

    done = client.post(task_url("task_complete", task), {"context": "inbox"})
    assert done.status_code == 200
    assert f'id="task-{task.public_id}"' in done.content.decode()
    assert "is-done" in done.content.decode()
    task.refresh_from_db()
    assert task.status == Task.Status.DONE
    assert contact.activities.filter(type=Activity.Type.TASK_COMPLETED).exists()

    reopened = client.post(task_url("task_reopen", task), {"context": "inbox"})
    assert "is-done" not in reopened.content.decode()
    task.refresh_from_db()
    assert task.status == Task.Status.OPEN and task.completed_at is None


def test_someone_elses_task_is_404_for_an_own_scope_member(client_as, org, members):
    task = TaskFactory(org=org, assignee=members["admin"].user)
    response = client_as(members["team"]).post(task_url("task_complete", task))
    assert response.status_code == 404
    task.refresh_from_db()
    assert task.status == Task.Status.OPEN


def test_viewer_cannot_complete_tasks(client_as, org, members):
    task = TaskFactory(org=org, assignee=members["viewer"].user)
    assert client_as(members["viewer"]).post(task_url("task_complete", task)).status_code == 403


def test_other_org_task_is_404(client_as, org, other_org):
    task = TaskFactory(org=org)
    outsider = member(other_org, "owner")
    assert client_as(outsider).post(task_url("task_complete", task)).status_code == 404
    assert client_as(outsider).get(task_url("task_edit", task)).status_code == 404


def test_add_a_task_from_the_inbox_assigns_it_to_me(client_as, owner):
    client_as(owner).post(
        reverse("contacts:inbox_task_create"),
        {"title": "Prepare QBR", "priority": "high", "due_at": "2026-05-04T09:30"},
    )
    task = Task.objects.for_org(owner.org).get()
    assert task.assignee == owner.user
    assert task.created_by == owner.user
    # Read in the org's timezone (the fixture org is UTC).
    assert task.due_at == dt.datetime(2026, 5, 4, 9, 30, tzinfo=dt.UTC)
    assert AuditEvent.objects.for_org(owner.org).filter(verb="task.created").exists()


def test_add_a_task_on_a_contact(client_as, org, owner):
    contact = ContactFactory(org=org, owner=owner.user)
    url = reverse("contacts:contact_task_create", kwargs={"public_id": contact.public_id})
    response = client_as(owner, htmx=True).post(url, {"title": "Call back", "priority": "normal"})

    assert response.status_code == 200
    assert "Call back" in response.content.decode()
    assert contact.tasks.get().title == "Call back"


def test_task_title_is_required(client_as, owner):
    response = client_as(owner).post(
        reverse("contacts:inbox_task_create"), {"title": "", "priority": "normal"}
    )
    assert response.status_code == 200
    assert not Task.objects.for_org(owner.org).exists()


def test_edit_and_delete_a_task(client_as, org, owner):
    task = TaskFactory(org=org, assignee=owner.user, title="Old title")
    client = client_as(owner)

    client.post(task_url("task_edit", task), {"title": "New title", "priority": "urgent"})
    task.refresh_from_db()
    assert (task.title, task.priority) == ("New title", "urgent")

    client.post(task_url("task_delete", task))
    assert not Task.objects.filter(pk=task.pk).exists()
    assert AuditEvent.objects.for_org(org).filter(verb="task.deleted").exists()


@pytest.mark.parametrize("next_value", ["{{ 7*7 }}", "inbox", "https://evil.example/", "//evil"])
def test_a_next_that_is_not_a_path_of_this_site_falls_back_to_the_inbox(
    client_as, org, owner, next_value
):
    task = TaskFactory(org=org, assignee=owner.user)

    response = client_as(owner).post(task_url("task_delete", task), {"next": next_value})

    assert response.status_code == 302
    assert response["Location"] == reverse("contacts:inbox")


# Quick-log from the inbox -----------------------------------------------------------------


def test_quick_log_a_call_from_the_inbox(client_as, org, owner):
    contact = ContactFactory(org=org, owner=owner.user, first_name="Ada")
    response = client_as(owner, htmx=True).post(
        reverse("contacts:inbox_log"),
        {
            "contact": str(contact.public_id),
            "type": "call",
            "subject": "Renewal chat",
            "body": "Wants a discount.",
        },
    )

    assert response.status_code == 200
    assert 'id="log-panel"' in response.content.decode()
    entry = contact.activities.get(type=Activity.Type.CALL)
    assert (entry.subject, entry.body) == ("Renewal chat", "Wants a discount.")
    contact.refresh_from_db()
    assert contact.last_contacted_at is not None


def test_quick_log_a_meeting_from_the_contact_page(client_as, org, owner):
    contact = ContactFactory(org=org)
    url = reverse("contacts:contact_log", kwargs={"public_id": contact.public_id})
    response = client_as(owner, htmx=True).post(url, {"type": "meeting", "subject": "Onsite demo"})

    assert response.status_code == 200
    assert "Onsite demo" in response.content.decode()
    assert contact.activities.filter(type=Activity.Type.MEETING).count() == 1


def test_quick_log_cannot_target_a_contact_outside_my_scope(client_as, org, members):
    rep = members["team"]
    not_mine = ContactFactory(org=org, owner=members["admin"].user)

    response = client_as(rep).post(
        reverse("contacts:inbox_log"),
        {"contact": str(not_mine.public_id), "type": "call", "subject": "x"},
    )

    assert response.status_code == 200
    assert "Choose a contact from the list." in response.content.decode()
    assert not not_mine.activities.exists()


def test_contact_picker_searches_only_contacts_in_scope(client_as, org, members):
    rep = members["team"]
    ContactFactory(org=org, owner=rep.user, first_name="Adalbert", last_name="Mine")
    ContactFactory(org=org, owner=members["admin"].user, first_name="Adalind", last_name="Theirs")

    html = client_as(rep).get(reverse("contacts:contact_picker"), {"q": "adal"}).content.decode()

    assert "Adalbert Mine" in html and "Theirs" not in html


def test_contact_picker_does_not_match_on_an_email_the_member_may_not_see(client_as, org):
    executive = role(org, "executive")
    executive.field_rules = {"email": "hidden"}
    executive.save()
    ContactFactory(org=org, first_name="Quiet", last_name="Person", email="zebra@example.com")
    client = client_as(member(org, "executive"))

    by_email = client.get(reverse("contacts:contact_picker"), {"q": "zebra"}).content.decode()
    by_name = client.get(reverse("contacts:contact_picker"), {"q": "quiet"}).content.decode()

    assert "Quiet Person" not in by_email
    assert "Quiet Person" in by_name and "zebra@example.com" not in by_name


def test_quick_log_without_a_summary_is_a_form_error(client_as, org, owner):
    contact = ContactFactory(org=org)
    response = client_as(owner).post(
        reverse("contacts:inbox_log"), {"contact": str(contact.public_id), "type": "call"}
    )
    assert "Say in a few words what happened." in response.content.decode()
    assert not contact.activities.exists()


# Notes ------------------------------------------------------------------------------------


def test_note_author_edits_and_the_timeline_follows(client_as, org, owner):
    contact = ContactFactory(org=org)
    client = client_as(owner)
    client.post(
        reverse("contacts:contact_note_create", kwargs={"public_id": contact.public_id}),
        {"body": "First draft"},
    )
    note = contact.notes.get()

    client.post(
        reverse("contacts:note_edit", kwargs={"public_id": note.public_id}), {"body": "Final text"}
    )

    note.refresh_from_db()
    assert note.body == "Final text"
    assert contact.activities.get(type=Activity.Type.NOTE).body == "Final text"
    assert AuditEvent.objects.for_org(org).get(verb="note.updated").changes == {
        "body": ["First draft", "Final text"]
    }


def test_notes_load_more_walks_every_note_once_even_with_equal_times(client_as, org, owner):
    contact = ContactFactory(org=org)
    notes = [NoteFactory(org=org, contact=contact, body=f"Body {i:02d}") for i in range(33)]
    # Ten notes share one moment: the id breaks the tie, so none repeats or goes missing.
    Note.objects.filter(pk__in=[n.pk for n in notes[10:20]]).update(created_at=notes[10].created_at)
    client = client_as(owner, htmx=True)
    detail = reverse("contacts:contact_detail", kwargs={"public_id": contact.public_id})

    first = client.get(f"{detail}?tab=notes", HTTP_HX_TARGET="contact-tabs").content.decode()
    more_href = first.split('id="notes-more"')[1].split('hx-get="')[1].split('"')[0]
    second = client.get(more_href.replace("&amp;", "&"), HTTP_HX_TARGET="notes-more")
    second = second.content.decode()

    body = re.compile(r'class="note-body">(?:<p>)?(Body \d\d)')
    shown = body.findall(first) + body.findall(second)
    assert sorted(shown) == sorted(f"Body {i:02d}" for i in range(33))
    assert 'id="notes-more"' not in second


def test_only_the_author_or_an_admin_changes_a_note(client_as, org, members):
    # A director edits the contacts of their team (not all contacts), so is not an admin.
    director = members["director"]
    contact = ContactFactory(org=org, owner=director.user)
    note = NoteFactory(org=org, contact=contact, author=members["admin"].user, body="Admin's note")
    director_client = client_as(director)

    edit = reverse("contacts:note_edit", kwargs={"public_id": note.public_id})
    delete = reverse("contacts:note_delete", kwargs={"public_id": note.public_id})
    assert director_client.get(edit).status_code == 403
    assert director_client.post(edit, {"body": "changed"}).status_code == 403
    assert director_client.post(delete).status_code == 403
    note.refresh_from_db()
    assert note.body == "Admin's note"

    client_as(members["owner"]).post(delete)
    assert not Note.objects.filter(pk=note.pk).exists()


def test_notes_of_another_org_are_404(client_as, org, other_org):
    note = NoteFactory(org=org)
    outsider = client_as(member(other_org, "owner"))
    assert (
        outsider.get(
            reverse("contacts:note_edit", kwargs={"public_id": note.public_id})
        ).status_code
        == 404
    )


@pytest.mark.parametrize("role_key", ["board", "support"])
def test_inbox_respects_the_tasks_module(client_as, members, role_key):
    expected = 403 if role_key == "board" else 200
    assert client_as(members[role_key]).get(INBOX).status_code == expected


def test_only_the_inbox_is_the_current_sidebar_entry_on_the_inbox(client_as, owner):
    html = client_as(owner).get(INBOX).content.decode()
    current = [line for line in html.splitlines() if 'class="nav-link is-active"' in line]
    assert len(current) == 1
    assert 'href="/contacts/inbox/"' in current[0]


def test_contact_picker_starts_with_recently_active_then_newest_contacts(client_as, org, owner):
    quiet = ContactFactory(org=org, first_name="Quiet", last_name="Newcomer")
    busy = ContactFactory(org=org, first_name="Busy", last_name="Regular")
    busy.last_activity_at = timezone.now()
    busy.save()

    html = client_as(owner).get(reverse("contacts:inbox")).content.decode()
    select = html[
        html.index('id="id_contact"') : html.index("</select>", html.index('id="id_contact"'))
    ]

    assert select.index(str(busy.public_id)) < select.index(str(quiet.public_id))
