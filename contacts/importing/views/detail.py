"""The import job's own page: its live progress, what it created or changed (a keyset-paged
diff), cancel, undo, and the report of the rows it refused or took with warnings."""

from __future__ import annotations

import os

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from crm.csvutils import csv_response
from crm.pagination import page as keyset_page
from crm.permissions import policy_for

from ...fields import catalog_by_key, contact_field_catalog
from ...models import Company, Contact
from .. import display, selectors, services
from ..models import ImportJob, ImportRecord, ImportRowError
from ..warning_kinds import fields_text, visible_fields, warning_sentences
from .common import ACTIVE, EDITABLE, FINISHED, actor, get_job, import_access

DIFF_PAGE_SIZE = 50
UNDO_KEPT_SHOWN = 200


def _diff_context(request, job: ImportJob) -> dict:
    """One keyset page (by row number) of what the import created or changed."""
    show = request.GET.get("show")
    if show not in ("created", "updated"):
        show = "created" if job.created_count or not job.updated_count else "updated"
    if show == "created":
        result = selectors.created_page(job, request.GET.get("cursor"), DIFF_PAGE_SIZE)
    else:
        records = ImportRecord.objects.filter(job=job, action=show)
        result = keyset_page(
            records, ["row_number", "id"], request.GET.get("cursor"), DIFF_PAGE_SIZE
        )
    contact_ids = [r.contact_id for r in result.rows]
    policy = policy_for(request)
    # Contacts outside the reader's scope are listed by row only: no name, no values.
    contacts = {
        c.pk: c
        for c in policy.scope_queryset("contacts", Contact.objects.for_org(request.org))
        .filter(pk__in=contact_ids)
        .select_related("company")
    }
    outside = set(
        Contact.objects.for_org(request.org)
        .filter(pk__in=[pk for pk in contact_ids if pk not in contacts])
        .values_list("pk", flat=True)
    )
    user_ids, company_ids = set(), set()
    for record in result.rows:
        for key, pair in (record.changes or {}).items():
            if isinstance(pair, list) and key == "owner":
                user_ids.update(pair)
            elif isinstance(pair, list) and key == "company":
                company_ids.update(pair)
    users = display.member_names(request.org, user_ids)
    companies = dict(
        Company.objects.for_org(request.org)
        .filter(pk__in={i for i in company_ids if isinstance(i, int)})
        .values_list("pk", "name")
    )
    catalog = catalog_by_key(contact_field_catalog(request.org))
    custom_labels = display.custom_field_labels(request.org)
    rows = []
    for record in result.rows:
        contact = contacts.get(record.contact_id)
        rows.append(
            {
                "record": record,
                "contact": contact,
                "outside": record.contact_id in outside,
                "label": display.contact_label(contact, policy.can_see_field),
                "changes": display.change_rows(
                    (record.changes or {}) if contact is not None else {},
                    catalog=catalog,
                    custom_labels=custom_labels,
                    users=users,
                    companies=companies,
                    can_see=policy.can_see_field,
                ),
            }
        )
    return {
        "show": show,
        "diff_page": result,
        "diff_rows": rows,
        "show_email": policy.can_see_field("email"),
        "show_company": policy.can_see_field("company"),
    }


def _detail_context(request, job: ImportJob) -> dict:
    is_undoing = job.status == ImportJob.Status.UNDOING
    context = {
        "job": job,
        "step": 4,
        "progress": display.progress_figures(job),
        "is_active": job.status in ACTIVE,
        "is_undoing": is_undoing,
        # The status region polls while a worker is importing or undoing.
        "is_polling": job.status in ACTIVE or is_undoing,
        "is_finished": job.status in FINISHED,
        "duration": display.duration_text(job),
        "warning_sentences": warning_sentences(job.warning_counts or {}, job),
    }
    if is_undoing:
        context["undo_progress"] = display.undo_progress(job)
    if job.status in FINISHED:
        context["mapping_rows"] = display.mapping_rows(job, request.org)
        context.update(_diff_context(request, job))
        context["can_undo"] = (
            job.status != ImportJob.Status.UNDONE
            and not job.undone_at
            and (job.created_count or job.updated_count)
            and policy_for(request).can("contacts", "delete")
        )
        if job.undo_result:
            policy = policy_for(request)
            ids = job.undo_result.get("edited_contact_ids") or []
            kept = policy.scope_queryset(
                "contacts",
                Contact.objects.for_org(request.org).filter(pk__in=ids[:UNDO_KEPT_SHOWN]),
            )
            show_email = policy.can_see_field("email")
            context["kept_contacts"] = [
                {
                    "contact": contact,
                    "label": display.contact_label(contact, policy.can_see_field),
                    "email": contact.email if show_email else "",
                }
                for contact in kept.order_by("last_name", "first_name", "id")
            ]
    return context


