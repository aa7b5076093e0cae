"""Settings → Audit log: browse, filter and export the organization's append-only history."""

from __future__ import annotations

import json

from django import forms
from django.db import transaction
from django.shortcuts import render
from django.utils import timezone

from ..csvutils import csv_response
from ..decorators import member_required
from ..models import AuditEvent, Membership
from ..pagination import page as keyset_page
from ..selectors import audit_events, audit_object_types, audit_verbs, org_members, org_timezone
from ..services.audit import Actor, audit

PAGE_SIZE = 50
NEWEST_FIRST = ["-created_at", "-id"]
EXPORT_CHUNK_SIZE = 2000


class AuditFilterForm(forms.Form):
    # The organization's members are set in __init__; until then there is nothing to choose.
    member: forms.ModelChoiceField[Membership] = forms.ModelChoiceField(
        queryset=None,
        required=False,
        to_field_name="public_id",
        empty_label="Anyone",
        label="Member",
    )
    actor = forms.CharField(
        required=False,
        max_length=200,
        label="Actor contains",
        help_text="API key, system job or AI label, or an email.",
    )
    actor_type = forms.ChoiceField(required=False, label="Actor type")
    verb = forms.ChoiceField(required=False, label="Action")
    object_type = forms.ChoiceField(required=False, label="Object type")
    date_from = forms.DateField(
        required=False, label="From", widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        required=False, label="To", widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args, org, **kwargs):
        super().__init__(*args, **kwargs)
        members = org_members(org)
        self.fields["member"].queryset = members
        self.fields["member"].label_from_instance = _member_label
        self.fields["actor_type"].choices = [("", "Any"), *AuditEvent.ActorType.choices]
        self.fields["verb"].choices = [("", "Any")] + [(v, v) for v in audit_verbs(org)]
        self.fields["object_type"].choices = [("", "Any")] + [
            (t, t) for t in audit_object_types(org) if t
        ]

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", "The end date is before the start date.")
        return cleaned

    def filters(self) -> dict:
        """The filters that passed validation; an invalid one is reported and ignored,
        so a mistyped date never hides the whole log."""
        if not self.is_bound:
            return {}
        self.is_valid()
        return {key: value for key, value in self.cleaned_data.items() if value}

    def describe(self) -> dict:
        """The applied filters as plain text, for the export's own audit record."""
        return {
            key: (str(value.user.email) if key == "member" else str(value))
            for key, value in self.filters().items()
        }


def _member_label(membership) -> str:
    name = membership.user.display_name
    return name if membership.is_active else f"{name} (deactivated)"


def _display(value) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def change_rows(changes) -> list[dict]:
    """Rows of field / before / after for the expandable table.

    Services record `diff()` output ({field: [before, after]}); anything else recorded under
    a key (e.g. the filters of an export) is shown as an after-value only."""
    if not isinstance(changes, dict):
        return [{"field": "", "before": "", "after": _display(changes)}] if changes else []
    rows = []
    for field, value in changes.items():
        if isinstance(value, list | tuple) and len(value) == 2:
            before, after = value
        else:
            before, after = None, value
        rows.append({"field": field, "before": _display(before), "after": _display(after)})
    return rows


def _actor_name(event: AuditEvent) -> str:
    if event.actor_user_id and event.actor_user is not None:
        return event.actor_user.display_name
    return event.actor_label or event.get_actor_type_display()


@member_required("settings", "view")
def audit_log(request):
    form = AuditFilterForm(request.GET or None, org=request.org)
    events = audit_events(request.org, form.filters())
    # Older pages are asked for with `before`, newer ones with `after`; the cursor itself says
    # which way it walks.
    cursor = request.GET.get("before") or request.GET.get("after")
    page = keyset_page(events, NEWEST_FIRST, cursor, PAGE_SIZE)
    if cursor and not page.rows:
        # A stale cursor (e.g. the filters changed): start over at the newest page.
        page = keyset_page(events, NEWEST_FIRST, None, PAGE_SIZE)
    for event in page.rows:
        event.change_rows = change_rows(event.changes)
        event.actor_name = _actor_name(event)
    context = {
        "form": form,
        "page": page,
        "org_tz": org_timezone(request.org),
        "filtered": bool(form.is_bound and form.filters()),
    }
    full_page = not request.htmx or request.htmx.history_restore_request
    template = "crm/audit_log.html" if full_page else "crm/audit_log.html#results"
    return render(request, template, context)


EXPORT_HEADER = [
    "When",
    "Timezone",
    "Actor type",
    "Actor",
    "Action",
    "Object type",
    "Object ID",
    "Object",
    "IP address",
    "Changes",
]


@member_required("settings", "export")
def audit_export(request):
    form = AuditFilterForm(request.GET or None, org=request.org)
    events = audit_events(request.org, form.filters())
    with transaction.atomic():
        recorded = audit(
            org=request.org,
            actor=Actor.from_request(request),
            verb="audit.exported",
            object_type="audit_log",
            object_repr="Audit log CSV export",
            changes={"filters": form.describe()},
        )
    tz = org_timezone(request.org)
    tz_name = str(tz)

    def rows():
        # The export describes the log as it stood when asked for, without its own record.
        for event in events.exclude(pk=recorded.pk).iterator(chunk_size=EXPORT_CHUNK_SIZE):
            yield [
                event.created_at.astimezone(tz).isoformat(timespec="seconds"),
                tz_name,
                event.get_actor_type_display(),
                _actor_name(event),
                event.verb,
                event.object_type,
                event.object_id,
                event.object_repr,
                event.ip_address,
                json.dumps(event.changes, ensure_ascii=False, sort_keys=True)
                if event.changes
                else "",
            ]

    stamp = timezone.now().astimezone(tz).strftime("%Y%m%d-%H%M")
    return csv_response(rows(), EXPORT_HEADER, f"audit-log-{request.org.slug}-{stamp}.csv")
