"""Companies: the list (search, keyset pages, contact counts), the company page with its
contacts and their recent activity, create / edit / archive / restore, and the suggestions
the contact form's company input shows."""

from __future__ import annotations

import re

from django.contrib import messages
from django.contrib.postgres.search import SearchQuery
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, OuterRef, Q, Subquery
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from crm.pagination import page as keyset_page
from crm.permissions import policy_for

from .. import services
from ..fields import company_field_catalog
from ..forms import CompanyForm
from ..models import Activity, Contact, Task
from ..selectors import full_request_catalog
from ..timeline import visible_entries, with_changes
from .common import (
    actor,
    full_page,
    get_company,
    redirect_or_refresh,
    scoped_companies,
    scoped_contacts,
    workspace_view,
)
from .record import display_name

PAGE_SIZE = 50
COMPANY_CONTACTS_SHOWN = 50
COMPANY_ACTIVITY_SHOWN = 20


def _search(queryset, text: str):
    """Prefix full-text search over name and domain ("acm" finds Acme, acme.com)."""
    words = re.findall(r"\w+", text.lower())[:8]
    if not words:
        return queryset
    query = SearchQuery(" & ".join(f"{w}:*" for w in words), search_type="raw", config="simple")
    return queryset.filter(search_vector=query)


def _contact_count(request, **filters):
    """Per-company count of the contacts this member may see, as a correlated subquery:
    it runs for the rows of the page only, never over all companies."""
    contacts = (
        scoped_contacts(request)
        .filter(company=OuterRef("pk"), is_archived=False, **filters)
        .order_by()
        .values("company")
        .annotate(n=Count("*"))
        .values("n")[:1]
    )
    return Subquery(contacts)


@workspace_view("companies", "view")
def company_list(request):
    query = (request.GET.get("q") or "").strip()[:200]
    archived = request.GET.get("archived") == "1"
    companies = scoped_companies(request).filter(is_archived=archived)
    companies = _search(companies, query)
    # "Load more" carries the cursor as `after`.
    result = keyset_page(
        companies.select_related("owner").annotate(contact_count=_contact_count(request)),
        ["name", "id"],
        request.GET.get("after"),
        PAGE_SIZE,
    )
    context = {
        "companies": result.rows,
        "query": query,
        "archived": archived,
        "next_cursor": result.next_cursor,
    }
    if full_page(request):
        return render(request, "contacts/company_list.html", context)
    if request.htmx.target == "company-more":
        return render(request, "contacts/company_list.html#rows", context)
    return render(request, "contacts/company_list.html#results", context)


@workspace_view("companies", "view")
def company_detail(request, public_id):
    policy = policy_for(request)
    company = get_company(request, public_id)
    contacts = scoped_contacts(request).filter(company=company, is_archived=False)
    shown = list(
        contacts.select_related("owner")
        .annotate(
            open_tasks=Subquery(
                Task.objects.for_org(request.org)
                .filter(contact=OuterRef("pk"), status=Task.Status.OPEN)
                .order_by()
                .values("contact")
                .annotate(n=Count("*"))
                .values("n")[:1]
            )
        )
        .order_by("last_name", "first_name", "id")[:COMPANY_CONTACTS_SHOWN]
    )
    for contact in shown:
        contact.display = display_name(contact, policy)
    counts = contacts.aggregate(
        total=Count("id"),
        customers=Count("id", filter=Q(lifecycle_stage=Contact.Stage.CUSTOMER)),
    )
    activity = visible_entries(
        Activity.objects.for_org(request.org).filter(
            Q(company=company) | Q(contact__in=contacts.values("pk"))
        ),
        policy,
        [spec.key for spec in full_request_catalog(request)],
    )
    recent = with_changes(
        activity.select_related("actor", "contact").order_by("-occurred_at", "-id")[
            :COMPANY_ACTIVITY_SHOWN
        ],
        policy,
    )
    for entry in recent:
        entry.contact_name = display_name(entry.contact, policy) if entry.contact_id else ""
    context = {
        "company": company,
        "specs": [s for s in company_field_catalog(request.org) if s.key != "name"],
        "contacts": shown,
        "contact_total": counts["total"],
        "customer_total": counts["customers"],
        "recent_activity": recent,
        "can_edit": policy.can_touch("companies", "edit", company.owner_id),
        "show_stage": policy.can_see_field("lifecycle_stage"),
        "show_owner": policy.can_see_field("owner"),
    }
    return render(request, "contacts/company_detail.html", context)


