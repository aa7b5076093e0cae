"""The import wizard (upload → map → preview → import), the job's own page with its live
progress, what it changed, its error report and Undo, and the organization's import history.

Every view needs the contacts module and the right to import (contacts create or edit); the
services re-check what they need, so a forged POST gets the same 403 as a hidden button.
An import is its creator's, as a contact is its owner's: a member reaches only the imports
their contacts scope covers (selectors.imports_in_scope), and any other is a 404. What its
pages show of contacts and of the file follows the reader's record scope and field rules.
"""

from __future__ import annotations

import os
from functools import wraps

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.db.models import F
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_POST

from crm.csvutils import csv_response
from crm.decorators import member_required
from crm.pagination import page as keyset_page
from crm.permissions import policy_for
from crm.selectors import org_timezone
from crm.services import Actor

from ..fields import catalog_by_key, contact_field_catalog
from ..models import Company, Contact
from . import display, matching, selectors, services
from .forms import DetectionForm, MappingForm, UploadForm, ValueMatchForm
from .mapper import SKIP
from .models import ImportJob, ImportRecord, ImportRowError, SavedMapping
from .warning_kinds import fields_text, visible_fields, warning_sentences

DIFF_PAGE_SIZE = 50
HISTORY_PAGE_SIZE = 25
UNDO_KEPT_SHOWN = 200
ACTIVE = (ImportJob.Status.QUEUED, ImportJob.Status.RUNNING)
EDITABLE = (ImportJob.Status.UPLOADED, ImportJob.Status.MAPPED)
FINISHED = (
    ImportJob.Status.DONE,
    ImportJob.Status.FAILED,
    ImportJob.Status.CANCELLED,
    ImportJob.Status.UNDONE,
)


def import_access(view):
    """The member may work in contacts and import into them; dates in the org's timezone."""

    @member_required("contacts", "view")
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        services.require_import_rights(policy_for(request))
        with timezone.override(org_timezone(request.org)):
            return view(request, *args, **kwargs)

    return wrapped


def _jobs(request):
    """The imports this member may see: another's is a 404 on every page, like another org's."""
    return selectors.imports_in_scope(request.org, policy_for(request)).select_related("created_by")


def _job(request, public_id) -> ImportJob:
    return get_object_or_404(_jobs(request), public_id=public_id)


def _actor(request) -> Actor:
    return Actor.from_request(request)


# Upload ---------------------------------------------------------------------------------


class UploadLimitHandler(FileUploadHandler):
    """Refuses an upload over the limit as soon as that is known (from the request's length,
    else while it arrives), so an oversized file is never written to disk."""

    # Room for the form's other fields and the multipart boundaries around the file.
    OVERHEAD = 64 * 1024

    def __init__(self, request, limit: int):
        super().__init__(request)
        self.limit = limit
        self.too_large = False

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        self.too_large = content_length > self.limit + self.OVERHEAD

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        if self.too_large:
            self._refuse()

    def receive_data_chunk(self, raw_data, start):
        if start + len(raw_data) > self.limit:
            self._refuse()
        return raw_data

    def file_complete(self, file_size):
        return None

    def _refuse(self):
        self.request.import_upload_refused = True
        raise StopUpload(connection_reset=False)


def _limit_mb() -> int:
    return services.max_upload_bytes() // (1024 * 1024)


# The upload handlers can only change before the body is read, which CSRF checking does; so
# the check is exempted here and made by the inner view instead, after the handler is in place.
@csrf_exempt
@import_access
def import_start(request):
    if request.method == "POST":
        request.upload_handlers.insert(0, UploadLimitHandler(request, services.max_upload_bytes()))
    return _upload_page(request)


@csrf_protect
def _upload_page(request):
    form = UploadForm()
    if request.method == "POST":
        form = UploadForm(request.POST, request.FILES)
        if getattr(request, "import_upload_refused", False):
            form.is_valid()
            form.errors["file"] = form.error_class(
                [f"The file is larger than the {_limit_mb()} MB limit."]
            )
        elif form.is_valid():
            try:
                job = services.import_create(
                    org=request.org,
                    actor=_actor(request),
                    policy=policy_for(request),
                    upload=form.cleaned_data["file"],
                )
            except ValidationError as exc:
                _errors_to_form(form, exc, default_field="file")
            else:
                return redirect("contacts:import_map", public_id=job.public_id)
    recent = _jobs(request).order_by("-created_at", "-id")[:5]
    return render(
        request,
        "contacts/import/upload.html",
        {
            "form": form,
            "limit_mb": _limit_mb(),
            "accepted": ", ".join(services.ALLOWED_EXTENSIONS),
            "recent": recent,
            "step": 1,
        },
        status=400 if form.is_bound and form.errors else 200,
    )


