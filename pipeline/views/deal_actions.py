"""Create and edit a deal (with "Create deal" prefilled from a contact or a company), close
it as won or lost with a reason, reopen, archive and restore it, and the contacts on it with
their roles. The page these come back to is pipeline/views/deals.py."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from contacts.models import Contact
from contacts.views.common import actor, redirect_or_refresh, safe_next, workspace_view
from contacts.views.record import display_name
from crm.permissions import policy_for

from ..forms.deals import CloseForm, DealContactForm, DealForm, default_stage
from ..models import Deal, DealContact, Pipeline, Stage
from ..selectors import visible_deals
from ..services import deals as deal_services
from .deals import (
    deal_child,
    deal_url,
    get_deal,
    picker_contacts,
    require_edit,
    scoped_companies,
    scoped_contacts,
    service_error,
)

# Create and edit -------------------------------------------------------------------------------


def _prefill(request) -> tuple[dict, Contact | None]:
    """Initial values from ?contact=, ?company=, ?pipeline= or ?stage= (public ids). Ids the
    member cannot see are ignored, as if they had not been given."""
    policy = policy_for(request)
    prefill: dict = {}
    contact = company = None
    contacts, companies = scoped_contacts(request), scoped_companies(request)
    if request.GET.get("contact") and contacts is not None:
        contact = (
            contacts.select_related("company")
            .filter(public_id=_uuid(request.GET["contact"]))
            .first()
        )
    if request.GET.get("company") and companies is not None:
        company = companies.filter(public_id=_uuid(request.GET["company"])).first()
    if contact is not None:
        prefill["contact"] = str(contact.public_id)
        if company is None and contact.company_id and companies is not None:
            company = companies.filter(pk=contact.company_id).first()
    if company is not None:
        prefill["company"] = company.name
    name = company.name if company else (display_name(contact, policy) if contact else "")
    if name:
        prefill["title"] = f"{name} deal"
    stage = None
    if request.GET.get("stage"):
        stage = (
            Stage.objects.for_org(request.org).filter(public_id=_uuid(request.GET["stage"])).first()
        )
    if stage is None and request.GET.get("pipeline"):
        pipeline = (
            Pipeline.objects.for_org(request.org)
            .filter(public_id=_uuid(request.GET["pipeline"]))
            .first()
        )
        stage = default_stage(request.org, pipeline) if pipeline else None
    stage = stage or default_stage(request.org)
    if stage is not None:
        prefill["stage"] = str(stage.public_id)
    return prefill, contact


def _uuid(value):
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _form(request, data=None, *, deal=None, prefill=None, first_contact=None) -> DealForm:
    current = deal.contact if deal is not None and deal.contact_id else first_contact
    chosen = request.POST.get("contact") if data is not None else None
    extra = None
    contacts = scoped_contacts(request)
    companies = scoped_companies(request)
    # A deal whose contact (or company) the member may not see keeps it: the field is left
    # out rather than showing its name, or refusing the form because it is not in the list.
    if deal is not None and deal.contact_id and contacts is not None:
        contact_seen = contacts.filter(pk=deal.contact_id).exists()
        contacts, current = (contacts, current) if contact_seen else (None, None)
    if deal is not None and deal.company_id and companies is not None:
        companies = companies if companies.filter(pk=deal.company_id).exists() else None
    if chosen and contacts is not None and (current is None or str(current.public_id) != chosen):
        extra = contacts.filter(public_id=_uuid(chosen)).first()
    form = DealForm(
        data,
        org=request.org,
        policy=policy_for(request),
        user=request.user,
        instance=deal,
        prefill=prefill,
        contact_queryset=contacts,
        company_queryset=companies,
        contact_options=picker_contacts(request, extra, current) if contacts is not None else [],
    )
    if deal is not None and deal.contact_id and "contact_role" in form.fields:
        link = (
            DealContact.objects.for_org(request.org)
            .filter(deal=deal, contact_id=deal.contact_id)
            .first()
        )
        form.initial["contact_role"] = link.role if link else ""
    return form


def _form_page(request, form, deal=None):
    if not Stage.objects.for_org(request.org).exists():
        form = None  # no pipeline yet: the page says where to make one
    return render(
        request,
        "pipeline/deal_form.html",
        {
            "form": form,
            "deal": deal,
            "has_company_field": form is not None and "company" in form.fields,
        },
    )


def _set_primary_role(request, deal: Deal, role) -> None:
    if role is None or not deal.contact_id:
        return
    link = (
        DealContact.objects.for_org(request.org)
        .filter(deal=deal, contact_id=deal.contact_id)
        .first()
    )
    if link is not None and link.role == role:
        return
    deal_services.deal_contact_add(
        deal=deal, actor=actor(request), contact=deal.contact, role=role, policy=policy_for(request)
    )


def after_save_url(request, deal: Deal) -> str:
    if visible_deals(request.org, policy_for(request), archived=None).filter(pk=deal.pk).exists():
        return deal_url(deal)
    return reverse("pipeline:board")


@workspace_view("pipeline", "create")
@require_http_methods(["GET", "POST"])
def deal_create(request):
    policy = policy_for(request)
    prefill, contact = _prefill(request)
    if request.method == "POST":
        form = _form(request, request.POST, prefill=prefill, first_contact=contact)
        if form.is_valid():
            try:
                with transaction.atomic():
                    deal = deal_services.deal_create(
                        org=request.org,
                        actor=actor(request),
                        data=form.service_data(changed_only=False),
                        policy=policy,
                    )
                    _set_primary_role(request, deal, form.contact_role_value() or None)
            except ValidationError as exc:
                form.add_service_errors(exc)
            except PermissionDenied as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, f"The deal “{deal.title}” was created.")
                return redirect_or_refresh(request, after_save_url(request, deal))
    else:
        form = _form(request, prefill=prefill, first_contact=contact)
    return _form_page(request, form)


@workspace_view("pipeline", "edit")
@require_http_methods(["GET", "POST"])
def deal_edit(request, public_id):
    policy = policy_for(request)
    deal = get_deal(request, public_id)
    require_edit(request, deal)
    if deal.is_archived:
        messages.error(request, "Restore the deal before changing it.")
        return redirect_or_refresh(request, deal_url(deal))
    form = _form(request, request.POST if request.method == "POST" else None, deal=deal)
    if request.method == "POST" and form.is_valid():
        try:
            with transaction.atomic():
                deal = deal_services.deal_update(
                    deal=deal,
                    actor=actor(request),
                    data=form.service_data(changed_only=True),
                    policy=policy,
                )
                _set_primary_role(request, deal, form.contact_role_value())
        except ValidationError as exc:
            form.add_service_errors(exc)
        except PermissionDenied as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, "Changes saved.")
            return redirect_or_refresh(request, after_save_url(request, deal))
    return _form_page(request, form, deal)


# Header actions --------------------------------------------------------------------------------


@workspace_view("pipeline", "edit")
@require_http_methods(["GET", "POST"])
def deal_close(request, public_id):
    """GET: the reason form (?status=won|lost preselects the outcome); POST closes the deal.
    The board's Won and Lost drop zones open this too, with ?next= to come back to."""
    deal = get_deal(request, public_id)
    require_edit(request, deal)
    status = request.POST.get("status") or request.GET.get("status") or ""
    status = status if status in (Deal.Status.WON, Deal.Status.LOST) else ""
    back = safe_next(request, deal_url(deal))
    form = CloseForm(request.POST or None, org=request.org, status=status)
    refusal = None
    if deal.is_archived:
        refusal = "Restore the deal before closing it."
    elif deal.status != Deal.Status.OPEN:
        refusal = f"This deal is already {deal.get_status_display().lower()}: reopen it first."
    if refusal is None and request.method == "POST" and form.is_valid():
        try:
            deal_services.deal_close(
                deal=deal,
                actor=actor(request),
                status=form.cleaned_data["status"],
                reason=form.cleaned_data["reason"],
                note=form.cleaned_data["note"],
                policy=policy_for(request),
            )
        except ValidationError as exc:
            if hasattr(exc, "error_dict"):
                for key, errors in exc.message_dict.items():
                    form.add_error(key if key in form.fields else None, errors)
            else:
                form.add_error(None, exc.messages)
        else:
            label = "won" if form.cleaned_data["status"] == Deal.Status.WON else "lost"
            messages.success(request, f"“{deal.title}” is marked {label}.")
            return redirect_or_refresh(request, back)
    context = {"deal": deal, "form": form, "status": status, "next": back, "refusal": refusal}
    template = (
        "pipeline/partials/deal_close_form.html" if request.htmx else "pipeline/deal_close.html"
    )
    return render(request, template, context)


