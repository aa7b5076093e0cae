"""One member picker and one word per action (docs/glossary.md).

The task form used to offer both "Me" and the member's own name, and its edit form called no
assignee "Nobody"; the contact's owner said "Unclaim" on one's own contact and "Release" on
others'. Now: "No one", "Me (name)" once, and "Release".
"""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings
from django.urls import reverse

from contacts.forms import NO_ONE, CompanyForm, ContactForm, TaskForm
from contacts.models import Task
from crm.permissions import Policy
from tests.factories import ContactFactory, TaskFactory, member

TEMPLATES_DIR = Path(settings.BASE_DIR) / "templates"


def choice_labels(field) -> list[str]:
    return [str(label) for _value, label in field.choices]


def test_task_form_lists_me_once_first_and_no_one(org):
    ann = member(org, "owner", user__first_name="Ann", user__last_name="Lee")
    member(org, "admin", user__first_name="Bob", user__last_name="Day")
    form = TaskForm(org=org, policy=Policy(ann), user=ann.user)

    labels = choice_labels(form.fields["assignee"])

    assert labels[0] == NO_ONE == "No one"
    assert labels[1] == "Me (Ann Lee)"
    assert "Ann Lee" not in labels and "Me" not in labels  # once, under one name
    assert "Bob Day" in labels
    assert form["assignee"].value() == ann.user.public_id  # a new task is the creator's


def test_task_edit_form_uses_the_same_words(org):
    ann = member(org, "owner", user__first_name="Ann", user__last_name="Lee")
    task = TaskFactory(org=org, assignee=None)
    form = TaskForm(org=org, policy=Policy(ann), user=ann.user, instance=task)

    labels = choice_labels(form.fields["assignee"])

    assert labels[:2] == ["No one", "Me (Ann Lee)"]
    assert "Nobody" not in labels


def test_a_new_task_can_go_to_no_one_and_defaults_to_its_creator(org):
    ann = member(org, "owner")
    policy = Policy(ann)
    to_no_one = TaskForm(
        {"title": "Call", "priority": "normal", "assignee": ""},
        org=org,
        policy=policy,
        user=ann.user,
    )
    assert to_no_one.is_valid(), to_no_one.errors
    assert to_no_one.service_data()["assignee"] is None
    without_field = TaskForm(
        {"title": "Call", "priority": "normal"}, org=org, policy=policy, user=ann.user
    )
    assert without_field.is_valid()
    assert "assignee" not in without_field.service_data()  # the service assigns the creator


def test_own_scope_members_keep_their_tasks(org):
    rep = member(org, "team", user__first_name="Rae", user__last_name="Ng")
    policy = Policy(rep)
    assert policy.scope("tasks") == "own"
    form = TaskForm(org=org, policy=policy, user=rep.user)
    assert choice_labels(form.fields["assignee"]) == ["Me (Rae Ng)"]


def test_owner_pickers_on_contact_and_company_forms_use_the_same_words(org):
    ann = member(org, "owner", user__first_name="Ann", user__last_name="Lee")
    policy = Policy(ann)
    contact_form = ContactForm(org=org, policy=policy, user=ann.user)
    company_form = CompanyForm(org=org, policy=policy, user=ann.user)
    for form in (contact_form, company_form):
        labels = choice_labels(form.fields["owner"])
        assert labels[:2] == ["No one", "Me (Ann Lee)"], labels


def test_release_is_called_release_on_every_contact(client_as, org, members):
    rep = members["executive"]
    mine = ContactFactory(org=org, owner=rep.user)
    page = client_as(rep).get(reverse("contacts:contact_detail", args=[mine.public_id]))
    html = page.content.decode()
    assert "Release</button>" in html
    assert "Unclaim" not in html


def test_a_task_edited_to_no_one_is_unassigned(client_as, org):
    ann = member(org, "owner")
    task = TaskFactory(org=org, assignee=ann.user, title="Call Ann")
    client_as(ann).post(
        reverse("contacts:task_edit", args=[task.public_id]),
        {"title": "Call Ann", "priority": "normal", "assignee": ""},
    )
    assert Task.objects.get(pk=task.pk).assignee_id is None


# Words the glossary retired, in what members read: templates and the scripts' labels.
RETIRED = {
    r"\bUnclaim\b": "Release",
    r">\s*Nobody\s*<": "No one",
    r"\bUnassigned\b": "No one",
    r">\s*Unclaimed\s*<": "No one",
}


def test_templates_use_the_glossary_words():
    offenders = []
    files = list(TEMPLATES_DIR.rglob("*.html")) + list(
        (Path(settings.BASE_DIR) / "static" / "js").glob("*.js")
    )
    for file in files:
        text = file.read_text(encoding="utf-8")
        for pattern, word in RETIRED.items():
            for match in re.finditer(pattern, text):
                offenders.append(f"{file.name}: {match.group(0).strip()} → {word}")
    assert offenders == []


def test_the_glossary_names_the_words():
    glossary = (Path(settings.BASE_DIR) / "docs" / "glossary.md").read_text(encoding="utf-8")
    for word in ("No one", "Me (", "release", "claim", "archive", "restore", "smart view"):
        assert word in glossary