def _errors_to_form(form, exc: ValidationError, default_field=None) -> None:
    if hasattr(exc, "error_dict"):
        for key, messages_ in exc.message_dict.items():
            field = key if key in form.fields else default_field
            for message in messages_:
                form.add_error(field, message)
    else:
        for message in exc.messages:
            form.add_error(default_field, message)


# Map ------------------------------------------------------------------------------------


@import_access
def import_map(request, public_id):
    job = _job(request, public_id)
    if job.status not in EDITABLE:
        return redirect("contacts:import_detail", public_id=job.public_id)
    policy = policy_for(request)
    targets = services.import_targets(request.org, policy)
    can_create_custom = policy.can("settings", "edit")
    form_kwargs = {
        "job": job,
        "targets": targets,
        "can_create_custom": can_create_custom,
        # A member who sees only their own (or their team's) contacts would lose sight of
        # unassigned ones, so their imports are theirs unless they choose otherwise.
        "suggested_owner": (
            str(request.user.public_id) if policy.scope("contacts") != "all" else ""
        ),
        # Only members whose contacts this member reaches, as on the contact form.
        "owners": selectors.assignable_owners(request.org, policy),
        "owner_error": services.owner_refusal(policy),
    }
    detection_form = DetectionForm(job=job)
    mapping_form = None
    status = 200

    if request.method == "POST" and request.POST.get("step") == "detect":
        detection_form = DetectionForm(request.POST, job=job)
        if detection_form.is_valid():
            data = detection_form.cleaned_data
            try:
                services.import_redetect(
                    job=job,
                    actor=_actor(request),
                    policy=policy,
                    encoding=data.get("encoding"),
                    delimiter=data.get("delimiter"),
                    header_row=data["header_row"] - 1,
                )
            except ValidationError as exc:
                _errors_to_form(detection_form, exc)
            else:
                messages.success(request, "The file was read again with your settings.")
                return redirect("contacts:import_map", public_id=job.public_id)
        status = 400
    elif request.method == "POST":
        mapping_form = MappingForm(request.POST, **form_kwargs)
        if mapping_form.is_valid():
            try:
                services.import_set_mapping(
                    job=job,
                    actor=_actor(request),
                    policy=policy,
                    mapping=mapping_form.mapping(),
                    defaults=mapping_form.defaults(),
                    import_policy=mapping_form.cleaned_data["policy"],
                    blank_policy=mapping_form.cleaned_data["blank_policy"],
                    save_as=mapping_form.cleaned_data.get("save_as", ""),
                    custom_types=mapping_form.custom_types(),
                )
            except ValidationError as exc:
                mapping_form.add_service_errors(exc)
            else:
                if mapping_form.cleaned_data.get("save_as", "").strip():
                    messages.success(
                        request, f"Mapping saved as “{mapping_form.cleaned_data['save_as']}”."
                    )
                return redirect(_after_mapping(job), public_id=job.public_id)
        status = 400

    if mapping_form is None:
        suggested = {s["column"]: s["target"] for s in job.suggestions}
        reset = request.GET.get("reset") == "suggestions"
        mapping_form = MappingForm(mapping=suggested if reset else None, **form_kwargs)

    mapping_form.describe_errors()
    try:
        detection = services.import_detection(job)
    except ValidationError as exc:
        # The file passed its bounds when it was uploaded; limits lowered since refuse it now.
        # Start again from the upload page, where the message stands, instead of a 500.
        messages.error(request, " ".join(exc.messages))
        return redirect("contacts:import_start")
    hidden = display.hidden_columns(job, policy, request.user.pk)
    labels = display.target_labels(targets)
    suggestions = {s["column"]: s for s in job.suggestions}
    columns = []
    for index, (header, field, type_field) in enumerate(
        zip(job.headers, mapping_form.column_fields(), mapping_form.type_fields(), strict=True)
    ):
        suggestion = suggestions.get(header) or {"target": SKIP, "confidence": 0, "reason": ""}
        level, level_label = display.confidence_level(suggestion["confidence"])
        columns.append(
            {
                "header": header,
                "field": field,
                "type_field": type_field,
                "samples": (
                    [] if index in hidden else display.column_samples(detection.sample_rows, index)
                ),
                "suggested": suggestion["target"],
                "suggested_label": labels.get(suggestion["target"], suggestion["target"]),
                "confidence": suggestion["confidence"],
                "level": level,
                "level_label": level_label,
                "reason": suggestion["reason"],
            }
        )
    context = {
        "job": job,
        "step": 2,
        "detection": display.detection_summary(job, detection),
        "detection_form": detection_form,
        "form": mapping_form,
        "columns": columns,
        "saved_mapping": (job.defaults or {}).get("saved_mapping", ""),
        "ai_note": (job.defaults or {}).get("ai_note", ""),
        "can_create_custom": can_create_custom,
    }
    return render(request, "contacts/import/map.html", context, status=status)


