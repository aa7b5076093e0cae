"""The contact record: create, edit (whole form or one field inline), the detail page with
its tabs (details, timeline, tasks, notes), and the actions in its header.

Views only: the reads are in contacts/selectors/record.py, the writes in contacts.services and
the field rows' markup in contacts/presenters.py. Past 600 lines because every view that ends
on the record page lives here; the sections below (pages, inline edit, header actions,
timeline / notes / tasks) are where it splits if it grows."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from crm.form_errors import add_errors
from crm.pagination import page as keyset_page
from crm.permissions import policy_for

from .. import services
from ..dedup import form_warning
from ..fields import GROUPS, catalog_by_key
from ..forms import ContactForm, NoteForm, QuickLogForm, TaskForm, form_name
from ..models import Activity, Contact, Note
from ..presenters import field_row_html, url_maker
from ..selectors import full_request_catalog
from ..selectors.record import (
    TIMELINE_FILTERS,
    company_suggestions,
    contact_in_scope,
    contact_notes,
    contact_tasks,
    contacts_with_counts,
    import_origin,
    notes_with_contacts,
    timeline_entries,
    upcoming_tasks,
)
from ..timeline import with_changes
from .common import (
    actor,
    can_edit_contact,
    get_contact,
    redirect_or_refresh,
    require_contact_edit,
    workspace_view,
)

TABS = [
    ("details", "Details"),
    ("timeline", "Timeline"),
    ("tasks", "Tasks"),
    ("notes", "Notes"),
]
TIMELINE_PAGE = 25
NOTES_PAGE = 30
DONE_TASKS_SHOWN = 20
UPCOMING_TASKS_SHOWN = 10
EDIT_GRACE_SECONDS = 60  # a fix right after writing is not an "edit" worth showing
SCORE_REASONS_TEMPLATE = "contacts/partials/score_reasons.html"


def display_name(contact: Contact, policy) -> str:
    """The contact's name for this viewer: the email stands in for a missing name only
    when the viewer may see emails, so a hidden field never leaks through the title."""
    parts = [
        contact.first_name if policy.can_see_field("first_name") else "",
        contact.last_name if policy.can_see_field("last_name") else "",
    ]
    name = " ".join(part for part in parts if part).strip()
    if not name and contact.email and policy.can_see_field("email"):
        return contact.email
    return name or "(no name)"


def _header_context(request, contact: Contact) -> dict:
    policy = policy_for(request)
    can_edit = can_edit_contact(request, contact)
    owner_editable = policy.can_edit_field("owner")
    mine = contact.owner_id == request.user.pk
    admin = policy.is_contact_admin()
    visible = {spec.key for spec in full_request_catalog(request) if policy.can_see_field(spec.key)}
    return {
        "contact": contact,
        "name": display_name(contact, policy),
        "visible": visible,
        "header_title": contact.job_title if "job_title" in visible else "",
        "header_company": contact.company if "company" in visible else None,
        "can_edit": can_edit,
        "can_claim": can_edit and owner_editable and contact.owner_id is None,
        "can_release": can_edit
        and owner_editable
        and contact.owner_id is not None
        and (mine or admin),
        "is_mine": mine,
        # "Why 72?" loads its reasons over HTMX when opened: the page runs no scoring query.
        "score_reasons_template": SCORE_REASONS_TEMPLATE if "lead_score" in visible else None,
    }


def _field_items(contact: Contact, specs, editable_keys):
    """One row per field for the details tab, URLs reversed once (a page shows ~50 fields)
    and each row's markup made once in Python (`html`, see contacts/presenters.py)."""
    row_url = url_maker("contacts:contact_field", arg="key", public_id=contact.public_id)
    edit_url = url_maker("contacts:contact_field_edit", arg="key", public_id=contact.public_id)
    items = []
    for spec in specs:
        item = {
            "spec": spec,
            "editable": spec.key in editable_keys,
            "dom_id": "field-" + form_name(spec.key),
            "row_url": row_url(spec.key),
            "edit_url": edit_url(spec.key),
        }
        item["html"] = field_row_html(contact, item)
        items.append(item)
    return items


def _editable_keys(request, contact: Contact, specs) -> set[str]:
    if not can_edit_contact(request, contact):
        return set()
    policy = policy_for(request)
    return {spec.key for spec in specs if spec.editable and policy.can_edit_field(spec.key)}


