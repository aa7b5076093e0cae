"""Settings → Privacy → Requests: the queue of data subject requests and each request's page.

Viewing needs compliance "view"; creating, assigning and closing need "create" / "edit";
an erasure needs "delete". Another organization's request is a 404.
"""

from __future__ import annotations

import uuid

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from contacts.models import Contact
from contacts.views.common import actor, workspace_view
from crm.models import Membership
from crm.pagination import page as keyset_page
from crm.permissions import policy_for
from crm.services import audit

from ..models import DataRequest
from ..services import requests as services
from ..services.access import build_access_export, export_file_name
from ..services.erasure import erase_contact

PAGE_SIZE = 50
OVERDUE = "overdue"


def _members(org):
    return Membership.objects.for_org(org).active().select_related("user").order_by("user__email")


def _member_choices(org):
    return [("", "Nobody yet")] + [
        (str(m.user.pk), m.user.get_full_name() or m.user.email) for m in _members(org)
    ]


def _member_user(org, value):
    if not value:
        return None
    membership = _members(org).filter(user__pk=value).first()
    if membership is None:
        raise ValidationError({"assignee": ["Choose an active member of this organization."]})
    return membership.user


def find_contact(org, value: str) -> Contact | None:
    """A contact of `org` by its email or its public id; None when nothing matches."""
    text = (value or "").strip()
    if not text:
        return None
    contacts = Contact.objects.for_org(org)
    try:
        return contacts.filter(public_id=uuid.UUID(text)).first()
    except ValueError:
        pass
    return contacts.filter(email__iexact=text).order_by("is_archived", "id").first()


class FilterForm(forms.Form):
    status = forms.ChoiceField(
        required=False,
        choices=[
            ("", "Open and in progress"),
            ("all", "Every status"),
            *DataRequest.Status.choices,
        ],
    )
    kind = forms.ChoiceField(
        required=False, choices=[("", "Every kind"), *DataRequest.Kind.choices]
    )
    overdue = forms.BooleanField(required=False, label="Overdue only")


class RequestForm(forms.Form):
    kind = forms.ChoiceField(choices=DataRequest.Kind.choices)
    regime = forms.ChoiceField(choices=DataRequest.Regime.choices, initial="gdpr")
    contact = forms.CharField(
        required=False,
        max_length=254,
        label="Contact",
        help_text="The contact's email or id. Leave empty if they are not a contact.",
    )
    requester_email = forms.EmailField(required=False, max_length=254, label="Requester email")
    details = forms.CharField(
        required=False, max_length=services.DETAILS_MAX, widget=forms.Textarea(attrs={"rows": 4})
    )
    assignee = forms.ChoiceField(required=False, choices=())

    def __init__(self, *args, org, **kwargs):
        super().__init__(*args, **kwargs)
        self.org = org
        self.fields["assignee"].choices = _member_choices(org)

    def clean_contact(self):
        value = self.cleaned_data.get("contact", "")
        if not value:
            return None
        found = find_contact(self.org, value)
        if found is None:
            raise forms.ValidationError("No contact of this organization has that email or id.")
        return found


