"""The actions inside the deal page's tabs: notes, tasks, line items, checklists and files.

Each looks the deal (or the row and its deal) up within the member's organization and record
scope, so anything else is a 404; calls one service; and answers with the tab again (HTMX)
or a redirect to it. A refused input comes back on the tab's form, next to its field.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import FileResponse, Http404
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from contacts.forms import TaskForm
from contacts.models import Note
from contacts.views.common import actor, redirect_or_refresh, workspace_view
from crm.form_errors import add_errors
from crm.permissions import policy_for

from ..fields import hidden_deal_fields
from ..forms.deals import (
    AttachmentForm,
    ChecklistForm,
    ChecklistItemForm,
    DealNoteForm,
    LineItemForm,
)
from ..models import Attachment, Checklist, ChecklistItem, LineItem
from ..services import attachments as attachment_services
from ..services import checklists as checklist_services
from ..services import deal_notes as note_services
from ..services import line_items as line_services
from ..services.catalog import active_products
from .deals import deal_child, deal_url, get_deal, require_edit, service_error, tab_response

# Notes -----------------------------------------------------------------------------------------


@workspace_view("pipeline", "edit")
@require_POST
def deal_note_create(request, public_id):
    deal = get_deal(request, public_id)
    require_edit(request, deal)
    form = DealNoteForm(request.POST)
    if form.is_valid():
        try:
            note_services.deal_note_create(
                deal=deal,
                actor=actor(request),
                body=form.cleaned_data["body"],
                policy=policy_for(request),
            )
        except ValidationError as exc:
            add_errors(form, exc)
        else:
            return tab_response(request, deal, "notes", success="Note added.")
    return tab_response(request, deal, "notes", extra={"note_form": form})


def _note(request, note_public_id):
    note, deal = deal_child(request, Note, note_public_id)
    return note, deal


@workspace_view("pipeline", "edit")
@require_http_methods(["GET", "POST"])
def deal_note_edit(request, note_public_id):
    note, deal = _note(request, note_public_id)
    require_edit(request, deal)
    if not note_services.may_change_note(policy_for(request), note, request.user):
        raise PermissionDenied(
            "Only the note's author, or a member who edits every deal, can change it."
        )
    form = DealNoteForm(request.POST or None, initial={"body": note.body})
    if request.method == "POST" and form.is_valid():
        try:
            note_services.deal_note_update(
                note=note,
                actor=actor(request),
                body=form.cleaned_data["body"],
                policy=policy_for(request),
            )
        except ValidationError as exc:
            add_errors(form, exc)
        else:
            messages.success(request, "Note saved.")
            return redirect_or_refresh(request, deal_url(deal, "notes"))
    return render(
        request, "pipeline/deal_note_form.html", {"form": form, "note": note, "deal": deal}
    )


@workspace_view("pipeline", "edit")
@require_POST
def deal_note_delete(request, note_public_id):
    note, deal = _note(request, note_public_id)
    require_edit(request, deal)
    note_services.deal_note_delete(note=note, actor=actor(request), policy=policy_for(request))
    return tab_response(request, deal, "notes", success="Note deleted.")


# Tasks -----------------------------------------------------------------------------------------


@workspace_view("tasks", "create")
@require_POST
def deal_task_create(request, public_id):
    policy = policy_for(request)
    if not policy.can("pipeline", "view"):
        raise PermissionDenied("Your role may not see deals.")
    deal = get_deal(request, public_id)
    form = TaskForm(request.POST, org=request.org, policy=policy, user=request.user)
    if form.is_valid():
        try:
            note_services.deal_task_create(
                deal=deal, actor=actor(request), data=form.service_data(), policy=policy
            )
        except ValidationError as exc:
            add_errors(form, exc)
        else:
            return tab_response(request, deal, "tasks", success="Task added.")
    return tab_response(request, deal, "tasks", extra={"task_form": form})


# Line items ------------------------------------------------------------------------------------


def _require_value_visible(request) -> None:
    if "value" in hidden_deal_fields(policy_for(request)):
        raise Http404("No such line.")


def _line_form(request, deal, data=None, **kwargs) -> LineItemForm:
    has_lines = LineItem.objects.for_org(request.org).filter(deal=deal).exists()
    return LineItemForm(
        data,
        products=list(active_products(request.org)),
        currency=deal.currency,
        has_lines=has_lines,
        **kwargs,
    )


@workspace_view("pipeline", "edit")
@require_POST
def line_item_add(request, public_id):
    _require_value_visible(request)
    deal = get_deal(request, public_id)
    require_edit(request, deal)
    form = _line_form(request, deal, request.POST)
    if form.is_valid():
        try:
            line_services.line_item_add(
                deal=deal,
                actor=actor(request),
                data=form.line_data(),
                product=form.cleaned_data.get("product"),
                policy=policy_for(request),
            )
        except ValidationError as exc:
            add_errors(form, exc)
        else:
            return tab_response(request, deal, "lines", success="Line added.")
    return tab_response(request, deal, "lines", extra={"line_form": form})


@workspace_view("pipeline", "edit")
@require_http_methods(["GET", "POST"])
def line_item_edit(request, lineitem_public_id):
    _require_value_visible(request)
    line, deal = deal_child(request, LineItem, lineitem_public_id)
    require_edit(request, deal)
    initial = {
        "name": line.name,
        "quantity": f"{line.quantity.normalize():f}",
        "unit_price": line.unit_price,
        "discount_kind": line.discount_kind,
        "discount": line.discount if line.discount_kind != LineItem.DiscountKind.NONE else "",
    }
    form = LineItemForm(request.POST or None, initial=initial, editing=True)
    if request.method == "POST" and form.is_valid():
        try:
            line_services.line_item_update(
                line=line, actor=actor(request), data=form.cleaned_data, policy=policy_for(request)
            )
        except ValidationError as exc:
            add_errors(form, exc)
        else:
            messages.success(request, "Line saved.")
            return redirect_or_refresh(request, deal_url(deal, "lines"))
    return render(
        request, "pipeline/deal_line_form.html", {"form": form, "line": line, "deal": deal}
    )


@workspace_view("pipeline", "edit")
@require_POST
def line_item_delete(request, lineitem_public_id):
    _require_value_visible(request)
    line, deal = deal_child(request, LineItem, lineitem_public_id)
    require_edit(request, deal)
    try:
        line_services.line_item_remove(line=line, actor=actor(request), policy=policy_for(request))
    except ValidationError as exc:
        service_error(request, exc)
        return tab_response(request, deal, "lines")
    return tab_response(request, deal, "lines", success=f"“{line.name}” was removed.")


@workspace_view("pipeline", "edit")
@require_POST
def line_item_move(request, lineitem_public_id):
    _require_value_visible(request)
    line, deal = deal_child(request, LineItem, lineitem_public_id)
    require_edit(request, deal)
    try:
        line_services.line_item_move(
            line=line,
            actor=actor(request),
            direction=request.POST.get("direction", ""),
            policy=policy_for(request),
        )
    except ValidationError as exc:
        service_error(request, exc)
    return tab_response(request, deal, "lines")


# Checklists ------------------------------------------------------------------------------------


@workspace_view("pipeline", "edit")
@require_POST
def checklist_add(request, public_id):
    deal = get_deal(request, public_id)
    require_edit(request, deal)
    form = ChecklistForm(request.POST)
    if form.is_valid():
        try:
            checklist_services.checklist_add(
                deal=deal,
                actor=actor(request),
                title=form.cleaned_data["title"],
                policy=policy_for(request),
            )
        except ValidationError as exc:
            add_errors(form, exc)
        else:
            return tab_response(request, deal, "checklists", success="Checklist added.")
    return tab_response(request, deal, "checklists", extra={"checklist_form": form})


def _item_error(request, deal, key, form):
    """The tab again, with `form`'s errors under the checklist or step they belong to."""
    errors = [e for messages_ in form.errors.values() for e in messages_]
    return tab_response(request, deal, "checklists", extra={"item_errors": {key: errors}})


