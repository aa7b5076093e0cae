"""The orders registry's pages: the Orders list (filters, totals per currency, keyset pages,
CSV export), an order's page (fields, status history, edit, change of status, delete), and the
Orders sections of contact and deal pages.

Orders follow the Pipeline module's rights, and belong to the optional "orders" module: while
the organization has it off every page here says so (404). An order outside the member's
reach (pipeline.order_queries.visible_orders), or another organization's, is a 404. The forms
that write live in order_actions; the reads in pipeline.order_queries.
"""

from __future__ import annotations

from functools import wraps

from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from contacts.selectors.record import scoped_contacts
from contacts.views.common import actor, full_page, workspace_view
from contacts.views.record import display_name
from crm import streaming
from crm.csvutils import csv_response
from crm.decorators import module_enabled
from crm.pagination import page
from crm.permissions import policy_for
from crm.selectors import org_timezone
from crm.services import audit

from ..forms.orders import OrderStatusForm
from ..models import Order, OrderStatusChange
from ..order_queries import (
    SORTS,
    apply_filters,
    export_cells,
    export_columns,
    export_rows,
    order_section,
    reachable_links,
    read_filters,
    sort_order,
    status_history,
    totals_by_currency,
    visible_orders,
)
from ..selectors import deal_for_request, visible_deals

PAGE_SIZE = 50
ROW_DEFERRED = ("contact__search_vector", "deal__search_vector")
LIST_TEMPLATE = "pipeline/orders/order_list.html"
SECTION_TEMPLATE = "pipeline/orders/partials/order_section.html"
SECTION_PAGE_TEMPLATE = "pipeline/orders/order_section_page.html"
VIA_LABELS = {
    OrderStatusChange.Via.WEBHOOK: "The inbound order URL",
    OrderStatusChange.Via.API: "The API",
    OrderStatusChange.Via.SYSTEM: "The system",
}


def orders_view(action: str = "view"):
    """The Pipeline module's `action` right (dates in the org's time zone), then the orders
    module being on: every orders page is both."""

    def decorator(view):
        @workspace_view("pipeline", action)
        @module_enabled("orders")
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def get_order(request, public_id) -> Order:
    """The order a page is about; another organization's, or one out of reach, is a 404."""
    queryset = visible_orders(request.org, policy_for(request))
    return get_object_or_404(
        queryset.select_related("contact", "deal", "created_by").defer(*ROW_DEFERRED),
        public_id=public_id,
    )


def order_url(order: Order) -> str:
    return reverse("pipeline:order_detail", kwargs={"order_public_id": order.public_id})


def order_rows(request, orders: list[Order]) -> list[dict]:
    """What a table shows of each order: the contact's name as this member may see it, and
    the contact and deal as links only when the member may open their pages."""
    policy = policy_for(request)
    contacts, deals = reachable_links(request.org, policy, orders)
    return [
        {
            "order": order,
            "contact_name": display_name(order.contact, policy),
            "contact_link": order.contact_id in contacts,
            "deal_link": order.deal_id in deals,
        }
        for order in orders
    ]


# The list ------------------------------------------------------------------------------------


def _chip(request, state) -> dict:
    """What the list is narrowed to when it came from a contact's or a deal's section."""
    policy = policy_for(request)
    chip: dict = {}
    if state.contact:
        contact = (
            scoped_contacts(request.org, policy).filter(public_id=state.contact).first()
            if policy.can("contacts", "view")
            else None
        )
        chip["contact"] = contact
        chip["contact_name"] = display_name(contact, policy) if contact else "one contact"
    if state.deal:
        deal = visible_deals(request.org, policy, archived=None).filter(public_id=state.deal)
        chip["deal"] = deal.first()
    return chip


def _sort_links(state, list_url: str) -> dict:
    """For the Date and Value headers: the query that sorts by them (toggling the way)."""
    links = {}
    for key in ("order_date", "value"):
        current = state.sort.lstrip("-") == key
        descending = state.sort.startswith("-")
        target = (key if descending else f"-{key}") if current else f"-{key}"
        links[key] = {
            "query": state.query_string(sort=target),
            "current": current,
            "descending": current and descending,
            "aria": ("descending" if descending else "ascending") if current else "none",
        }
    return links