# Match values ---------------------------------------------------------------------------


def _after_mapping(job: ImportJob) -> str:
    """The match-values step when a column's values need a look, else the preview."""
    counts = job.value_counts or {}
    if counts.get("columns") and counts.get("pending"):
        return "contacts:import_values"
    return "contacts:import_preview"


@import_access
def import_values(request, public_id):
    """Step 3: what each value of the owner and choice columns becomes. Reads the counts
    kept when the mapping was saved, so the page does not read the file."""
    job = _job(request, public_id)
    if job.status == ImportJob.Status.UPLOADED:
        messages.info(request, "Map the columns first.")
        return redirect("contacts:import_map", public_id=job.public_id)
    if job.status not in EDITABLE:
        return redirect("contacts:import_detail", public_id=job.public_id)
    policy = policy_for(request)
    definitions = matching.list_definitions(request.org)
    wanted = matching.value_columns(job, definitions)
    if not wanted:
        return redirect("contacts:import_preview", public_id=job.public_id)
    if not matching.cache_is_current(job, wanted):
        try:
            services.import_refresh_value_counts(job=job, policy=policy)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return redirect("contacts:import_map", public_id=job.public_id)
    cached = job.value_counts["columns"]
    members = matching.members_for_matching(job, policy)
    suggester = matching.Suggester(members, definitions)
    shown = [{"header": h, "target": t, **cached[h]} for h, t in wanted.items() if h in cached]
    form = ValueMatchForm(columns=shown)
    status = 200
    if request.method == "POST":
        form = ValueMatchForm(request.POST, columns=shown)
        if form.is_valid():
            try:
                services.import_set_value_map(
                    job=job,
                    actor=_actor(request),
                    policy=policy,
                    choices=form.choices(),
                    save_as=form.cleaned_data.get("save_as", ""),
                )
            except ValidationError as exc:
                form.add_service_errors(exc)
            else:
                if form.cleaned_data.get("save_as", "").strip():
                    messages.success(
                        request, f"Mapping saved as “{form.cleaned_data['save_as'].strip()}”."
                    )
                return redirect("contacts:import_preview", public_id=job.public_id)
        status = 400
    reset = request.method == "GET" and request.GET.get("reset") == "suggestions"
    context = {
        "job": job,
        "step": 2.5,
        "form": form,
        "columns": display.value_match_columns(
            job,
            shown,
            form,
            suggester=suggester,
            members=members,
            definitions=definitions,
            targets=dict(
                (k, label) for k, label, _ in services.import_targets(request.org, policy)
            ),
            reset=reset,
        ),
        "saved_mapping": SavedMapping.objects.for_org(request.org)
        .filter(headers_signature=services.headers_signature(job.headers))
        .first(),
    }
    return render(request, "contacts/import/values.html", context, status=status)


# Preview --------------------------------------------------------------------------------


