"""Global search (the top bar): contacts, companies and deals (by title), with the member's
record scope and field visibility applied, as a results page and as a dropdown of the top
matches. Each kind shows only to members who may view its module; a member who sees neither
contacts nor the pipeline has nothing to search."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from crm.permissions import policy_for
from pipeline.filters import deals_for_search
from pipeline.table import deal_url_maker

from ..selectors import companies_for_search, contacts_for_list, request_catalog
from .common import workspace_view

RESULTS_LIMIT = 50
COMPANY_RESULTS_LIMIT = 20
DEAL_RESULTS_LIMIT = 20
SUGGEST_LIMIT = 5
MIN_SUGGEST_LENGTH = 2


def _require_something_to_search(request) -> None:
    policy = policy_for(request)
    if not (policy.can("contacts", "view") or policy.can("pipeline", "view")):
        raise PermissionDenied("Your role may not search contacts or deals.")


def _deal_results(request, q: str, limit: int) -> list[dict]:
    """Deals whose title matches, in the member's pipeline scope (none without its view)."""
    deals = deals_for_search(org=request.org, policy=policy_for(request), search=q, limit=limit)
    url = deal_url_maker() if deals else None
    return [
        {
            "title": deal.title,
            "stage": deal.stage.name,
            "status": deal.get_status_display() if deal.status != "open" else "",
            "url": url(deal.public_id) if url else "",
        }
        for deal in deals
    ]


def _results(request, q: str, contact_limit: int, company_limit: int, deal_limit: int) -> dict:
    policy = policy_for(request)
    catalog = request_catalog(request)
    visible = {spec.key for spec in catalog}
    contacts = []
    if q and policy.can("contacts", "view"):
        contacts = list(
            contacts_for_list(org=request.org, policy=policy, search=q, catalog=catalog)
            .select_related("company")
            .order_by("-created_at", "-id")[:contact_limit]
        )
    companies = (
        list(
            companies_for_search(org=request.org, policy=policy, search=q).order_by("name", "id")[
                :company_limit
            ]
        )
        if q
        else []
    )
    return {
        "q": q,
        "contacts": [
            {
                "name": c.full_name if {"first_name", "last_name"} & visible else "",
                "email": c.email if "email" in visible else "",
                "company": c.company.name if c.company and "company" in visible else "",
                "url": reverse("contacts:contact_detail", args=[c.public_id]),
            }
            for c in contacts
        ],
        "companies": [
            {
                "name": co.name,
                "domain": co.domain,
                "url": reverse("contacts:company_detail", args=[co.public_id]),
            }
            for co in companies
        ],
        "deals": _deal_results(request, q, deal_limit) if q else [],
        "can_search_contacts": policy.can("contacts", "view"),
        "can_search_deals": policy.can("pipeline", "view"),
        "more_contacts": len(contacts) >= contact_limit,
        "list_url": reverse("contacts:contact_list"),
        "deal_list_url": reverse("pipeline:deal_list"),
    }


@require_GET
@workspace_view()
def search(request):
    _require_something_to_search(request)
    q = (request.GET.get("q") or "").strip()[:200]
    context = _results(request, q, RESULTS_LIMIT, COMPANY_RESULTS_LIMIT, DEAL_RESULTS_LIMIT)
    return render(request, "contacts/search.html", context)


@require_GET
@workspace_view()
def search_suggest(request):
    """The dropdown under the top-bar box: the top 5 contacts, companies and deals as you
    type."""
    _require_something_to_search(request)
    q = (request.GET.get("q") or "").strip()[:200]
    if len(q) < MIN_SUGGEST_LENGTH:
        context = {"q": q, "contacts": [], "companies": [], "deals": [], "too_short": True}
    else:
        context = _results(request, q, SUGGEST_LIMIT, SUGGEST_LIMIT, SUGGEST_LIMIT)
    context["search_url"] = reverse("contacts:search")
    return render(request, "contacts/search_suggest.html", context)