@orders_view()
def order_list(request):
    policy = policy_for(request)
    state = read_filters(request.GET)
    queryset = apply_filters(visible_orders(request.org, policy), state)
    result = page(
        queryset.select_related("contact", "deal").defer(*ROW_DEFERRED),
        sort_order(state),
        request.GET.get("cursor"),
        PAGE_SIZE,
    )
    totals = totals_by_currency(queryset)
    list_url = reverse("pipeline:order_list")
    export_urls = {}
    if policy.can("pipeline", "export"):
        export_urls["csv"] = f"{reverse('pipeline:order_export')}?{state.query_string()}"
    create_url = None
    if policy.can("pipeline", "create"):
        create_url = reverse("pipeline:order_create")
        if state.contact:
            create_url += f"?contact={state.contact}"
        elif state.deal:
            create_url += f"?deal={state.deal}"
    context = {
        "state": state,
        "state_query": state.query_string(sort=state.sort),
        "state_params": state.params(),
        "page": result,
        "rows": order_rows(request, result.rows),
        "totals": totals,
        "list_url": list_url,
        "export_urls": export_urls,
        "create_url": create_url,
        "sort_links": _sort_links(state, list_url),
        "sort_choices": [(key, label) for key, (label, _order) in SORTS.items()],
        "status_choices": Order.Status.choices,
        "source_choices": Order.Source.choices,
        "currencies": _currencies(request, state, totals),
        "chip": _chip(request, state),
    }
    if request.htmx and not full_page(request):
        return render(request, f"{LIST_TEMPLATE}#results", context)
    return render(request, LIST_TEMPLATE, context)


def _currencies(request, state, totals) -> list[str]:
    """The currency filter's choices: those of the orders shown, the one chosen and the
    organization's base currency (no extra pass over the orders for them)."""
    codes = {total.currency for total in totals} | {request.org.base_currency}
    if state.currency:
        codes.add(state.currency)
    return sorted(code for code in codes if code)


@require_GET
@orders_view("export")
def order_export(request):
    """The list as filtered, every order in the member's reach, as CSV: streamed, formula-
    looking text neutralized (crm.csvutils), audited."""
    policy = policy_for(request)
    state = read_filters(request.GET)
    queryset = apply_filters(visible_orders(request.org, policy), state)
    columns = export_columns(policy)
    audit(
        org=request.org,
        actor=actor(request),
        verb="orders.exported",
        object_type="order",
        object_repr="Orders CSV export",
        changes={"filters": dict(state.params()), "columns": [label for _, label in columns]},
    )
    tz = org_timezone(request.org)
    rows = (
        export_cells(row, columns, tz)
        for row in streaming.streamed(export_rows(queryset, columns, sort_order(state)))
    )
    stamp = timezone.now().astimezone(tz).strftime("%Y%m%d-%H%M")
    return csv_response(
        rows, [label for _, label in columns], f"orders-{request.org.slug}-{stamp}.csv"
    )


# The order page ------------------------------------------------------------------------------


def history_rows(request, order: Order) -> list[dict]:
    rows = []
    for change in status_history(request.org, order):
        if change.via == OrderStatusChange.Via.MEMBER:
            who = change.changed_by.display_name if change.changed_by else "A former member"
        else:
            who = VIA_LABELS.get(change.via, change.get_via_display())
        rows.append({"change": change, "who": who})
    return rows


def detail_context(request, order: Order, status_form=None) -> dict:
    policy = policy_for(request)
    contacts, deals = reachable_links(request.org, policy, [order])
    return {
        "order": order,
        "contact_name": display_name(order.contact, policy),
        "contact_link": order.contact_id in contacts,
        "deal_link": order.deal_id in deals,
        "history": history_rows(request, order),
        "can_edit": policy.can("pipeline", "edit"),
        "can_delete": policy.can("pipeline", "delete"),
        "status_form": status_form or OrderStatusForm(initial={"status": order.status}),
    }


@orders_view()
def order_detail(request, order_public_id):
    order = get_order(request, order_public_id)
    return render(request, "pipeline/orders/order_detail.html", detail_context(request, order))


# Sections of contact and deal pages ---------------------------------------------------------


def _section_response(request, context: dict):
    if request.htmx and not full_page(request):
        return render(request, SECTION_TEMPLATE, context)
    return render(request, SECTION_PAGE_TEMPLATE, context)


def _section_context(request, queryset, **extra) -> dict:
    section = order_section(queryset)
    return {
        "section": section,
        "rows": order_rows(request, section.orders),
        "can_create": policy_for(request).can("pipeline", "create"),
        **extra,
    }


@orders_view()
def contact_orders(request, contact_public_id):
    """The Orders section of a contact's page (loaded by HTMX), or a page of its own."""
    policy = policy_for(request)
    contact = get_object_or_404(
        scoped_contacts(request.org, policy).defer("search_vector"), public_id=contact_public_id
    )
    queryset = visible_orders(request.org, policy).filter(contact=contact)
    context = _section_context(
        request,
        queryset.defer(*ROW_DEFERRED),
        contact=contact,
        name=display_name(contact, policy),
        show_contact=False,
    )
    return _section_response(request, context)


@orders_view()
def deal_orders(request, deal_public_id):
    """The Orders section of a deal's page (loaded by HTMX), or a page of its own."""
    policy = policy_for(request)
    deal = deal_for_request(request, deal_public_id)
    queryset = visible_orders(request.org, policy).filter(deal=deal)
    context = _section_context(
        request,
        queryset.defer(*ROW_DEFERRED),
        deal=deal,
        name=deal.title,
        show_contact=True,
    )
    return _section_response(request, context)