def _company_url(company) -> str:
    return reverse("contacts:company_detail", kwargs={"public_id": company.public_id})


@workspace_view("companies", "create")
@require_http_methods(["GET", "POST"])
def company_create(request):
    policy = policy_for(request)
    form = CompanyForm(request.POST or None, org=request.org, policy=policy, user=request.user)
    if request.method == "POST" and form.is_valid():
        data = {
            k: v for k, v in form.service_data(changed_only=False).items() if v not in ("", None)
        }
        try:
            company = services.company_create(
                org=request.org, actor=actor(request), data=data, policy=policy
            )
        except ValidationError as exc:
            form.add_service_errors(exc)
        else:
            messages.success(request, f"{company.name} was added.")
            if scoped_companies(request).filter(pk=company.pk).exists():
                return redirect_or_refresh(request, _company_url(company))
            return redirect_or_refresh(request, reverse("contacts:company_list"))
    return render(request, "contacts/company_form.html", {"form": form, "company": None})


@workspace_view("companies", "edit")
@require_http_methods(["GET", "POST"])
def company_edit(request, public_id):
    policy = policy_for(request)
    company = get_company(request, public_id)
    if not policy.can_touch("companies", "edit", company.owner_id):
        raise PermissionDenied("Your role may not change this company.")
    form = CompanyForm(
        request.POST or None, org=request.org, policy=policy, user=request.user, instance=company
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.company_update(
                company=company,
                actor=actor(request),
                data=form.service_data(changed_only=True),
                policy=policy,
            )
        except ValidationError as exc:
            form.add_service_errors(exc)
        else:
            messages.success(request, "Changes saved.")
            if scoped_companies(request).filter(pk=company.pk).exists():
                return redirect_or_refresh(request, _company_url(company))
            return redirect_or_refresh(request, reverse("contacts:company_list"))
    return render(request, "contacts/company_form.html", {"form": form, "company": company})


@workspace_view("companies", "edit")
@require_http_methods(["GET", "POST"])
def company_archive(request, public_id):
    policy = policy_for(request)
    company = get_company(request, public_id)
    if not policy.can_touch("companies", "edit", company.owner_id):
        raise PermissionDenied("Your role may not change this company.")
    if request.method == "POST":
        services.company_archive(company=company, actor=actor(request), policy=policy)
        messages.success(request, f"{company.name} was archived. Its contacts keep their link.")
        return redirect_or_refresh(request, _company_url(company))
    return render(request, "contacts/company_archive_confirm.html", {"company": company})


@workspace_view("companies", "edit")
@require_POST
def company_restore(request, public_id):
    policy = policy_for(request)
    company = get_company(request, public_id)
    if not policy.can_touch("companies", "edit", company.owner_id):
        raise PermissionDenied("Your role may not change this company.")
    services.company_restore(company=company, actor=actor(request), policy=policy)
    messages.success(request, f"{company.name} was restored.")
    return redirect_or_refresh(request, _company_url(company))


@workspace_view("companies", "view")
def company_options(request):
    """<option>s for the contact form's company input (a datalist), matching what is typed."""
    query = (request.GET.get("company") or request.GET.get("q") or "").strip()[:200]
    companies = _search(scoped_companies(request).filter(is_archived=False), query)
    names = list(companies.order_by("name", "id").values_list("name", "domain")[:20])
    return render(request, "contacts/partials/company_options.html", {"options": names})
