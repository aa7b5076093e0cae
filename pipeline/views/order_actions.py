"""The writes of the orders registry's pages: a new order (from the list, a contact or a
deal), an order's edit form, its change of status with a note, and delete; plus the deal
options of the order form, which follow the contact chosen.

Views only: the services (pipeline.services.orders) check fields, rights and scope again.
"""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from contacts.views.common import NOT_SAVED, actor, redirect_or_refresh, safe_next, submit
from contacts.views.record import display_name
from crm.permissions import policy_for

from ..forms.orders import OrderForm, OrderStatusForm, deal_label
from ..models import Deal, Order
from ..order_queries import deals_of_contact, linkable_contacts
from ..selectors import visible_deals
from ..services import orders as order_services
from .deals import picker_contacts
from .orders import detail_context, get_order, order_url, orders_view


def _uuid(value) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _contact_label(contact, policy) -> str:
    name = display_name(contact, policy)
    if contact.email and policy.can_see_field("email") and contact.email != name:
        return f"{name} · {contact.email}"
    return name


def _prefill(request) -> tuple[object, Deal | None]:
    """Initial contact and deal from ?contact= / ?deal= (public ids); ids out of the
    member's reach are ignored, as if they had not been given. A deal alone brings its
    primary contact."""
    policy = policy_for(request)
    contact = deal = None
    contacts = linkable_contacts(request.org, policy)
    if request.GET.get("deal"):
        deal = (
            visible_deals(request.org, policy, archived=False)
            .filter(public_id=_uuid(request.GET["deal"]))
            .first()
        )
    if request.GET.get("contact"):
        contact = contacts.filter(public_id=_uuid(request.GET["contact"])).first()
    if contact is None and deal is not None and deal.contact_id:
        contact = contacts.filter(pk=deal.contact_id).first()
    return contact, deal


def _form(request, data=None, *, order: Order | None = None, contact=None, deal=None):
    """The order form with its contact and deal options: the chosen (or current) ones first,
    then recent contacts, and the deals of the contact."""
    policy = policy_for(request)
    contacts = linkable_contacts(request.org, policy)
    # A deal the member cannot open stays on the order, untouched and unnamed here.
    deal_hidden = bool(
        order is not None
        and order.deal_id
        and not visible_deals(request.org, policy, archived=None).filter(pk=order.deal_id).exists()
    )
    if order is not None:
        # The order's own contact stays choosable, whatever became of its deals since.
        contacts = contacts | contacts.model.objects.for_org(request.org).filter(
            pk=order.contact_id
        )
        contact = contact or order.contact
        deal = deal or (None if deal_hidden else order.deal)
    if data is not None and data.get("contact"):
        contact = contacts.filter(public_id=_uuid(data["contact"])).first() or contact
    listed = picker_contacts(request, contact)
    if contact is not None and all(c.pk != contact.pk for c in listed):
        listed.insert(0, contact)  # reached through a deal, not the contacts scope
    contact_options = [(c.public_id, _contact_label(c, policy)) for c in listed]
    deal_options = []
    if contact is not None:
        deals = list(deals_of_contact(request.org, policy, contact)[:50])
        if deal is not None and deal.pk not in {d.pk for d in deals}:
            deals.insert(0, deal)
        deal_options = [(d.public_id, deal_label(d)) for d in deals]
    form = OrderForm(
        data,
        org=request.org,
        instance=order,
        prefill={
            "contact": str(contact.public_id) if contact is not None else "",
            "deal": str(deal.public_id) if deal is not None else "",
        },
        contact_queryset=contacts,
        deal_queryset=visible_deals(request.org, policy, archived=None),
        contact_options=contact_options,
        deal_options=deal_options,
    )
    if deal_hidden:
        del form.fields["deal"]
        return form
    form.fields["contact"].widget.attrs.update(
        {
            "hx-get": reverse("pipeline:order_deal_options"),
            "hx-trigger": "change",
            "hx-target": f"#{form['deal'].id_for_label}",
            "hx-swap": "innerHTML",
        }
    )
    return form


