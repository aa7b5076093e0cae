"""The deal page: its header (value, stage, probability, owner, health and the actions), its
tabs (timeline, notes, tasks, checklists, files, products) and the details beside them
(fields, contacts with roles, stage history), plus the look-ups every deal view shares.

Views only: reads come from pipeline.selectors and the small read helpers of the services
modules, writes from pipeline.services. A deal of another organization, or outside the
member's record scope, is a 404 (pipeline.selectors.deal_for_request). The rest of the deal's
views: deal_actions (create, edit, close, reopen, archive, contacts with roles), deal_tabs
(what the tabs do) and deal_related (the deals of a contact or company, and Convert).
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import F, Q
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone

from contacts.custom_fields import display_custom_value
from contacts.forms import TaskForm
from contacts.models import Activity, Company, Contact, CustomFieldDefinition, Note, Task
from contacts.views.common import redirect_or_refresh, workspace_view
from contacts.views.record import display_name
from crm.pagination import page as keyset_page
from crm.permissions import policy_for

from ..fields import hidden_deal_fields, locked_deal_fields
from ..forms.deals import (
    AttachmentForm,
    ChecklistForm,
    DealContactForm,
    DealNoteForm,
    LineItemForm,
)
from ..health import deal_health
from ..models import Attachment, Deal, DealContact, Stage, StageHistory
from ..selectors import deal_for_request, visible_deals
from ..services import attachments as attachment_services
from ..services.catalog import active_products
from ..services.checklists import deal_checklists, deal_progress
from ..services.deal_notes import is_deal_admin
from ..services.line_items import deal_lines

TABS = [
    ("timeline", "Timeline"),
    ("notes", "Notes"),
    ("tasks", "Tasks"),
    ("checklists", "Checklists"),
    ("attachments", "Files"),
    ("lines", "Products"),
]
TIMELINE_PAGE = 25
NOTES_PAGE = 30
DONE_TASKS_SHOWN = 20
PICKER_SIZE = 20
EDIT_GRACE_SECONDS = 60

# Look-ups --------------------------------------------------------------------------------------


def deal_url(deal, tab: str = "") -> str:
    url = reverse("pipeline:deal_detail", kwargs={"public_id": deal.public_id})
    return f"{url}?tab={tab}" if tab else url


def get_deal(request, public_id) -> Deal:
    deal = deal_for_request(request, public_id)
    deal.org = request.org  # the same row; saves a query wherever deal.org is read
    return deal


def deal_child(request, model, public_id, deal_path: str = "deal"):
    """A row hanging off a deal the member may see (another org's, or one whose deal is out
    of scope, is a 404), with its deal loaded."""
    visible = visible_deals(request.org, policy_for(request), archived=None)
    queryset = model.objects.for_org(request.org).filter(**{f"{deal_path}__in": visible})
    row = get_object_or_404(
        queryset.select_related(
            f"{deal_path}__stage", f"{deal_path}__pipeline", f"{deal_path}__owner"
        ),
        public_id=public_id,
    )
    deal = row
    for part in deal_path.split("__"):
        deal = getattr(deal, part)
    deal.org = request.org
    return row, deal


def can_edit(request, deal: Deal) -> bool:
    return policy_for(request).can_touch("pipeline", "edit", deal.owner_id)


def require_edit(request, deal: Deal) -> None:
    if not can_edit(request, deal):
        raise PermissionDenied("Your role may not change this deal.")


def scoped_contacts(request):
    policy = policy_for(request)
    if not policy.can("contacts", "view"):
        return None
    return Contact.objects.for_org(request.org).filter(policy.scope_filter("contacts"))


def scoped_companies(request):
    policy = policy_for(request)
    if not policy.can("companies", "view"):
        return None
    return Company.objects.for_org(request.org).filter(policy.scope_filter("companies"))


def picker_contacts(request, *first) -> list[Contact]:
    """Contacts to offer before anything is typed: `first` (the current or prefilled ones),
    then the most recently active ones the member may see."""
    contacts = scoped_contacts(request)
    if contacts is None:
        return []
    chosen = [c for c in first if c is not None]
    fields = ("public_id", "first_name", "last_name", "email")
    recent = (
        contacts.filter(is_archived=False, last_activity_at__isnull=False)
        .exclude(pk__in=[c.pk for c in chosen])
        .order_by("-last_activity_at", "-id")
        .only(*fields)[:PICKER_SIZE]
    )
    return chosen + list(recent)


# The page --------------------------------------------------------------------------------------


def plain_number(value) -> str:
    """A Decimal without trailing zeros or exponent: 2.000 → "2", 1.500 → "1.5"."""
    return f"{value.normalize():f}"


def _visible_tabs(request) -> list[tuple[str, str]]:
    policy = policy_for(request)
    hidden = hidden_deal_fields(policy)
    out = []
    for key, label in TABS:
        if key == "tasks" and not policy.can_access("tasks"):
            continue
        if key == "lines" and "value" in hidden:
            continue  # line amounts would show a value the member may not see
        out.append((key, label))
    return out


def _duration(seconds) -> str:
    if seconds is None:
        return ""
    days, rest = divmod(int(seconds), 86400)
    hours = rest // 3600
    if days:
        return f"{days} day{'s' if days != 1 else ''}" + (
            f" {hours} h" if days < 3 and hours else ""
        )
    if hours:
        return f"{hours} h"
    minutes = max(rest // 60, 1) if rest else 0
    return f"{minutes} min" if minutes else "under a minute"


def _stage_history(request, deal: Deal) -> dict:
    rows = list(
        StageHistory.objects.for_org(request.org)
        .filter(deal=deal)
        .select_related("from_stage", "to_stage", "actor")
        .order_by("-occurred_at", "-id")[:100]
    )
    totals: dict[str, int] = {}
    for row in rows:
        row.time_in_from = _duration(row.seconds_in_from_stage)
        if row.from_stage is not None and row.seconds_in_from_stage:
            totals[row.from_stage.name] = (
                totals.get(row.from_stage.name, 0) + row.seconds_in_from_stage
            )
    current = None
    if deal.status == Deal.Status.OPEN and deal.stage_entered_at:
        seconds = max(int((timezone.now() - deal.stage_entered_at).total_seconds()), 0)
        current = _duration(seconds)
        totals[deal.stage.name] = totals.get(deal.stage.name, 0) + seconds
    stage_order = {
        s.name: s.position
        for s in Stage.objects.for_org(request.org).filter(pipeline_id=deal.pipeline_id)
    }
    time_in_stage = [
        (name, _duration(seconds))
        for name, seconds in sorted(totals.items(), key=lambda item: stage_order.get(item[0], 999))
    ]
    return {"history": rows, "time_in_current": current, "time_in_stage": time_in_stage}


def _custom_rows(request, deal: Deal) -> list[tuple[str, str]]:
    definitions = (
        CustomFieldDefinition.objects.for_org(request.org)
        .filter(entity=CustomFieldDefinition.Entity.DEAL, is_active=True)
        .order_by("position", "label")
    )
    values = deal.custom or {}
    return [(d.label, display_custom_value(d, values.get(d.key))) for d in definitions]


def _deal_contacts(request, deal: Deal) -> list[DealContact]:
    policy = policy_for(request)
    links = list(
        DealContact.objects.for_org(request.org)
        .filter(deal=deal)
        .select_related("contact")
        .order_by("id")
    )
    contacts = scoped_contacts(request)
    visible_ids = (
        set(
            contacts.filter(pk__in=[link.contact_id for link in links]).values_list("pk", flat=True)
        )
        if contacts is not None
        else set()
    )
    roles = dict(Contact.DealRole.choices)
    for link in links:
        link.is_visible = link.contact_id in visible_ids
        link.name = (
            display_name(link.contact, policy) if link.is_visible else "A contact you cannot see"
        )
        link.role_label = roles.get(link.role, "")
        link.is_primary = link.contact_id == deal.contact_id
    return links


def header_context(request, deal: Deal) -> dict:
    policy = policy_for(request)
    hidden = hidden_deal_fields(policy)
    has_open_task = (
        Task.objects.for_org(request.org).filter(deal=deal, status=Task.Status.OPEN).exists()
    )
    editable = can_edit(request, deal)
    may_archive = policy.can_touch("pipeline", "delete", deal.owner_id)
    contacts = scoped_contacts(request)
    companies = scoped_companies(request)
    return {
        "deal": deal,
        "hidden": hidden,
        "health": deal_health(deal, has_open_task=has_open_task),
        "probability": deal.effective_probability,
        "can_edit": editable,
        "can_close": editable and deal.status == Deal.Status.OPEN and not deal.is_archived,
        "can_reopen": editable and deal.status != Deal.Status.OPEN and not deal.is_archived,
        "can_archive": may_archive and not deal.is_archived,
        "can_restore": may_archive and deal.is_archived,
        "contact_link": deal.contact_id
        and contacts is not None
        and contacts.filter(pk=deal.contact_id).exists(),
        "contact_name": display_name(deal.contact, policy) if deal.contact_id else "",
        "company_link": deal.company_id
        and companies is not None
        and companies.filter(pk=deal.company_id).exists(),
    }


def _timeline_context(request, deal: Deal) -> dict:
    entries = (
        Activity.objects.for_org(request.org)
        .filter(deal=deal)
        .filter(~Q(data__has_key="copy"))  # copies for the deal's other contacts: shown once
        .select_related("actor")
    )
    result = keyset_page(entries, ["-occurred_at", "-id"], request.GET.get("cursor"), TIMELINE_PAGE)
    return {"activities": result.rows, "next_cursor": result.next_cursor}


def _notes_context(request, deal: Deal, form=None) -> dict:
    policy = policy_for(request)
    notes = Note.objects.for_org(request.org).filter(deal=deal).select_related("author")
    result = keyset_page(notes, ["-created_at", "-id"], request.GET.get("cursor"), NOTES_PAGE)
    editable = can_edit(request, deal)
    admin = is_deal_admin(policy)
    for note in result.rows:
        note.was_edited = (note.updated_at - note.created_at).total_seconds() > EDIT_GRACE_SECONDS
        note.can_change = editable and (note.author_id == request.user.pk or admin)
    return {
        "notes": result.rows,
        "notes_cursor": result.next_cursor,
        "note_form": form or (DealNoteForm() if editable and not deal.is_archived else None),
    }


def _tasks_context(request, deal: Deal, form=None) -> dict:
    policy = policy_for(request)
    tasks = (
        Task.objects.for_org(request.org)
        .filter(policy.scope_filter("tasks", "assignee"), deal=deal)
        .select_related("assignee")
    )
    can_create = policy.can("tasks", "create")
    return {
        "tasks_open": list(
            tasks.filter(status=Task.Status.OPEN).order_by(F("due_at").asc(nulls_last=True), "id")
        ),
        "tasks_done": list(
            tasks.filter(status=Task.Status.DONE).order_by("-completed_at", "-id")[
                :DONE_TASKS_SHOWN
            ]
        ),
        "task_form": form
        or (TaskForm(org=request.org, policy=policy, user=request.user) if can_create else None),
        "next_url": deal_url(deal, "tasks"),
    }


def _checklists_context(request, deal: Deal) -> dict:
    editable = can_edit(request, deal) and not deal.is_archived
    return {
        "checklists": deal_checklists(request.org, deal),
        "checklist_form": ChecklistForm() if editable else None,
        "can_change": editable,
    }


def _place_item_errors(context: dict) -> None:
    """Errors of a checklist's or a step's form ({public id: [messages]}), put on the
    checklist they belong to, so each shows under its own list."""
    errors = context.pop("item_errors", None) or {}
    for checklist in context.get("checklists", []):
        checklist.errors = list(errors.get(str(checklist.public_id), []))
        for item in checklist.item_list:
            checklist.errors += [f"“{item.text}”: {e}" for e in errors.get(str(item.public_id), [])]


def _attachments_context(request, deal: Deal, form=None) -> dict:
    policy = policy_for(request)
    editable = can_edit(request, deal) and not deal.is_archived
    files = list(
        Attachment.objects.for_org(request.org)
        .filter(deal=deal)
        .select_related("uploaded_by")
        .order_by("-created_at", "-id")
    )
    for attachment in files:
        attachment.deal = deal
        attachment.size_label = attachment_services.human_size(attachment.size)
        attachment.can_delete = editable and attachment_services.may_delete(
            policy, attachment, request.user
        )
    return {
        "attachments": files,
        "attachment_form": form or (AttachmentForm() if editable else None),
        "max_size": attachment_services.human_size(attachment_services.max_bytes()),
        "allowed_summary": attachment_services.ALLOWED_SUMMARY,
    }


def _lines_context(request, deal: Deal, form=None) -> dict:
    policy = policy_for(request)
    editable = (
        can_edit(request, deal)
        and not deal.is_archived
        and not locked_deal_fields(policy, ["value"])
    )
    lines = deal_lines(request.org, deal)
    for line in lines:
        line.quantity_label = plain_number(line.quantity)
        line.discount_label = plain_number(line.discount)
    gross = sum((line.quantity * line.unit_price for line in lines), start=0)
    total = sum((line.total for line in lines), start=0)
    products = list(active_products(request.org)) if editable else []
    return {
        "lines": lines,
        "lines_gross": gross,
        "lines_discount": gross - total if lines else 0,
        "lines_total": total,
        "line_form": form
        or (
            LineItemForm(products=products, currency=deal.currency, has_lines=bool(lines))
            if editable
            else None
        ),
        "can_change_lines": editable,
        "has_products": bool(products),
    }


TAB_CONTEXTS = {
    "timeline": _timeline_context,
    "notes": _notes_context,
    "tasks": _tasks_context,
    "checklists": _checklists_context,
    "attachments": _attachments_context,
    "lines": _lines_context,
}


def detail_context(request, deal: Deal, tab: str, extra: dict | None = None) -> dict:
    tabs = _visible_tabs(request)
    if tab not in dict(tabs):
        tab = "timeline"
    context = {
        **header_context(request, deal),
        "tab": tab,
        "tabs": tabs,
        "progress": deal_progress(request.org, deal),
        "note_count": Note.objects.for_org(request.org).filter(deal=deal).count(),
        "file_count": Attachment.objects.for_org(request.org).filter(deal=deal).count(),
    }
    context.update(TAB_CONTEXTS[tab](request, deal))
    context.update(extra or {})
    _place_item_errors(context)
    return context


def side_context(request, deal: Deal) -> dict:
    policy = policy_for(request)
    editable = can_edit(request, deal) and not deal.is_archived
    contacts = scoped_contacts(request)
    return {
        "custom_rows": _custom_rows(request, deal)
        if "custom" not in hidden_deal_fields(policy)
        else [],
        "tags": list(deal.tags.order_by("name"))
        if "tags" not in hidden_deal_fields(policy)
        else [],
        "deal_contacts": _deal_contacts(request, deal),
        "contact_form": DealContactForm(
            contact_queryset=contacts, contact_options=picker_contacts(request)
        )
        if editable and contacts is not None
        else None,
        **_stage_history(request, deal),
    }


@workspace_view("pipeline", "view")
def deal_detail(request, public_id):
    deal = get_deal(request, public_id)
    tab = request.GET.get("tab", "timeline")
    context = detail_context(request, deal, tab)
    if request.htmx and not request.htmx.history_restore_request:
        target = request.htmx.target or ""
        if target == "timeline-more":
            return render(request, "pipeline/partials/deal_timeline_items.html", context)
        if target == "notes-more":
            return render(request, "pipeline/partials/deal_note_items.html", context)
        if target == "deal-tabs":
            return render(request, "pipeline/deal_detail.html#tabs", context)
    context.update(side_context(request, deal))
    return render(request, "pipeline/deal_detail.html", context)


def tab_response(request, deal: Deal, tab: str, *, extra=None, success: str = ""):
    """After an action in a tab: the tab again (HTMX), or the page (a plain form post)."""
    if success:
        messages.success(request, success)
    if request.htmx:
        deal = get_deal(request, deal.public_id)
        return render(
            request, "pipeline/deal_detail.html#tabs", detail_context(request, deal, tab, extra)
        )
    if extra is None:
        return redirect_or_refresh(request, deal_url(deal, tab))
    deal = get_deal(request, deal.public_id)
    context = detail_context(request, deal, tab, extra)
    context.update(side_context(request, deal))
    return render(request, "pipeline/deal_detail.html", context)


def service_error(request, exc: ValidationError) -> None:
    messages.error(request, " ".join(exc.messages))
