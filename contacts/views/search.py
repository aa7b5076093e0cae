"""Global search (the top bar): contacts and companies, with the member's record scope and
field visibility applied, as a results page and as a dropdown of the top matches."""

from __future__ import annotations

from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from crm.permissions import policy_for

from ..selectors import companies_for_search, contacts_for_list, request_catalog
from .common import workspace_view

RESULTS_LIMIT = 50
COMPANY_RESULTS_LIMIT = 20
SUGGEST_LIMIT = 5
MIN_SUGGEST_LENGTH = 2


def _results(request, q: str, contact_limit: int, company_limit: int) -> dict:
    policy = policy_for(request)
    catalog = request_catalog(request)
    visible = {spec.key for spec in catalog}
    contacts = []
    if q:
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
        "more_contacts": len(contacts) >= contact_limit,
        "list_url": reverse("contacts:contact_list"),
    }


@require_GET
@workspace_view("contacts", "view")
def search(request):
    q = (request.GET.get("q") or "").strip()[:200]
    context = _results(request, q, RESULTS_LIMIT, COMPANY_RESULTS_LIMIT)
    return render(request, "contacts/search.html", context)


@require_GET
@workspace_view("contacts", "view")
def search_suggest(request):
    """The dropdown under the top-bar box: the top 5 contacts and companies as you type."""
    q = (request.GET.get("q") or "").strip()[:200]
    if len(q) < MIN_SUGGEST_LENGTH:
        context = {"q": q, "contacts": [], "companies": [], "too_short": True}
    else:
        context = _results(request, q, SUGGEST_LIMIT, SUGGEST_LIMIT)
    context["search_url"] = reverse("contacts:search")
    return render(request, "contacts/search_suggest.html", context)