def _details_context(request, contact: Contact, specs) -> dict:
    grouped: dict[str, list] = {}
    for item in _field_items(contact, specs, _editable_keys(request, contact, specs)):
        grouped.setdefault(item["spec"].group, []).append(item)
    return {"groups": [(group, grouped[group]) for group in GROUPS if group in grouped]}


def _timeline_context(request, contact: Contact) -> dict:
    policy = policy_for(request)
    kind = request.GET.get("type", "")
    kind = kind if kind in TIMELINE_FILTERS else ""
    entries = timeline_entries(
        request.org,
        policy,
        contact,
        kind,
        [spec.key for spec in full_request_catalog(request)],
    )
    result = keyset_page(entries, ["-occurred_at", "-id"], request.GET.get("cursor"), TIMELINE_PAGE)
    rows, next_cursor = result.rows, result.next_cursor
    if next_cursor is None and (not kind or Activity.Type.IMPORTED in TIMELINE_FILTERS[kind][1]):
        origin = import_origin(request.org, contact)
        if origin is not None:
            rows.append(origin)
    first_page = not request.GET.get("cursor")
    return {
        "activities": with_changes(rows, policy),
        "upcoming_tasks": _upcoming_tasks(request, contact)
        if first_page and kind in ("", "task_completed")
        else [],
        "next_cursor": next_cursor,
        "timeline_kind": kind,
        "timeline_filters": [(key, label) for key, (label, _) in TIMELINE_FILTERS.items()],
        "log_form": QuickLogForm() if can_edit_contact(request, contact) else None,
        "can_log": policy.can("contacts", "edit") and can_edit_contact(request, contact),
    }


def _upcoming_tasks(request, contact: Contact) -> list:
    """The contact's open tasks this member may see, soonest due first (undated last)."""
    policy = policy_for(request)
    if not policy.can_access("tasks"):
        return []
    return upcoming_tasks(request.org, policy, contact, UPCOMING_TASKS_SHOWN)


def _tasks_context(request, contact: Contact) -> dict:
    policy = policy_for(request)
    if not policy.can_access("tasks"):
        return {"tasks_open": [], "tasks_done": [], "task_form": None}
    tasks_open, tasks_done = contact_tasks(request.org, policy, contact, DONE_TASKS_SHOWN)
    can_create = policy.can("tasks", "create")
    return {
        "tasks_open": tasks_open,
        "tasks_done": tasks_done,
        "task_form": TaskForm(org=request.org, policy=policy, user=request.user)
        if can_create
        else None,
        "next_url": reverse("contacts:contact_detail", kwargs={"public_id": contact.public_id})
        + "?tab=tasks",
    }


def _notes_context(request, contact: Contact) -> dict:
    result = keyset_page(
        contact_notes(request.org, contact),
        ["-created_at", "-id"],
        request.GET.get("cursor"),
        NOTES_PAGE,
    )
    notes, next_cursor = result.rows, result.next_cursor
    policy = policy_for(request)
    admin = policy.is_contact_admin()
    for note in notes:
        note.was_edited = (note.updated_at - note.created_at).total_seconds() > EDIT_GRACE_SECONDS
        note.can_change = can_edit_contact(request, contact) and (
            note.author_id == request.user.pk or admin
        )
    return {
        "notes": notes,
        "notes_cursor": next_cursor,
        "note_form": NoteForm() if can_edit_contact(request, contact) else None,
    }


def detail_context(request, contact: Contact, tab: str) -> dict:
    policy = policy_for(request)
    specs = [s for s in full_request_catalog(request) if policy.can_see_field(s.key)]
    tabs = [(key, label) for key, label in TABS if key != "tasks" or policy.can_access("tasks")]
    if tab not in dict(tabs):
        tab = "details"
    context = {
        **_header_context(request, contact),
        "tab": tab,
        "tabs": tabs,
        "open_task_count": getattr(contact, "open_task_count", None) or 0,
        "note_count": getattr(contact, "note_count", None) or 0,
    }
    if tab == "details":
        context.update(_details_context(request, contact, specs))
    elif tab == "timeline":
        context.update(_timeline_context(request, contact))
    elif tab == "tasks":
        context.update(_tasks_context(request, contact))
    elif tab == "notes":
        context.update(_notes_context(request, contact))
    return context


def _contact_with_counts(request, public_id) -> Contact:
    contact = get_object_or_404(
        contacts_with_counts(request.org, policy_for(request)), public_id=public_id
    )
    contact.org = request.org  # the same row; saves a query wherever contact.org is read
    return contact