@import_access
def import_detail(request, public_id):
    job = get_job(request, public_id)
    if job.status in EDITABLE:
        target = "contacts:import_preview" if job.status == "mapped" else "contacts:import_map"
        return redirect(target, public_id=job.public_id)
    context = _detail_context(request, job)
    if request.htmx and not request.htmx.history_restore_request:
        return render(request, "contacts/import/detail.html#diff", context)
    return render(request, "contacts/import/detail.html", context)


@import_access
def import_progress(request, public_id):
    """The job's live status for the page's HTMX poll; a plain visit gets the whole page."""
    job = get_job(request, public_id)
    if not request.htmx or request.htmx.history_restore_request:
        return redirect("contacts:import_detail", public_id=job.public_id)
    return render(request, "contacts/import/detail.html#status", _detail_context(request, job))


@require_POST
@import_access
def import_cancel(request, public_id):
    job = get_job(request, public_id)
    try:
        services.import_cancel(job=job, actor=actor(request), policy=policy_for(request))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("contacts:import_detail", public_id=job.public_id)
    if job.status == ImportJob.Status.CANCELLED:
        messages.success(request, f"The import of {job.file_name} was cancelled.")
        if job.started_at is None:
            return redirect("contacts:import_history")
    else:
        messages.success(
            request, "Stopping after the current batch. Rows already imported stay imported."
        )
    return redirect("contacts:import_detail", public_id=job.public_id)


@import_access
def import_undo(request, public_id):
    job = get_job(request, public_id)
    policy = policy_for(request)
    if not policy.can("contacts", "delete"):
        raise PermissionDenied("Undoing an import deletes contacts; your role may not.")
    if request.method == "POST":
        try:
            services.import_undo(job=job, actor=actor(request), policy=policy)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, f"Undoing {job.file_name}. You can leave this page.")
        return redirect("contacts:import_detail", public_id=job.public_id)
    if job.status == ImportJob.Status.UNDOING:
        messages.info(request, "This import is already being undone.")
        return redirect("contacts:import_detail", public_id=job.public_id)
    if job.status not in FINISHED or job.undone_at:
        messages.info(request, "This import can't be undone.")
        return redirect("contacts:import_detail", public_id=job.public_id)
    outside = selectors.undo_outside_scope(job, policy)
    if outside:
        messages.error(request, services.undo_scope_refusal(outside))
        return redirect("contacts:import_detail", public_id=job.public_id)
    return render(
        request,
        "contacts/import/undo_confirm.html",
        {"job": job, "estimate": selectors.undo_counts(job), "step": 4},
    )


@import_access
def import_errors(request, public_id):
    """The rows the import could not take and those it took with warnings, as a CSV with
    the file's own columns, an Error column and a Warnings column ("Column: message" per
    field), ready to fix and upload again. A reader other than the uploader gets the columns
    of fields hidden from them blank (display.hidden_columns), and no value quoted from them."""
    job = get_job(request, public_id)
    headers = list(job.headers)
    # A fixed report uploaded again already ends in "Error" (and "Warnings"): replace
    # them, don't stack.
    width = len(headers)
    if width and headers[width - 1] == "Warnings":
        width -= 1
    if width and headers[width - 1] == "Error":
        width -= 1
    hidden = display.hidden_columns(job, policy_for(request), request.user.pk)

    def rows():
        errors = ImportRowError.objects.filter(job=job).order_by("row_number", "id")
        for error in errors.iterator(chunk_size=2000):
            cells = display.without_columns(list(error.values)[:width], hidden)
            cells += [""] * (width - len(cells))
            if error.is_warning:
                fields = visible_fields(error.fields or [], headers, hidden)
                yield [*cells, "", fields_text(fields)]
            else:
                message = display.safe_error(error.message, headers, hidden)
                yield [*cells, f"Row {error.row_number}: {message}", ""]

    stem = os.path.splitext(job.file_name)[0] or "import"
    return csv_response(rows(), [*headers[:width], "Error", "Warnings"], f"{stem}-errors.csv")