class AssignForm(forms.Form):
    assignee = forms.ChoiceField(required=False, choices=())

    def __init__(self, *args, org, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["assignee"].choices = _member_choices(org)


class StatusForm(forms.Form):
    status = forms.ChoiceField(choices=DataRequest.Status.choices)
    resolution = forms.CharField(
        required=False,
        max_length=services.RESOLUTION_MAX,
        label="Note",
        widget=forms.Textarea(attrs={"rows": 2}),
    )


class CompleteForm(forms.Form):
    resolution = forms.CharField(
        max_length=services.RESOLUTION_MAX,
        label="What was done",
        widget=forms.Textarea(attrs={"rows": 3}),
    )


def _add_errors(form, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for name, errors in exc.error_dict.items():
            target = name if name in form.fields else None
            for error in errors:
                form.add_error(target, error)
    else:
        for message in exc.messages:
            form.add_error(None, message)


def _get_request(request, public_id) -> DataRequest:
    return get_object_or_404(
        DataRequest.objects.for_org(request.org).select_related("contact", "assignee"),
        public_id=public_id,
    )


def _require(request, action: str) -> None:
    if not policy_for(request).can("compliance", action):
        raise PermissionDenied("Your role may not do this with data requests.")


@workspace_view("compliance")
def request_list(request):
    form = FilterForm(request.GET or None)
    rows = DataRequest.objects.for_org(request.org).select_related("contact", "assignee")
    status = kind = ""
    overdue = False
    if form.is_valid():
        status, kind = form.cleaned_data["status"], form.cleaned_data["kind"]
        overdue = form.cleaned_data["overdue"]
    if status == "":
        rows = rows.filter(status__in=services.OPEN_STATES)
    elif status != "all":
        rows = rows.filter(status=status)
    if kind:
        rows = rows.filter(kind=kind)
    if overdue:
        rows = rows.filter(status__in=services.OPEN_STATES, due_at__lt=timezone.now())
    result = keyset_page(rows, ["due_at", "id"], request.GET.get("cursor"), PAGE_SIZE)
    context = {
        "form": form,
        "page": result,
        "filtered": bool(status or kind or overdue),
        "can_create": policy_for(request).can("compliance", "create"),
    }
    template = "compliance/requests/list.html"
    if request.htmx:
        template += "#results"
    return render(request, template, context)


@workspace_view("compliance", "create")
def request_create(request):
    form = RequestForm(request.POST or None, org=request.org)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            created = services.create_request(
                org=request.org,
                actor=actor(request),
                kind=data["kind"],
                regime=data["regime"],
                contact=data["contact"],
                requester_email=data["requester_email"],
                details=data["details"],
                assignee=_member_user(request.org, data["assignee"]),
            )
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            messages.success(request, "Request added to the queue.")
            return redirect("compliance:request_detail", public_id=created.public_id)
    status = 400 if request.method == "POST" else 200
    return render(request, "compliance/requests/create.html", {"form": form}, status=status)


def _detail_context(request, req: DataRequest, **forms_given) -> dict:
    policy = policy_for(request)
    return {
        "req": req,
        "policy": policy,
        "can_edit": policy.can("compliance", "edit"),
        "can_erase": policy.can("compliance", "delete"),
        "assign_form": forms_given.get("assign_form")
        or AssignForm(initial={"assignee": str(req.assignee_id or "")}, org=request.org),
        "status_form": forms_given.get("status_form") or StatusForm(initial={"status": req.status}),
        "complete_form": forms_given.get("complete_form") or CompleteForm(),
        "closes_with_note": req.kind
        in (DataRequest.Kind.RECTIFICATION, DataRequest.Kind.DO_NOT_SELL),
        "is_open": req.status in services.OPEN_STATES,
    }


@workspace_view("compliance")
def request_detail(request, public_id):
    req = _get_request(request, public_id)
    return render(request, "compliance/requests/detail.html", _detail_context(request, req))


def _detail_action(request, public_id, form, form_key: str, apply, done: str):
    """A detail-page form: valid and accepted by `apply(req, cleaned_data)`, back to the
    page with `done`; otherwise the page again with the form's errors in place."""
    req = _get_request(request, public_id)
    if form.is_valid():
        try:
            apply(req, form.cleaned_data)
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            messages.success(request, done)
            return redirect("compliance:request_detail", public_id=req.public_id)
    context = _detail_context(request, req, **{form_key: form})
    return render(request, "compliance/requests/detail.html", context, status=400)


@require_POST
@workspace_view("compliance", "edit")
def request_assign(request, public_id):
    def apply(req, data):
        user = _member_user(request.org, data["assignee"])
        services.assign_request(data_request=req, actor=actor(request), assignee=user)

    form = AssignForm(request.POST, org=request.org)
    return _detail_action(request, public_id, form, "assign_form", apply, "Assignee saved.")


@require_POST
@workspace_view("compliance", "edit")
def request_status(request, public_id):
    def apply(req, data):
        services.set_request_status(
            data_request=req,
            actor=actor(request),
            status=data["status"],
            resolution=data["resolution"],
        )

    form = StatusForm(request.POST)
    return _detail_action(request, public_id, form, "status_form", apply, "Status saved.")


@require_POST
@workspace_view("compliance", "edit")
def request_complete(request, public_id):
    def apply(req, data):
        services.complete_request(
            data_request=req, actor=actor(request), resolution=data["resolution"]
        )

    form = CompleteForm(request.POST)
    return _detail_action(request, public_id, form, "complete_form", apply, "Request marked done.")


@require_POST
@workspace_view("compliance", "edit")
def request_export(request, public_id):
    """The access export of the request's contact, as a ZIP download (audited)."""
    req = _get_request(request, public_id)
    if req.contact_id is None:
        messages.error(request, "Pick the contact first: the export is of a contact's data.")
        return redirect("compliance:request_detail", public_id=req.public_id)
    contact = (
        Contact.objects.for_org(request.org)
        .select_related("company", "owner")
        .get(pk=req.contact_id)
    )
    data = build_access_export(contact)
    audit(
        org=request.org,
        actor=actor(request),
        verb="data_request.exported",
        obj=req,
        changes={"contact": str(contact.public_id), "bytes": len(data)},
    )
    response = HttpResponse(data, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{export_file_name(contact)}"'
    return response


@workspace_view("compliance", "delete")
def request_erase(request, public_id):
    """Step one shows who will be erased and what goes; step two (POST) needs their name
    typed back."""
    req = _get_request(request, public_id)
    if req.kind != DataRequest.Kind.ERASURE or req.contact_id is None:
        messages.error(request, "Only an erasure request with its contact picked can erase.")
        return redirect("compliance:request_detail", public_id=req.public_id)
    contact = Contact.objects.for_org(request.org).get(pk=req.contact_id)
    expected = f"{contact.first_name} {contact.last_name}".strip() or contact.email
    error = ""
    if request.method == "POST":
        typed = " ".join((request.POST.get("confirm") or "").split())
        if typed.casefold() != " ".join(expected.split()).casefold():
            error = f"Type {expected} exactly to confirm."
        else:
            try:
                with transaction.atomic():
                    erase_contact(contact=contact, actor=actor(request), request=req)
                    services.mark_erased(data_request=req, actor=actor(request))
            except ValidationError as exc:
                error = " ".join(exc.messages)
            else:
                messages.success(request, "The person was erased. The request is done.")
                return redirect("compliance:request_detail", public_id=req.public_id)
    context = {
        "req": req,
        "contact": contact,
        "expected": expected,
        "error": error,
        "counts": {
            "activities": contact.activities.count() if hasattr(contact, "activities") else 0,
            "notes": contact.notes.count(),
            "tasks": contact.tasks.count(),
            "orders": contact.orders.count(),
        },
    }
    status = 400 if error else 200
    return render(request, "compliance/requests/erase_confirm.html", context, status=status)