def _run(request, deal, action, success: str):
    try:
        action()
    except ValidationError as exc:
        service_error(request, exc)
    else:
        messages.success(request, success)
    return redirect_or_refresh(request, after_save_url(request, deal))


@workspace_view("pipeline", "edit")
@require_POST
def deal_reopen(request, public_id):
    deal = get_deal(request, public_id)
    require_edit(request, deal)
    return _run(
        request,
        deal,
        lambda: deal_services.deal_reopen(
            deal=deal, actor=actor(request), policy=policy_for(request)
        ),
        f"“{deal.title}” is open again.",
    )


@workspace_view("pipeline", "delete")
@require_http_methods(["GET", "POST"])
def deal_archive(request, public_id):
    """GET asks for confirmation (works without JavaScript); POST archives."""
    deal = get_deal(request, public_id)
    if not policy_for(request).can_touch("pipeline", "delete", deal.owner_id):
        raise PermissionDenied("Your role may not archive this deal.")
    if request.method == "POST":
        return _run(
            request,
            deal,
            lambda: deal_services.deal_archive(
                deal=deal, actor=actor(request), policy=policy_for(request)
            ),
            f"“{deal.title}” was archived. You can restore it at any time.",
        )
    return render(request, "pipeline/deal_archive_confirm.html", {"deal": deal})