@import_access
def import_preview(request, public_id):
    job = _job(request, public_id)
    if job.status == ImportJob.Status.UPLOADED:
        messages.info(request, "Map the columns first.")
        return redirect("contacts:import_map", public_id=job.public_id)
    if job.status != ImportJob.Status.MAPPED:
        return redirect("contacts:import_detail", public_id=job.public_id)
    policy = policy_for(request)
    if request.method == "POST":
        try:
            services.import_start(job=job, actor=_actor(request), policy=policy)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return redirect("contacts:import_map", public_id=job.public_id)
        messages.success(request, f"Importing {job.file_name}. You can leave this page.")
        return redirect("contacts:import_detail", public_id=job.public_id)
    try:
        preview = services.import_preview(job)
    except ValidationError as exc:
        # e.g. a custom field the mapping stores into was deactivated meanwhile
        messages.error(request, " ".join(exc.messages))
        return redirect("contacts:import_map", public_id=job.public_id)

    catalog = catalog_by_key(contact_field_catalog(request.org))
    # Fields hidden from this member stay out, and so do the file's hidden columns.
    can_see = policy.can_see_field
    keys = [k for k in preview["columns"] if k == "custom" or can_see(display.preview_field(k))]
    hidden = display.hidden_columns(job, policy, request.user.pk)
    headings = []
    for key in keys:
        spec = catalog.get(key) or catalog.get(key.removesuffix("_id"))
        headings.append(display.PREVIEW_LABELS.get(key) or (spec.label if spec else key))
    users = display.member_names(
        request.org, [row["values"].get("owner_id") for row in preview["rows"]]
    )
    custom_labels = display.custom_field_labels(request.org)
    rows = []
    for row in preview["rows"]:
        values = row["values"]
        if "custom" in values:
            values = {**values, "custom": display.visible_custom(values["custom"], can_see)}
        if values:
            cells = [
                display.display_value(
                    key, values.get(key), users=users, custom_labels=custom_labels
                )
                for key in keys
            ]
        else:
            cells = None
        problem = display.safe_error(row["problem"], job.headers, hidden)
        if cells is None and not problem:
            problem = "Not a contact: a summary or footer line, skipped."
        raw = " · ".join(c for c in display.without_columns(row["cells"], hidden) if c)
        warnings = visible_fields(row.get("warnings") or [], job.headers, hidden)
        rows.append({**row, "problem": problem, "display": cells, "raw": raw, "warnings": warnings})
    context = {
        "job": job,
        "step": 3,
        "preview": preview,
        "headings": headings,
        "rows": rows,
        "opted_in_default": (job.defaults or {}).get("consent_status") == "opted_in",
        "preview_limit": services.PREVIEW_ROWS,
        "nothing_to_do": not (preview["created"] or preview["updated"] or preview["estimated"]),
        "warning_sentences": warning_sentences(preview.get("warning_counts") or {}, job),
    }
    return render(request, "contacts/import/preview.html", context)


# The job: progress, results, diff ------------------------------------------------------


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
    job = _job(request, public_id)
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
    job = _job(request, public_id)
    if not request.htmx or request.htmx.history_restore_request:
        return redirect("contacts:import_detail", public_id=job.public_id)
    return render(request, "contacts/import/detail.html#status", _detail_context(request, job))


@require_POST
@import_access
def import_cancel(request, public_id):
    job = _job(request, public_id)
    try:
        services.import_cancel(job=job, actor=_actor(request), policy=policy_for(request))
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
    job = _job(request, public_id)
    policy = policy_for(request)
    if not policy.can("contacts", "delete"):
        raise PermissionDenied("Undoing an import deletes contacts; your role may not.")
    if request.method == "POST":
        try:
            services.import_undo(job=job, actor=_actor(request), policy=policy)
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
    job = _job(request, public_id)
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


# History and the dashboard ---------------------------------------------------------------


@import_access
def import_history(request):
    jobs = _jobs(request)
    result = keyset_page(jobs, ["-created_at", "-id"], request.GET.get("cursor"), HISTORY_PAGE_SIZE)
    for job in result.rows:
        job.duration_text = display.duration_text(job)
    context = {"page": result}
    if request.htmx and not request.htmx.history_restore_request:
        return render(request, "contacts/import/history.html#rows", context)
    return render(request, "contacts/import/history.html", context)


DASHBOARD_IMPORTS = 5


def recent_imports_panel(request) -> dict | None:
    """Dashboard panel: the latest imports the member may see, for members who may import."""
    policy = policy_for(request)
    if not (policy.can("contacts", "create") or policy.can("contacts", "edit")):
        return None
    jobs = list(
        _jobs(request)
        .exclude(status__in=EDITABLE)
        .order_by(F("created_at").desc(), "-id")[:DASHBOARD_IMPORTS]
    )
    return {"template": "contacts/import/_dashboard_panel.html", "jobs": jobs}
