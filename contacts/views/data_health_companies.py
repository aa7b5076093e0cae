"""Contacts → Data Health → Companies: companies that look like one (same domain, or the
same name once legal forms such as "GmbH" or "Inc." are gone), and their merge.

The list shows each group with its reasons; the member picks the company to keep and the
ones to fold into it, then a confirmation page names them all before anything changes.
Access: the contact Data Health page's right (contacts edit) plus companies edit; merging
also needs companies delete. Only companies of the member's org and record scope are
listed or accepted: any other id is a 404. contacts.services.company_merge does the work
and says no in its own words."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count
from django.http import Http404
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from crm.permissions import policy_for

from ..bulk import clean_ids
from ..dedup.companies import company_duplicate_groups
from ..models import Company, Contact
from ..services.company_merge import company_merge_blockers, merge_companies
from .common import actor, redirect_or_refresh, scoped_companies, workspace_view

GROUPS_SHOWN = 50
MAX_MERGED_AT_ONCE = 20  # companies folded into one primary by one confirmation
LIST_TEMPLATE = "contacts/data_health/companies.html"
CONFIRM_TEMPLATE = "contacts/data_health/companies_confirm.html"


def can_merge_companies(policy) -> bool:
    """A merge changes both companies and archives one: edit and delete rights."""
    return policy.can("companies", "edit") and policy.can("companies", "delete")


def _require_access(request) -> None:
    policy_for(request).require("companies", "edit")


def _contact_counts(org, company_ids) -> dict[int, int]:
    rows = (
        Contact.objects.for_org(org)
        .filter(company_id__in=company_ids, is_archived=False)
        .order_by()
        .values("company_id")
        .annotate(n=Count("id"))
    )
    return {row["company_id"]: row["n"] for row in rows}


@require_GET
@workspace_view("contacts", "edit")
def company_duplicates(request):
    _require_access(request)
    policy = policy_for(request)
    found = company_duplicate_groups(request.org, companies=scoped_companies(request))
    shown = found[:GROUPS_SHOWN]
    ids = {pk for group in shown for pk in group.ids}
    companies = {
        c.pk: c
        for c in Company.objects.for_org(request.org).filter(pk__in=ids).select_related("owner")
    }
    counts = _contact_counts(request.org, ids)
    groups = []
    for group in shown:
        members = [companies[pk] for pk in group.ids if pk in companies]
        if len(members) < 2:
            continue  # merged or archived since the groups were read
        for company in members:
            company.contact_count = counts.get(company.pk, 0)
        # The company most contacts already use stays by default; on a tie, the oldest.
        keep = max(members, key=lambda c: (c.contact_count, -c.pk))
        groups.append({"members": members, "reasons": group.reasons, "keep": keep})
    context = {
        "groups": groups,
        "total": len(found),
        "capped": len(found) > GROUPS_SHOWN,
        "can_merge": can_merge_companies(policy),
    }
    return render(request, LIST_TEMPLATE, context)


class _TooMany(Exception):
    """More companies than one confirmation merges."""


def _chosen(request) -> tuple[Company | None, list[Company]]:
    """The company to keep and the ones to merge into it, from the form (GET or POST).
    An id of another org, or outside the member's scope, is a 404."""
    data = request.POST if request.method == "POST" else request.GET
    primary_ids = clean_ids([data.get("primary", "")])
    wanted = list(clean_ids(data.getlist("ids")))
    if primary_ids and primary_ids[0] not in wanted:
        wanted.insert(0, primary_ids[0])
    if len(wanted) > MAX_MERGED_AT_ONCE + 1:
        raise _TooMany
    found = {
        str(c.public_id): c
        for c in scoped_companies(request).filter(public_id__in=wanted).select_related("owner")
    }
    if len(found) != len(wanted):
        raise Http404("No such company.")
    for company in found.values():
        company.org = request.org
    primary = found[primary_ids[0]] if primary_ids else None
    others = [found[pk] for pk in wanted if primary is None or pk != str(primary.public_id)]
    return primary, others


def _blockers(policy, primary, others) -> list[str]:
    if primary is None:
        return ["Choose the company to keep."]
    if not others:
        return ["Choose at least one other company to merge into it."]
    problems = []
    for other in others:
        problems.extend(company_merge_blockers(primary=primary, secondary=other, policy=policy))
    return problems


def _confirm_context(request, primary, others, errors=None) -> dict:
    policy = policy_for(request)
    # A refusal (`errors`) already says why; otherwise the page says what stands in the way.
    problems = list(errors) if errors is not None else _blockers(policy, primary, others)
    counts = _contact_counts(request.org, [c.pk for c in [primary, *others] if c is not None])
    for company in [primary, *others]:
        if company is not None:
            company.contact_count = counts.get(company.pk, 0)
    return {
        "primary": primary,
        "others": others,
        "other_names": ", ".join(f"“{c.name}”" for c in others),
        "problems": list(dict.fromkeys(problems)),
        "can_merge": can_merge_companies(policy) and not problems,
    }


@require_http_methods(["GET", "POST"])
@workspace_view("contacts", "edit")
def company_merge(request):
    """GET: the confirmation page naming the company kept and the ones merged into it.
    POST (from that page): merge them, all or none."""
    _require_access(request)
    try:
        primary, others = _chosen(request)
    except _TooMany:
        problem = f"Merge at most {MAX_MERGED_AT_ONCE} companies into one at a time; untick some."
        return render(request, CONFIRM_TEMPLATE, _confirm_context(request, None, [], [problem]))
    if request.method == "GET" or primary is None or not others:
        return render(request, CONFIRM_TEMPLATE, _confirm_context(request, primary, others))
    policy = policy_for(request)
    if not can_merge_companies(policy):
        raise PermissionDenied("Your role may not merge companies.")
    kept = primary
    try:
        with transaction.atomic():
            moved = 0
            for other in others:
                result = merge_companies(
                    primary=kept, secondary=other, actor=actor(request), policy=policy
                )
                kept = result.primary
                moved += result.moved_count
    except (ValidationError, PermissionDenied) as exc:
        texts = list(getattr(exc, "messages", None) or []) or [
            str(exc) or "Your role may not merge these companies."
        ]
        status = 403 if isinstance(exc, PermissionDenied) else 409
        context = _confirm_context(request, primary, others, errors=texts)
        return render(request, CONFIRM_TEMPLATE, context, status=status)
    names = ", ".join(f"“{c.name}”" for c in others)
    messages.success(
        request,
        f"Merged {names} into “{kept.name}”: {moved} linked records moved; "
        f"{'they are' if len(others) > 1 else 'it is'} archived.",
    )
    return redirect_or_refresh(
        request, reverse("contacts:company_detail", kwargs={"public_id": kept.public_id})
    )
