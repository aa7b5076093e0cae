"""The forms of the work around a contact: a task, a note, the quick log of a call or meeting,
and the contact picker the inbox's quick log uses."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from crm.models import User

from ..models import Activity, Contact, Task
from ..services import QUICK_LOG_TYPES
from .common import BLANK, MemberChoiceField, active_member_users, datetime_field


class ContactPickField(forms.Field):
    """A contact chosen by public id from the contacts the member may see.

    The widget is a select filled by an HTMX search (a million contacts never render as
    options); cleaning looks the id up in `queryset`, so a forged id of an unreachable
    contact is simply "not found"."""

    widget = forms.Select

    def __init__(self, *, queryset, **kwargs):
        self.queryset = queryset
        super().__init__(**kwargs)

    def set_options(self, contacts):
        self.widget.choices = BLANK + [(str(c.public_id), _contact_label(c)) for c in contacts]

    def to_python(self, value):
        if value in self.empty_values:
            return None
        try:
            return self.queryset.get(public_id=value)
        except (Contact.DoesNotExist, ValidationError, ValueError):
            raise ValidationError("Choose a contact from the list.") from None


def _contact_label(contact: Contact) -> str:
    if contact.email and contact.full_name != contact.email:
        return f"{contact.full_name} · {contact.email}"
    return contact.full_name


class TaskForm(forms.Form):
    title = forms.CharField(max_length=300)
    due_at = datetime_field("Due", help_text="Leave empty for no due date.")
    priority = forms.ChoiceField(choices=Task.Priority.choices, initial=Task.Priority.NORMAL)
    assignee = MemberChoiceField(queryset=User.objects.none(), required=False)
    description = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}), label="Details"
    )

    def __init__(self, *args, org, policy, user, instance: Task | None = None, **kwargs):
        if instance is not None:
            kwargs.setdefault(
                "initial",
                {
                    "title": instance.title,
                    "due_at": instance.due_at,
                    "priority": instance.priority,
                    "assignee": instance.assignee.public_id if instance.assignee_id else None,
                    "description": instance.description,
                },
            )
        super().__init__(*args, **kwargs)
        self.instance = instance
        current = instance.assignee_id if instance else None
        assignee = self.fields["assignee"]
        assignee.me = user
        if policy.scope("tasks") == "own":
            # Own-scope members work only their own tasks: giving one away (or to no one)
            # would lose it.
            assignee.queryset = User.objects.filter(pk__in=[user.pk, current or user.pk])
            assignee.required = True
            assignee.empty_label = None
        else:
            assignee.queryset = active_member_users(org, include=[current])
        assignee.to_field_name = "public_id"
        if instance is None:
            # A new task is the creator's unless they pick someone else (or No one).
            self.initial.setdefault("assignee", user.public_id)

    def service_data(self) -> dict:
        data = dict(self.cleaned_data)
        if self.instance is None and "assignee" not in self.data:
            data.pop("assignee", None)  # a post without the field: the service assigns the creator
        return data


class NoteForm(forms.Form):
    body = forms.CharField(
        label="Note",
        widget=forms.Textarea(
            attrs={"rows": 4, "placeholder": "Write a note. Links become clickable."}
        ),
        max_length=20000,
    )


class QuickLogForm(forms.Form):
    type = forms.ChoiceField(
        choices=[(t.value, t.label) for t in QUICK_LOG_TYPES],
        initial=Activity.Type.CALL,
        widget=forms.RadioSelect,
        label="Log a",
    )
    subject = forms.CharField(
        max_length=300, required=False, label="Summary", help_text="e.g. Discussed renewal"
    )
    occurred_at = datetime_field("When", help_text="Leave empty for now.")
    body = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}), label="Details"
    )

    def __init__(self, *args, contact_queryset=None, **kwargs):
        super().__init__(*args, **kwargs)
        if contact_queryset is not None:
            self.fields = {
                "contact": ContactPickField(queryset=contact_queryset, label="Contact"),
                **self.fields,
            }

    def clean(self):
        cleaned = super().clean()
        if not (cleaned.get("subject") or "").strip() and not (cleaned.get("body") or "").strip():
            self.add_error("subject", "Say in a few words what happened.")
        return cleaned