@workspace_view("pipeline", "edit")
@require_POST
def checklist_rename(request, checklist_public_id):
    checklist, deal = deal_child(request, Checklist, checklist_public_id)
    require_edit(request, deal)
    form = ChecklistForm(request.POST)
    if form.is_valid():
        try:
            checklist_services.checklist_rename(
                checklist=checklist,
                actor=actor(request),
                title=form.cleaned_data["title"],
                policy=policy_for(request),
            )
        except ValidationError as exc:
            add_errors(form, exc)
        else:
            return tab_response(request, deal, "checklists", success="Checklist renamed.")
    return _item_error(request, deal, str(checklist.public_id), form)


@workspace_view("pipeline", "edit")
@require_POST
def checklist_delete(request, checklist_public_id):
    checklist, deal = deal_child(request, Checklist, checklist_public_id)
    require_edit(request, deal)
    checklist_services.checklist_delete(
        checklist=checklist, actor=actor(request), policy=policy_for(request)
    )
    return tab_response(
        request, deal, "checklists", success=f"The checklist “{checklist.title}” was deleted."
    )


@workspace_view("pipeline", "edit")
@require_POST
def checklist_item_add(request, checklist_public_id):
    checklist, deal = deal_child(request, Checklist, checklist_public_id)
    require_edit(request, deal)
    form = ChecklistItemForm(request.POST)
    if form.is_valid():
        try:
            checklist_services.checklist_item_add(
                checklist=checklist,
                actor=actor(request),
                text=form.cleaned_data["text"],
                policy=policy_for(request),
            )
        except ValidationError as exc:
            add_errors(form, exc)
        else:
            return tab_response(request, deal, "checklists")
    return _item_error(request, deal, str(checklist.public_id), form)


