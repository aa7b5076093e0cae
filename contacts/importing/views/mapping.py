"""The wizard's mapping step: how the file is read (encoding, delimiter, header row), what each
column becomes, the defaults and the import policy; then on to matching values or the preview."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render

from crm import rls
from crm.form_errors import add_errors
from crm.permissions import policy_for

from .. import display, selectors, services
from ..forms import DetectionForm, MappingForm
from ..mapper import SKIP
from ..models import ImportJob
from .common import EDITABLE, actor, get_job, import_access


# Reading the file again asks the AI provider (seconds): no transaction may stay open meanwhile.
@rls.outside_request_transaction
@import_access
def import_map(request, public_id):
    job = get_job(request, public_id)
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
                    actor=actor(request),
                    policy=policy,
                    encoding=data.get("encoding"),
                    delimiter=data.get("delimiter"),
                    header_row=data["header_row"] - 1,
                )
            except ValidationError as exc:
                add_errors(detection_form, exc)
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
                    actor=actor(request),
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


def _after_mapping(job: ImportJob) -> str:
    """The match-values step when a column's values need a look, else the preview."""
    counts = job.value_counts or {}
    if counts.get("columns") and counts.get("pending"):
        return "contacts:import_values"
    return "contacts:import_preview"
