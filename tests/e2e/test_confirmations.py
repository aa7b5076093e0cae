"""Destructive actions ask first, the same way, in a real browser: the one dialog
(static/js/app.js, data-confirm) says what will be removed; Cancel and Escape keep it,
the danger button removes it. Works for plain forms (delete task) and htmx ones (delete note).
"""

import re

import pytest
from playwright.sync_api import expect

from contacts.models import Note, Task
from tests.factories import ContactFactory, NoteFactory, TaskFactory

pytestmark = pytest.mark.e2e


def dialog(page):
    return page.get_by_role("alertdialog")


def test_delete_task_asks_cancel_keeps_it_and_confirm_deletes(page, login_as, org, owner):
    contact = ContactFactory(org=org, first_name="Ann", last_name="Lee", owner=owner.user)
    task = TaskFactory(org=org, contact=contact, assignee=owner.user, title="Call Ann")
    login_as(owner.user)
    page.goto(f"/contacts/tasks/{task.public_id}/edit/")

    delete = page.get_by_role("button", name="Delete task")
    delete.click()
    expect(dialog(page)).to_be_visible()
    expect(dialog(page)).to_contain_text("Delete the task “Call Ann”? This can't be undone.")
    expect(dialog(page).get_by_role("button", name="Cancel")).to_be_focused()  # safe default
    dialog(page).get_by_role("button", name="Cancel").click()
    expect(dialog(page)).to_have_count(0)
    page.wait_for_timeout(300)  # nothing was sent: still here, task still there
    assert re.search(r"/tasks/[0-9a-f-]+/edit/$", page.url)
    assert Task.objects.filter(pk=task.pk).exists()

    delete.click()  # Escape keeps it too
    expect(dialog(page)).to_be_visible()
    page.keyboard.press("Escape")
    expect(dialog(page)).to_have_count(0)
    expect(delete).to_be_focused()
    assert Task.objects.filter(pk=task.pk).exists()

    delete.click()
    dialog(page).get_by_role("button", name="Delete task").click()
    page.wait_for_url(lambda url: "/edit/" not in url)
    expect(page.locator("#toasts")).to_contain_text("Task deleted.")
    assert not Task.objects.filter(pk=task.pk).exists()


def test_delete_note_asks_with_its_text_through_htmx(page, login_as, org, owner):
    contact = ContactFactory(org=org, first_name="Ann", last_name="Lee", owner=owner.user)
    note = NoteFactory(org=org, contact=contact, author=owner.user, body="Prefers calls on Monday")
    login_as(owner.user)
    page.goto(f"/contacts/{contact.public_id}/?tab=notes")
    page.evaluate("window.notReloaded = true")

    page.locator(f"#note-{note.public_id}").get_by_role("button", name="Delete").click()
    expect(dialog(page)).to_contain_text("Delete the note “Prefers calls on Monday”?")
    dialog(page).get_by_role("button", name="Cancel").click()
    expect(page.locator(f"#note-{note.public_id}")).to_be_visible()
    assert Note.objects.filter(pk=note.pk).exists()

    page.locator(f"#note-{note.public_id}").get_by_role("button", name="Delete").click()
    dialog(page).get_by_role("button", name="Delete note").click()
    expect(page.locator(f"#note-{note.public_id}")).to_have_count(0)
    assert page.evaluate("window.notReloaded") is True  # htmx swapped the tab in place
    assert not Note.objects.filter(pk=note.pk).exists()