@workspace_view("pipeline", "delete")
@require_POST
def deal_restore(request, public_id):
    deal = get_deal(request, public_id)
    if not policy_for(request).can_touch("pipeline", "delete", deal.owner_id):
        raise PermissionDenied("Your role may not restore this deal.")
    return _run(
        request,
        deal,
        lambda: deal_services.deal_restore(
            deal=deal, actor=actor(request), policy=policy_for(request)
        ),
        f"“{deal.title}” was restored.",
    )


# Contacts on the deal --------------------------------------------------------------------------


@workspace_view("pipeline", "edit")
@require_POST
def deal_contact_add(request, public_id):
    deal = get_deal(request, public_id)
    require_edit(request, deal)
    contacts = scoped_contacts(request)
    if contacts is None:
        raise PermissionDenied("Your role may not see contacts.")
    form = DealContactForm(
        request.POST, contact_queryset=contacts, contact_options=picker_contacts(request)
    )
    if form.is_valid():
        try:
            deal_services.deal_contact_add(
                deal=deal,
                actor=actor(request),
                contact=form.cleaned_data["contact"],
                role=form.cleaned_data["role"],
                policy=policy_for(request),
            )
        except ValidationError as exc:
            service_error(request, exc)
        else:
            messages.success(request, "Contact added to the deal.")
    else:
        messages.error(request, " ".join(e for errors in form.errors.values() for e in errors))
    return redirect_or_refresh(request, deal_url(deal))


@workspace_view("pipeline", "edit")
@require_POST
def deal_contact_remove(request, dealcontact_public_id):
    link, deal = deal_child(request, DealContact, dealcontact_public_id)
    require_edit(request, deal)
    try:
        deal_services.deal_contact_remove(
            link=link, actor=actor(request), policy=policy_for(request)
        )
    except ValidationError as exc:
        service_error(request, exc)
    else:
        messages.success(request, "Contact removed from the deal.")
    return redirect_or_refresh(request, deal_url(deal))
