"""The Inbox (my open tasks by due date, quick-log without leaving the page) and the task
actions used there and on the contact page: complete, reopen, edit, delete.

To-dos (the Task model) live in `todos` modules so they are not mistaken for Celery's
`contacts/tasks.py`."""

from __future__ import annotations

import datetime as dt
import uuid

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import F
from django.http import Http404
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from crm.form_errors import add_errors
from crm.permissions import policy_for

from .. import services
from ..forms import QuickLogForm, TaskForm
from ..models import Task
from ..selectors import search_q
from .common import (
    actor,
    redirect_or_refresh,
    safe_next,
    scoped_contacts,
    scoped_tasks,
    workspace_view,
)
from .record import display_name

INBOX_LIMIT = 500
PICKER_SIZE = 20
RECENTLY_DONE_HOURS = 24


def _today_bounds() -> tuple[dt.datetime, dt.datetime]:
    """Start of today and of tomorrow in the active (org) timezone."""
    now = timezone.localtime()
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    tomorrow = (start + dt.timedelta(days=1)).replace(tzinfo=None)
    return start, timezone.make_aware(tomorrow, now.tzinfo)


def group_tasks(tasks) -> list[tuple[str, str, list]]:
    """Open tasks in the buckets people plan by: overdue, today, upcoming, no date."""
    start, tomorrow = _today_bounds()
    buckets = {"overdue": [], "today": [], "upcoming": [], "none": []}
    for task in tasks:
        if task.due_at is None:
            buckets["none"].append(task)
        elif task.due_at < start:
            buckets["overdue"].append(task)
        elif task.due_at < tomorrow:
            buckets["today"].append(task)
        else:
            buckets["upcoming"].append(task)
    labels = [
        ("overdue", "Overdue"),
        ("today", "Today"),
        ("upcoming", "Upcoming"),
        ("none", "No due date"),
    ]
    return [(key, label, buckets[key]) for key, label in labels]


def _my_open_tasks(request):
    return (
        Task.objects.for_org(request.org)
        .filter(assignee=request.user, status=Task.Status.OPEN)
        .select_related("contact", "company")
        .order_by(F("due_at").asc(nulls_last=True), "id")
    )


def _picker_contacts(request, text: str = ""):
    contacts = scoped_contacts(request).filter(is_archived=False)
    fields = ("public_id", "first_name", "last_name", "email")
    if text:
        policy = policy_for(request)
        matches = contacts.filter(search_q(request.org, text, policy)).order_by("last_name", "id")
        return list(matches.only(*fields)[:PICKER_SIZE])
    # The most recently active first. Rows without activity are left out rather than sorted
    # last: that lets Postgres walk the (org, last_activity_at, id) index backwards and stop
    # after a handful of rows, at any number of contacts.
    recent = contacts.filter(last_activity_at__isnull=False).order_by("-last_activity_at", "-id")
    picked = list(recent.only(*fields)[:PICKER_SIZE])
    if len(picked) < PICKER_SIZE:
        # A young workspace has little activity yet: fill up with the newest contacts.
        seen = [c.pk for c in picked]
        newest = contacts.exclude(pk__in=seen).order_by("-created_at", "-id")
        picked += list(newest.only(*fields)[: PICKER_SIZE - len(picked)])
    return picked


def _log_form(request, data=None) -> QuickLogForm | None:
    policy = policy_for(request)
    if not policy.can("contacts", "edit"):
        return None
    # Only contacts this member may change can be logged against.
    queryset = scoped_contacts(request).filter(is_archived=False)
    form = QuickLogForm(data, contact_queryset=queryset)
    options = _picker_contacts(request)
    chosen = form["contact"].value() if data else None
    if chosen and _is_uuid(chosen) and all(str(c.public_id) != str(chosen) for c in options):
        # Keep a contact picked through the search selectable when the form comes back.
        options = list(queryset.filter(public_id=chosen)[:1]) + options
    form.fields["contact"].set_options(options)
    return form


def _is_uuid(value) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def _inbox_context(request, *, log_form=None, task_form=None) -> dict:
    policy = policy_for(request)
    open_tasks = list(_my_open_tasks(request)[:INBOX_LIMIT])
    since = timezone.now() - dt.timedelta(hours=RECENTLY_DONE_HOURS)
    done = list(
        Task.objects.for_org(request.org)
        .filter(assignee=request.user, status=Task.Status.DONE, completed_at__gte=since)
        .select_related("contact", "company")
        .order_by("-completed_at", "-id")[:20]
    )
    for task in [*open_tasks, *done]:
        task.contact_name = display_name(task.contact, policy) if task.contact_id else ""
    return {
        "groups": group_tasks(open_tasks),
        "open_total": len(open_tasks),
        "truncated": len(open_tasks) >= INBOX_LIMIT,
        "done_recently": done,
        "log_form": log_form if log_form is not None else _log_form(request),
        "task_form": task_form
        if task_form is not None
        else (
            TaskForm(org=request.org, policy=policy, user=request.user)
            if policy.can("tasks", "create")
            else None
        ),
    }


@workspace_view("tasks", "view")
def inbox(request):
    return render(request, "contacts/inbox.html", _inbox_context(request))