# Pages -----------------------------------------------------------------------------------


@workspace_view("contacts", "view")
def contact_detail(request, public_id):
    contact = _contact_with_counts(request, public_id)
    tab = request.GET.get("tab", "details")
    context = detail_context(request, contact, tab)
    if request.htmx and not request.htmx.history_restore_request:
        target = request.htmx.target or ""
        if target == "timeline-more":
            return render(request, "contacts/partials/timeline_items.html", context)
        if target == "notes-more":
            return render(request, "contacts/partials/note_items.html", context)
        if target == "contact-tabs":
            return render(request, "contacts/contact_detail.html#tabs", context)
    return render(request, "contacts/contact_detail.html", context)


@workspace_view("contacts", "create")
@require_http_methods(["GET", "POST"])
def contact_create(request):
    policy = policy_for(request)
    form = ContactForm(
        request.POST or None,
        org=request.org,
        policy=policy,
        user=request.user,
        catalog=full_request_catalog(request),
    )
    warning = None
    if (
        request.method == "POST"
        and form.is_valid()
        and not (warning := form_warning.save_blocked_by(request, form, policy))
    ):
        try:
            contact = services.contact_create(
                org=request.org,
                actor=actor(request),
                data=form.service_data(changed_only=False),
                policy=policy,
            )
        except ValidationError as exc:
            form.add_service_errors(exc)
        else:
            messages.success(request, f"{display_name(contact, policy)} was added.")
            url = reverse("contacts:contact_detail", kwargs={"public_id": contact.public_id})
            if not contact_in_scope(request.org, policy, contact.pk):
                # Given away or left unclaimed: outside what this member may open.
                url = _list_url()
            return redirect_or_refresh(request, url)
    context = {**_form_context(request, form, None), "duplicate_warning": warning}
    return render(request, "contacts/contact_form.html", context)


def _list_url() -> str:
    return reverse("contacts:contact_list")


def _form_context(request, form, contact) -> dict:
    """The contact form's context; the company input suggests the companies this member may
    see (the 50 first by name, then whatever matches what they type, via HTMX)."""
    policy = policy_for(request)
    suggestions = []
    if "company" in form.fields and policy.can("companies", "view"):
        suggestions = company_suggestions(request.org, policy)
    return {
        "form": form,
        "contact": contact,
        "name": display_name(contact, policy) if contact else "",
        "has_company_field": "company" in form.fields,
        "options": suggestions,
    }


@workspace_view("contacts", "edit")
@require_http_methods(["GET", "POST"])
def contact_edit(request, public_id):
    policy = policy_for(request)
    contact = get_contact(request, public_id)
    require_contact_edit(request, contact)
    form = ContactForm(
        request.POST or None,
        org=request.org,
        policy=policy,
        user=request.user,
        instance=contact,
        catalog=full_request_catalog(request),
    )
    warning = None
    if (
        request.method == "POST"
        and form.is_valid()
        and not (warning := form_warning.save_blocked_by(request, form, policy, contact))
    ):
        try:
            services.contact_update(
                contact=contact,
                actor=actor(request),
                data=form.service_data(changed_only=True),
                policy=policy,
            )
        except ValidationError as exc:
            form.add_service_errors(exc)
        else:
            messages.success(request, "Changes saved.")
            return redirect_or_refresh(request, _after_change_url(request, contact))
    context = {**_form_context(request, form, contact), "duplicate_warning": warning}
    return render(request, "contacts/contact_form.html", context)


def _after_change_url(request, contact) -> str:
    if contact_in_scope(request.org, policy_for(request), contact.pk):
        return reverse("contacts:contact_detail", kwargs={"public_id": contact.public_id})
    return _list_url()


# Inline edit of one field -----------------------------------------------------------------


def _field_spec(request, key: str):
    """The catalog spec for `key` if this member may see it; else 404 (a hidden field does
    not exist for them)."""
    spec = catalog_by_key(full_request_catalog(request)).get(key)
    if spec is None or not policy_for(request).can_see_field(key):
        raise Http404("No such field.")
    return spec


def _field_row(request, contact, spec, *, form=None, oob_header=False):
    (item,) = _field_items(contact, [spec], _editable_keys(request, contact, [spec]))
    context = {"contact": contact, "item": item, "form": form, "oob_header": oob_header}
    if oob_header:
        context.update(_header_context(request, contact))
    template = "contacts/partials/field_edit.html" if form else "contacts/partials/field_row.html"
    return render(request, template, context)


