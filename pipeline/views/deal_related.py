"""A contact's or a company's deals (the Deals section of their pages, with "Create deal"),
and Convert: a Lead or Qualified contact becomes an Opportunity with its deal (and company)
in one step."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Case, Q, Value, When
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from contacts.models import Company, Contact
from contacts.views.common import actor, redirect_or_refresh, workspace_view
from contacts.views.record import display_name
from crm.permissions import policy_for

from ..fields import hidden_deal_fields
from ..forms.deals import ConvertForm, default_stage
from ..models import Deal, DealContact, Stage
from ..selectors import visible_deals
from ..services import convert as convert_services
from .deal_actions import after_save_url

RELATED_DEALS_SHOWN = 25

# From a contact or a company -------------------------------------------------------------------


def _related_deals(request, **match) -> tuple[list[Deal], int]:
    deals = visible_deals(request.org, policy_for(request), archived=False)
    if "contact" in match:
        contact = match["contact"]
        linked = DealContact.objects.for_org(request.org).filter(contact=contact).values("deal_id")
        deals = deals.filter(Q(contact=contact) | Q(pk__in=linked))
    else:
        deals = deals.filter(company=match["company"])
    total = deals.count()
    open_first = Case(When(status=Deal.Status.OPEN, then=Value(0)), default=Value(1))
    shown = list(
        deals.select_related("stage", "pipeline", "owner").order_by(
            open_first, "-updated_at", "-id"
        )[:RELATED_DEALS_SHOWN]
    )
    return shown, total


def _related_context(request, deals, total, **extra) -> dict:
    policy = policy_for(request)
    return {
        "deals": deals,
        "deal_total": total,
        "hidden": hidden_deal_fields(policy),
        "can_create": policy.can("pipeline", "create"),
        **extra,
    }


@workspace_view("contacts", "view")
def contact_deals(request, contact_public_id):
    """The Deals section of a contact's page (loaded by HTMX), or a page of its own."""
    policy = policy_for(request)
    contact = get_object_or_404(
        Contact.objects.for_org(request.org).filter(policy.scope_filter("contacts")),
        public_id=contact_public_id,
    )
    if not policy.can("pipeline", "view"):
        raise PermissionDenied("Your role may not see deals.")
    deals, total = _related_deals(request, contact=contact)
    context = _related_context(
        request,
        deals,
        total,
        contact=contact,
        name=display_name(contact, policy),
        create_url=reverse("pipeline:deal_create") + f"?contact={contact.public_id}",
        can_convert=convert_services.can_convert(contact)
        and policy.can("pipeline", "create")
        and policy.can_touch("contacts", "edit", contact.owner_id),
        is_convertible_stage=contact.lifecycle_stage in convert_services.CONVERTIBLE_STAGES,
    )
    if request.htmx:
        return render(request, "pipeline/partials/deal_related.html", context)
    return render(request, "pipeline/deal_related.html", context)


@workspace_view("companies", "view")
def company_deals(request, company_public_id):
    policy = policy_for(request)
    company = get_object_or_404(
        Company.objects.for_org(request.org).filter(policy.scope_filter("companies")),
        public_id=company_public_id,
    )
    if not policy.can("pipeline", "view"):
        raise PermissionDenied("Your role may not see deals.")
    deals, total = _related_deals(request, company=company)
    context = _related_context(
        request,
        deals,
        total,
        company=company,
        name=company.name,
        create_url=reverse("pipeline:deal_create") + f"?company={company.public_id}",
    )
    if request.htmx:
        return render(request, "pipeline/partials/deal_related.html", context)
    return render(request, "pipeline/deal_related.html", context)


@workspace_view("pipeline", "create")
@require_http_methods(["GET", "POST"])
def contact_convert(request, contact_public_id):
    """Convert a Lead (or Qualified) contact: company if missing, deal, stage Opportunity."""
    policy = policy_for(request)
    contact = get_object_or_404(
        Contact.objects.for_org(request.org)
        .filter(policy.scope_filter("contacts"))
        .select_related("company"),
        public_id=contact_public_id,
    )
    contact.org = request.org
    if not policy.can_touch("contacts", "edit", contact.owner_id):
        raise PermissionDenied("Your role may not change this contact.")
    name = display_name(contact, policy)
    domain = convert_services.email_domain(contact) if policy.can_see_field("email") else ""
    company_visible = contact.company_id and policy.can_see_field("company")
    initial = {
        "title": f"{contact.company.name if company_visible else name} deal",
        "company_name": convert_services.suggested_company_name(contact) if domain else "",
        "use_email_domain": bool(domain),
    }
    stage = default_stage(request.org)
    if stage is not None:
        initial["stage"] = str(stage.public_id)
    form = ConvertForm(
        request.POST or None,
        initial=initial,
        org=request.org,
        policy=policy,
        has_company=bool(contact.company_id),
        email_domain=domain,
    )
    refusal = convert_services.refusal(contact)
    if refusal is None and request.method == "POST" and form.is_valid():
        try:
            result = convert_services.contact_convert(
                contact=contact, actor=actor(request), data=form.service_data(), policy=policy
            )
        except ValidationError as exc:
            if hasattr(exc, "error_dict"):
                for key, errors in exc.message_dict.items():
                    form.add_error(key if key in form.fields else None, errors)
            else:
                form.add_error(None, exc.messages)
        except PermissionDenied as exc:
            form.add_error(None, str(exc))
        else:
            added = f" and {result.company.name} was added" if result.company_created else ""
            messages.success(
                request,
                f"{name} is now an Opportunity: the deal “{result.deal.title}” was created{added}.",
            )
            return redirect_or_refresh(request, after_save_url(request, result.deal))
    return render(
        request,
        "pipeline/deal_convert.html",
        {
            "form": form,
            "contact": contact,
            "name": name,
            "company_name": contact.company.name if company_visible else "",
            "refusal": refusal,
            "has_stages": Stage.objects.for_org(request.org).exists(),
        },
    )
