"""The wizard's preview step: the first rows as they would be imported, with their problems and
warnings, and the button that starts the import."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render

from crm.permissions import policy_for

from ...fields import catalog_by_key, contact_field_catalog
from .. import display, services
from ..models import ImportJob
from ..warning_kinds import visible_fields, warning_sentences
from .common import actor, get_job, import_access


@import_access
def import_preview(request, public_id):
    job = get_job(request, public_id)
    if job.status == ImportJob.Status.UPLOADED:
        messages.info(request, "Map the columns first.")
        return redirect("contacts:import_map", public_id=job.public_id)
    if job.status != ImportJob.Status.MAPPED:
        return redirect("contacts:import_detail", public_id=job.public_id)
    policy = policy_for(request)
    if request.method == "POST":
        try:
            services.import_start(job=job, actor=actor(request), policy=policy)
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