@workspace_view("contacts", "view")
def contact_field(request, public_id, key):
    """One field's row on the details tab (the "cancel" of an inline edit)."""
    contact = get_contact(request, public_id)
    spec = _field_spec(request, key)
    return _field_row(request, contact, spec)


@workspace_view("contacts", "edit")
@require_http_methods(["GET", "POST"])
def contact_field_edit(request, public_id, key):
    policy = policy_for(request)
    contact = get_contact(request, public_id)
    spec = _field_spec(request, key)
    require_contact_edit(request, contact)
    if not spec.editable or not policy.can_edit_field(key):
        raise PermissionDenied("Your role may not change this field.")
    form = ContactForm(
        request.POST or None,
        org=request.org,
        policy=policy,
        user=request.user,
        instance=contact,
        only=[key],
        catalog=full_request_catalog(request),
    )
    if request.method == "POST" and form.is_valid():
        try:
            contact = services.contact_update(
                contact=contact,
                actor=actor(request),
                data=form.service_data(changed_only=True),
                policy=policy,
            )
        except ValidationError as exc:
            form.add_service_errors(exc)
        else:
            if not request.htmx:
                messages.success(request, f"{spec.label} saved.")
                return redirect_or_refresh(request, _after_change_url(request, contact))
            if not contact_in_scope(request.org, policy, contact.pk):
                messages.success(request, f"{spec.label} saved.")
                return redirect_or_refresh(request, _list_url())
            contact = get_contact(request, public_id)
            return _field_row(request, contact, spec, oob_header=True)
    if not request.htmx:
        return render(
            request,
            "contacts/contact_form.html",
            {**_form_context(request, form, contact), "single_field": spec},
        )
    return _field_row(request, contact, spec, form=form)


# Header actions --------------------------------------------------------------------------


def _detail_url(contact) -> str:
    return reverse("contacts:contact_detail", kwargs={"public_id": contact.public_id})


def _run_action(request, contact, action, success: str):
    try:
        action()
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, success)
    return redirect_or_refresh(request, _after_change_url(request, contact))


@workspace_view("contacts", "edit")
@require_POST
def contact_claim(request, public_id):
    contact = get_contact(request, public_id, for_update=True)
    require_contact_edit(request, contact)
    return _run_action(
        request,
        contact,
        lambda: services.contact_claim(
            contact=contact, actor=actor(request), policy=policy_for(request)
        ),
        "The contact is yours now.",
    )


@workspace_view("contacts", "edit")
@require_POST
def contact_release(request, public_id):
    contact = get_contact(request, public_id, for_update=True)
    require_contact_edit(request, contact)
    return _run_action(
        request,
        contact,
        lambda: services.contact_release(
            contact=contact, actor=actor(request), policy=policy_for(request)
        ),
        "Released: no one owns this contact now.",
    )


@workspace_view("contacts", "edit")
@require_http_methods(["GET", "POST"])
def contact_archive(request, public_id):
    """GET asks for confirmation (works without JavaScript); POST archives."""
    policy = policy_for(request)
    contact = get_contact(request, public_id)
    require_contact_edit(request, contact)
    if request.method == "POST":
        return _run_action(
            request,
            contact,
            lambda: services.contact_archive(contact=contact, actor=actor(request), policy=policy),
            f"{display_name(contact, policy)} was archived. You can restore it at any time.",
        )
    return render(
        request,
        "contacts/contact_archive_confirm.html",
        {"contact": contact, "name": display_name(contact, policy)},
    )


@workspace_view("contacts", "edit")
@require_POST
def contact_restore(request, public_id):
    contact = get_contact(request, public_id)
    require_contact_edit(request, contact)
    return _run_action(
        request,
        contact,
        lambda: services.contact_restore(
            contact=contact, actor=actor(request), policy=policy_for(request)
        ),
        "The contact was restored.",
    )


# Timeline, notes and tasks on the record ---------------------------------------------------


def _tab_response(request, contact, tab: str, *, extra=None):
    contact = _contact_with_counts(request, contact.public_id)
    context = detail_context(request, contact, tab)
    context.update(extra or {})
    if request.htmx:
        return render(request, "contacts/contact_detail.html#tabs", context)
    return render(request, "contacts/contact_detail.html", context)