def _form_page(request, form, order: Order | None = None, *, back_url: str = ""):
    return render(
        request,
        "pipeline/orders/order_form.html",
        {
            "form": form,
            "order": order,
            # Cancel: reverse() of the order, deal, contact or list it came from.
            "next_url": back_url or reverse("pipeline:order_list"),
        },
    )


def _back_url(request, contact, deal) -> str:
    if deal is not None:
        return reverse("pipeline:deal_detail", kwargs={"public_id": deal.public_id})
    if contact is not None and policy_for(request).can("contacts", "view"):
        return reverse("contacts:contact_detail", args=[contact.public_id])
    return reverse("pipeline:order_list")


@orders_view("create")
@require_http_methods(["GET", "POST"])
def order_create(request):
    policy = policy_for(request)
    contact, deal = _prefill(request)
    back = _back_url(request, contact, deal)
    if request.method != "POST":
        return _form_page(request, _form(request, contact=contact, deal=deal), back_url=back)
    form = _form(request, request.POST, contact=contact, deal=deal)
    order = submit(
        request,
        form,
        lambda: order_services.order_create(
            org=request.org,
            actor=actor(request),
            policy=policy,
            contact=form.chosen("contact"),
            deal=form.chosen("deal"),
            data=form.service_data(),
        ),
    )
    if order is not NOT_SAVED:
        messages.success(request, f"The order “{order.title}” was added.")
        return redirect_or_refresh(request, order_url(order))
    return _form_page(request, form, back_url=back)


@orders_view("edit")
@require_http_methods(["GET", "POST"])
def order_edit(request, order_public_id):
    order = get_order(request, order_public_id)
    data = request.POST if request.method == "POST" else None
    form = _form(request, data, order=order)
    saved = submit(
        request,
        form,
        lambda: order_services.order_update(
            org=request.org,
            actor=actor(request),
            policy=policy_for(request),
            order=order,
            data=form.service_data(),
            contact=form.chosen("contact"),
            deal=form.chosen("deal") if "deal" in form.fields else order_services.UNSET,
        ),
    )
    if saved is not NOT_SAVED:
        messages.success(request, f"The order “{saved.title}” was saved.")
        return redirect_or_refresh(request, order_url(saved))
    return _form_page(request, form, order, back_url=order_url(order))


@orders_view("edit")
@require_POST
def order_status(request, order_public_id):
    """Change the order's status, with an optional note kept in its history."""
    order = get_order(request, order_public_id)
    form = OrderStatusForm(request.POST)
    saved = submit(
        request,
        form,
        lambda: order_services.order_change_status(
            org=request.org,
            actor=actor(request),
            policy=policy_for(request),
            order=order,
            status=form.cleaned_data["status"],
            note=form.cleaned_data["note"],
        ),
    )
    if saved is not NOT_SAVED:
        order.refresh_from_db()
        messages.success(request, f"The order is now {order.get_status_display().lower()}.")
        return redirect_or_refresh(request, order_url(order))
    context = detail_context(request, order, status_form=form)
    return render(request, "pipeline/orders/order_detail.html", context, status=400)


@orders_view("delete")
@require_POST
def order_delete(request, order_public_id):
    order = get_order(request, order_public_id)
    try:
        order_services.order_delete(
            org=request.org, actor=actor(request), policy=policy_for(request), order=order
        )
    except (ValidationError, PermissionDenied) as exc:
        messages.error(request, " ".join(getattr(exc, "messages", [str(exc)])))
        return redirect_or_refresh(request, order_url(order))
    messages.success(request, f"The order “{order.title}” was deleted.")
    return redirect_or_refresh(request, safe_next(request, reverse("pipeline:order_list")))


@orders_view("view")
def order_deal_options(request):
    """<option>s of the deals an order of ?contact= may be linked to (the order form's deal
    select follows the contact chosen)."""
    policy = policy_for(request)
    contact = (
        linkable_contacts(request.org, policy)
        .filter(public_id=_uuid(request.GET.get("contact", "")))
        .first()
    )
    deals = list(deals_of_contact(request.org, policy, contact)[:50]) if contact else []
    return render(
        request,
        "pipeline/orders/partials/deal_options.html",
        {"options": [(d.public_id, deal_label(d)) for d in deals], "contact": contact},
    )