@workspace_view("tasks", "create")
@require_POST
def inbox_task_create(request):
    policy = policy_for(request)
    form = TaskForm(request.POST, org=request.org, policy=policy, user=request.user)
    if form.is_valid():
        try:
            services.task_create(
                org=request.org, actor=actor(request), data=form.service_data(), policy=policy
            )
        except ValidationError as exc:
            add_errors(form, exc)
        else:
            messages.success(request, "Task added.")
            if request.htmx:
                return render(request, "contacts/inbox.html#inbox_body", _inbox_context(request))
            return redirect_or_refresh(request, reverse("contacts:inbox"))
    context = _inbox_context(request, task_form=form)
    template = "contacts/inbox.html#inbox_body" if request.htmx else "contacts/inbox.html"
    return render(request, template, context)


@workspace_view("contacts", "edit")
@require_POST
def inbox_log(request):
    """Quick-log a note, call or meeting against a contact picked on the inbox page."""
    form = _log_form(request, request.POST)
    if form is not None and form.is_valid():
        data = dict(form.cleaned_data)
        contact = data.pop("contact")
        if contact is None:
            form.add_error("contact", "Choose the contact this was with.")
        else:
            try:
                services.quick_log(
                    org=request.org,
                    actor=actor(request),
                    contact=contact,
                    policy=policy_for(request),
                    **data,
                )
            except ValidationError as exc:
                add_errors(form, exc)
            else:
                messages.success(
                    request, f"Logged on {display_name(contact, policy_for(request))}."
                )
                fresh = _log_form(request)
                if request.htmx:
                    return render(request, "contacts/inbox.html#log_panel", {"log_form": fresh})
                return redirect_or_refresh(request, reverse("contacts:inbox"))
    if request.htmx:
        return render(request, "contacts/inbox.html#log_panel", {"log_form": form})
    return render(request, "contacts/inbox.html", _inbox_context(request, log_form=form))


@workspace_view("contacts", "view")
def contact_picker(request):
    """<option>s of contacts matching what was typed, for the quick-log contact select."""
    text = (request.GET.get("q") or "").strip()[:200]
    contacts = _picker_contacts(request, text)
    policy = policy_for(request)
    show_email = policy.can_see_field("email")
    options = [
        (c.public_id, display_name(c, policy), c.email if show_email else "") for c in contacts
    ]
    return render(
        request, "contacts/partials/contact_options.html", {"options": options, "query": text}
    )


# Task actions -----------------------------------------------------------------------------


def _task_for(request, public_id) -> Task:
    """A task the member may work on: in the org, in their tasks scope, and (when linked)
    on a contact they may see. Anything else is a 404."""
    task = get_object_or_404(
        scoped_tasks(request).select_related("contact", "company", "assignee"),
        public_id=public_id,
    )
    if task.contact_id and not scoped_contacts(request).filter(pk=task.contact_id).exists():
        raise Http404("No such task.")
    return task


def _task_response(request, task, default_url: str):
    """HTMX: the task's row re-rendered where it was; otherwise back to where it came from."""
    if request.htmx:
        task = _task_for(request, task.public_id)
        task.contact_name = (
            display_name(task.contact, policy_for(request)) if task.contact_id else ""
        )
        return render(
            request,
            "contacts/partials/task_row.html",
            {"task": task, "context": request.POST.get("context", "inbox")},
        )
    return redirect_or_refresh(request, safe_next(request, default_url))


def _default_url(task) -> str:
    if task.contact_id:
        url = reverse("contacts:contact_detail", kwargs={"public_id": task.contact.public_id})
        return f"{url}?tab=tasks"
    return reverse("contacts:inbox")


@workspace_view("tasks", "edit")
@require_POST
def task_complete(request, public_id):
    task = _task_for(request, public_id)
    task = services.task_complete(task=task, actor=actor(request), policy=policy_for(request))
    messages.success(request, f"Done: {task.title}")
    return _task_response(request, task, _default_url(task))


@workspace_view("tasks", "edit")
@require_POST
def task_reopen(request, public_id):
    task = _task_for(request, public_id)
    task = services.task_reopen(task=task, actor=actor(request), policy=policy_for(request))
    messages.success(request, f"Reopened: {task.title}")
    return _task_response(request, task, _default_url(task))


@workspace_view("tasks", "edit")
@require_http_methods(["GET", "POST"])
def task_edit(request, public_id):
    policy = policy_for(request)
    task = _task_for(request, public_id)
    form = TaskForm(
        request.POST or None, org=request.org, policy=policy, user=request.user, instance=task
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.task_update(
                task=task, actor=actor(request), data=form.service_data(), policy=policy
            )
        except ValidationError as exc:
            add_errors(form, exc)
        else:
            messages.success(request, "Task saved.")
            return redirect_or_refresh(request, safe_next(request, _default_url(task)))
    return render(
        request,
        "contacts/task_form.html",
        {
            "form": form,
            "task": task,
            "task_contact_name": display_name(task.contact, policy) if task.contact_id else "",
            "next": safe_next(request, _default_url(task)),
        },
    )


@workspace_view("tasks", "delete")
@require_POST
def task_delete(request, public_id):
    task = _task_for(request, public_id)
    url = _default_url(task)
    services.task_delete(task=task, actor=actor(request), policy=policy_for(request))
    messages.success(request, "Task deleted.")
    if request.htmx:
        return render(request, "contacts/partials/empty.html")
    return redirect_or_refresh(request, safe_next(request, url))


__all__ = [
    "contact_picker",
    "group_tasks",
    "inbox",
    "inbox_log",
    "inbox_task_create",
    "task_complete",
    "task_delete",
    "task_edit",
    "task_reopen",
]