@workspace_view("contacts", "edit")
@require_POST
def contact_log(request, public_id):
    """Quick-log a call, meeting or note from the timeline tab."""
    contact = get_contact(request, public_id)
    require_contact_edit(request, contact)
    form = QuickLogForm(request.POST)
    if form.is_valid():
        try:
            services.quick_log(
                org=request.org,
                actor=actor(request),
                contact=contact,
                policy=policy_for(request),
                **form.cleaned_data,
            )
        except ValidationError as exc:
            add_errors(form, exc)
        else:
            messages.success(request, "Logged.")
            if not request.htmx:
                return redirect_or_refresh(request, _detail_url(contact) + "?tab=timeline")
            return _tab_response(request, contact, "timeline")
    return _tab_response(request, contact, "timeline", extra={"log_form": form})


@workspace_view("contacts", "edit")
@require_POST
def contact_note_create(request, public_id):
    contact = get_contact(request, public_id)
    require_contact_edit(request, contact)
    form = NoteForm(request.POST)
    if form.is_valid():
        try:
            services.note_create(
                org=request.org,
                actor=actor(request),
                contact=contact,
                body=form.cleaned_data["body"],
                policy=policy_for(request),
            )
        except ValidationError as exc:
            add_errors(form, exc)
        else:
            messages.success(request, "Note added.")
            if not request.htmx:
                return redirect_or_refresh(request, _detail_url(contact) + "?tab=notes")
            return _tab_response(request, contact, "notes")
    return _tab_response(request, contact, "notes", extra={"note_form": form})


def _note_for(request, public_id) -> Note:
    """A note of a contact the member may see (another org's or out of scope: 404)."""
    note = get_object_or_404(notes_with_contacts(request.org), public_id=public_id)
    if note.contact_id is None or not contact_in_scope(
        request.org, policy_for(request), note.contact_id
    ):
        raise Http404("No such note.")
    return note


@workspace_view("contacts", "edit")
@require_http_methods(["GET", "POST"])
def note_edit(request, public_id):
    note = _note_for(request, public_id)
    require_contact_edit(request, note.contact)
    form = NoteForm(request.POST or None, initial={"body": note.body})
    if request.method == "POST" and form.is_valid():
        try:
            services.note_update(
                note=note,
                actor=actor(request),
                body=form.cleaned_data["body"],
                policy=policy_for(request),
            )
        except ValidationError as exc:
            add_errors(form, exc)
        else:
            messages.success(request, "Note saved.")
            return redirect_or_refresh(request, _detail_url(note.contact) + "?tab=notes")
    elif not policy_for(request).is_contact_admin() and note.author_id != request.user.pk:
        raise PermissionDenied("Only the note's author or an admin can change it.")
    return render(request, "contacts/note_form.html", {"form": form, "note": note})


@workspace_view("contacts", "edit")
@require_POST
def note_delete(request, public_id):
    note = _note_for(request, public_id)
    require_contact_edit(request, note.contact)
    services.note_delete(note=note, actor=actor(request), policy=policy_for(request))
    messages.success(request, "Note deleted.")
    if request.htmx:
        return _tab_response(request, note.contact, "notes")
    return redirect_or_refresh(request, _detail_url(note.contact) + "?tab=notes")


@workspace_view("tasks", "create")
@require_POST
def contact_task_create(request, public_id):
    policy = policy_for(request)
    contact = get_contact(request, public_id)
    form = TaskForm(request.POST, org=request.org, policy=policy, user=request.user)
    if form.is_valid():
        try:
            services.task_create(
                org=request.org,
                actor=actor(request),
                data={**form.service_data(), "contact": contact},
                policy=policy,
            )
        except ValidationError as exc:
            add_errors(form, exc)
        else:
            messages.success(request, "Task added.")
            if not request.htmx:
                return redirect_or_refresh(request, _detail_url(contact) + "?tab=tasks")
            return _tab_response(request, contact, "tasks")
    return _tab_response(request, contact, "tasks", extra={"task_form": form})


__all__ = [
    "contact_archive",
    "contact_claim",
    "contact_create",
    "contact_detail",
    "contact_edit",
    "contact_field",
    "contact_field_edit",
    "contact_log",
    "contact_note_create",
    "contact_release",
    "contact_restore",
    "contact_task_create",
    "display_name",
    "form_name",
    "note_delete",
    "note_edit",
]
