"""Compliance → Suppressions: the list of suppressed addresses with its filters, the CSV
import of lists from other tools, the streamed export, and lifting a suppression (with the
note that says why)."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.http import HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST

from contacts.views.common import actor, safe_next, workspace_view
from crm.csvutils import csv_response
from crm.pagination import page
from crm.permissions import policy_for
from crm.selectors import org_timezone
from crm.services import audit

from ..models import Channel, Suppression
from ..services.suppression import (
    EXPORT_HEADER,
    MAX_ROWS,
    MAX_UPLOAD_BYTES,
    STATUSES,
    SuppressionFilters,
    filtered_suppressions,
    import_suppressions_csv,
    suppression_rows_for_export,
    unsuppress,
)

PAGE_SIZE = 50
LIST_TEMPLATE = "compliance/suppressions/list.html"


class LiftForm(forms.Form):
    note = forms.CharField(
        label="Why may this address be contacted again?",
        widget=forms.Textarea(attrs={"rows": 2}),
        max_length=2000,
        error_messages={"required": "Say why this address may be contacted again."},
    )

    def add_service_errors(self, exc: ValidationError) -> None:
        if hasattr(exc, "error_dict") and "note" in exc.message_dict:
            self.add_error("note", exc.message_dict["note"])
        else:
            self.add_error(None, exc.messages)


class ImportForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        help_text=(
            "A column named Email, Email Address, Phone, Phone Number or Mobile; Channel and "
            f"Reason columns are optional. At most {MAX_UPLOAD_BYTES // (1024 * 1024)} MB "
            f"and {MAX_ROWS:,} rows."
        ),
        error_messages={"required": "Choose a CSV file to import."},
    )
    default_reason = forms.ChoiceField(
        label="Reason for rows without one",
        choices=Suppression.Reason.choices,
        initial=Suppression.Reason.MANUAL,
    )


def _list_context(request, *, import_form=None, import_result=None) -> dict:
    policy = policy_for(request)
    filters = SuppressionFilters.from_query(request.GET)
    queryset = filtered_suppressions(request.org, filters).select_related("created_by", "lifted_by")
    result = page(queryset, ["-created_at", "-id"], request.GET.get("cursor"), PAGE_SIZE)
    can_edit = policy.can("compliance", "edit")
    return {
        "page": result,
        "rows": [
            {"suppression": row, "lift_form": LiftForm(auto_id=f"lift-{row.public_id}-%s")}
            for row in result.rows
        ],
        "filters": filters,
        "is_filtered": bool(filters.params()),
        "export_query": urlencode(filters.params()),
        "channel_choices": Channel.choices,
        "reason_choices": Suppression.Reason.choices,
        "status_choices": STATUSES,
        "can_edit": can_edit,
        "can_export": policy.can("compliance", "export"),
        "can_import": policy.can("compliance", "create"),
        "import_form": import_form or ImportForm(),
        "import_result": import_result,
        "list_url": reverse("compliance:suppression_list"),
        "policy": policy,
    }


@require_GET
@workspace_view("compliance")
def suppression_list(request):
    context = _list_context(request)
    if request.htmx and not request.htmx.boosted and not request.htmx.history_restore_request:
        return render(request, f"{LIST_TEMPLATE}#results", context)
    return render(request, LIST_TEMPLATE, context)


@require_POST
@workspace_view("compliance", "create")
def suppression_import(request):
    """Import a CSV list; the list page shows what it did, row errors included."""
    form = ImportForm(request.POST, request.FILES)
    result = None
    status = 200
    if form.is_valid():
        upload = form.cleaned_data["file"]
        name = (upload.name or "file.csv").rsplit("/", 1)[-1]
        try:
            result = import_suppressions_csv(
                org=request.org,
                actor=actor(request),
                file=upload,
                default_reason=form.cleaned_data["default_reason"],
                source=f"Import of {name}"[:200],
            )
            result["file_name"] = name
            form = ImportForm(initial={"default_reason": form.cleaned_data["default_reason"]})
        except ValidationError as exc:
            form.add_error("file", exc.messages)
            status = 400
    else:
        status = 400
    context = _list_context(request, import_form=form, import_result=result)
    return render(request, LIST_TEMPLATE, context, status=status)


@require_GET
@workspace_view("compliance", "export")
def suppression_export(request):
    filters = SuppressionFilters.from_query(request.GET)
    audit(
        org=request.org,
        actor=actor(request),
        verb="suppression.exported",
        object_type="suppression",
        object_repr="Suppression list CSV export",
        changes={"filters": filters.params()},
    )
    stamp = timezone.now().astimezone(org_timezone(request.org)).strftime("%Y%m%d-%H%M")
    return csv_response(
        suppression_rows_for_export(request.org, filters),
        EXPORT_HEADER,
        f"suppressions-{request.org.slug}-{stamp}.csv",
    )


@workspace_view("compliance", "edit")
def suppression_lift(request, public_id):
    """Lift one suppression: a page with the note form (GET), or the form's POST from the
    list. An empty note re-renders the form with its error."""
    if request.method not in ("GET", "POST"):
        return HttpResponseNotAllowed(["GET", "POST"])
    suppression = get_object_or_404(
        Suppression.objects.for_org(request.org).select_related("contact"), public_id=public_id
    )
    form = LiftForm(request.POST or None)
    default_next = reverse("compliance:suppression_list")
    if request.method == "POST" and form.is_valid():
        try:
            unsuppress(
                suppression=suppression, actor=actor(request), note=form.cleaned_data["note"]
            )
        except ValidationError as exc:
            form.add_service_errors(exc)
        else:
            return redirect(safe_next(request, default_next))
    status = 400 if request.method == "POST" else 200
    context = {
        "suppression": suppression,
        "form": form,
        "next": safe_next(request, default_next),
    }
    return render(request, "compliance/suppressions/lift.html", context, status=status)