@workspace_view("pipeline", "edit")
@require_POST
def checklist_item_toggle(request, checklistitem_public_id):
    item, deal = deal_child(request, ChecklistItem, checklistitem_public_id, "checklist__deal")
    require_edit(request, deal)
    done = request.POST.get("done")
    try:
        checklist_services.checklist_item_toggle(
            item=item,
            actor=actor(request),
            done=None if done is None else done in ("1", "true", "on"),
            policy=policy_for(request),
        )
    except ValidationError as exc:
        service_error(request, exc)
    return tab_response(request, deal, "checklists")


@workspace_view("pipeline", "edit")
@require_POST
def checklist_item_rename(request, checklistitem_public_id):
    item, deal = deal_child(request, ChecklistItem, checklistitem_public_id, "checklist__deal")
    require_edit(request, deal)
    form = ChecklistItemForm(request.POST)
    if form.is_valid():
        try:
            checklist_services.checklist_item_rename(
                item=item,
                actor=actor(request),
                text=form.cleaned_data["text"],
                policy=policy_for(request),
            )
        except ValidationError as exc:
            add_errors(form, exc)
        else:
            return tab_response(request, deal, "checklists")
    return _item_error(request, deal, str(item.public_id), form)


@workspace_view("pipeline", "edit")
@require_POST
def checklist_item_delete(request, checklistitem_public_id):
    item, deal = deal_child(request, ChecklistItem, checklistitem_public_id, "checklist__deal")
    require_edit(request, deal)
    checklist_services.checklist_item_delete(
        item=item, actor=actor(request), policy=policy_for(request)
    )
    return tab_response(request, deal, "checklists")


# Files -----------------------------------------------------------------------------------------


# Room for the form's other fields and the multipart framing around the file.
UPLOAD_OVERHEAD = 64 * 1024


def _too_big(request) -> str:
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return ""
    limit = attachment_services.max_bytes()
    if length <= limit + UPLOAD_OVERHEAD:
        return ""
    size, most = attachment_services.human_size(length), attachment_services.human_size(limit)
    return f"The file is about {size}; files up to {most} can be attached."


@workspace_view("pipeline", "edit")
@require_POST
def attachment_upload(request, public_id):
    deal = get_deal(request, public_id)
    require_edit(request, deal)
    refusal = _too_big(request)
    if refusal:
        # Refused before the body is read, so a huge upload is not spooled to disk first.
        form = AttachmentForm({}, {})
        form.is_valid()
        form.errors.pop("file", None)
        form.add_error("file", refusal)
        return tab_response(request, deal, "attachments", extra={"attachment_form": form})
    form = AttachmentForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            attachment = attachment_services.attachment_upload(
                deal=deal,
                actor=actor(request),
                upload=form.cleaned_data["file"],
                policy=policy_for(request),
            )
        except ValidationError as exc:
            add_errors(form, exc, default_field="file")
        else:
            return tab_response(
                request, deal, "attachments", success=f"“{attachment.file_name}” was attached."
            )
    return tab_response(request, deal, "attachments", extra={"attachment_form": form})


@workspace_view("pipeline", "view")
@require_GET
def attachment_download(request, attachment_public_id):
    """The file, as a download under its shown name, for members who may see the deal."""
    attachment, _deal = deal_child(request, Attachment, attachment_public_id)
    try:
        handle = attachment.file.open("rb")
    except (FileNotFoundError, OSError):
        raise Http404("This file is no longer in storage.") from None
    response = FileResponse(
        handle,
        as_attachment=True,
        filename=attachment_services.safe_file_name(attachment.file_name),
        content_type=attachment.content_type or "application/octet-stream",
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


@workspace_view("pipeline", "edit")
@require_POST
def attachment_delete(request, attachment_public_id):
    attachment, deal = deal_child(request, Attachment, attachment_public_id)
    require_edit(request, deal)
    attachment_services.attachment_delete(
        attachment=attachment, actor=actor(request), policy=policy_for(request)
    )
    return tab_response(
        request, deal, "attachments", success=f"“{attachment.file_name}” was deleted."
    )
