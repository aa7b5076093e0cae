"""The wizard's match-values step: what each value of the owner and choice columns becomes."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render

from crm.permissions import policy_for

from .. import display, matching, services
from ..forms import ValueMatchForm
from ..models import ImportJob, SavedMapping
from .common import EDITABLE, actor, get_job, import_access


@import_access
def import_values(request, public_id):
    """Step 3: what each value of the owner and choice columns becomes. Reads the counts
    kept when the mapping was saved, so the page does not read the file."""
    job = get_job(request, public_id)
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
                    actor=actor(request),
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
