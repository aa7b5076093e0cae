"""Orders as members write them: create, edit, change status (with a note), delete.

The registry is a log, not a payment system: "refunded" or "canceled" is a status kept in the
order's history; no money moves anywhere.

Every write checks the Pipeline module's right (orders follow the Pipeline module's rights)
and the member's record scope: an order is theirs to touch when they may see it
(pipeline.order_queries.visible_orders). Fields are checked by the one checker every way in
shares (order_input.clean_order_fields); a bad field is a ValidationError keyed by the field,
never a half write. Each write runs in one transaction, is audited (order.created, .updated,
.status_changed, .deleted) and emits the domain event of the same name through the outbox.
The status history gets a row when the order is created (from "" to its status) and on every
change of status.

The contact and the deal (policy None is system work and skips the scope checks):
- the contact must be one the member may see, or the contact of the deal given, when the
  member may see that deal (an order added from a deal page for the deal's contact);
- the deal, when given, must be one the member may see, not archived (when newly linked), and
  must involve the order's contact (its primary contact or one of its contacts with a role):
  an order of Ann's linked to a deal with Bob alone would show on a page where it makes no
  sense. The pair is checked when either side changes, so an older order whose contact later
  left the deal can still be edited.
- A manual order's external id is unique per organization and source; a clash is a field
  error that names the existing order (or says it is one the member cannot see). The id of an
  order that came from an integration (webhook, API, ...) belongs to the sender and is not
  changed here: its next delivery finds the order by it.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from contacts.selectors.record import contact_in_scope
from crm.selectors import org_timezone
from crm.services import Actor, audit, diff, emit_event, snapshot

from ..models import Deal, DealContact, Order, OrderStatusChange
from ..order_queries import order_is_visible
from ..selectors import visible_deals
from .order_input import FIELD_LABELS, clean_order_fields

STATE_FIELDS = (
    "title",
    "value",
    "currency",
    "status",
    "order_date",
    "paid_date",
    "source",
    "external_id",
    "note",
    "contact",
    "deal",
)
# The keys a member's form may send (the status of an existing order changes through
# order_change_status, or through order_update, which hands it there).
EDITABLE_KEYS = ("title", "value", "currency", "order_date", "paid_date", "external_id", "note")
STATUS_NOTE_MAX = OrderStatusChange._meta.get_field("note").max_length or 500
UNIQUE_CONSTRAINT = "order_external_id_per_source"


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


# Checks --------------------------------------------------------------------------------------


def require(policy, action: str) -> None:
    if policy is not None:
        policy.require("pipeline", action)


def _user_of(actor: Actor):
    user = getattr(actor, "user", None)
    return user if user is not None and getattr(user, "pk", None) else None


def _field_error(key: str, message: str) -> ValidationError:
    return ValidationError({key: [message]})


def _deal_involves(org, deal: Deal, contact) -> bool:
    if deal.contact_id == contact.pk:
        return True
    return DealContact.objects.for_org(org).filter(deal=deal, contact=contact).exists()


def _deal_visible(org, policy, deal: Deal) -> bool:
    if policy is None:
        return True
    return visible_deals(org, policy, archived=None).filter(pk=deal.pk).exists()


def _contact_visible(org, policy, contact) -> bool:
    if policy is None:
        return True
    return policy.can_access("contacts") and contact_in_scope(org, policy, contact.pk)


def check_links(org, policy, contact, deal, *, current_deal_id=None) -> None:
    """The contact and deal rules of the module docstring; ValidationError per field."""
    if contact is None or contact.org_id != org.pk:
        raise _field_error("contact", "Choose the contact who placed the order.")
    if deal is not None:
        if deal.org_id != org.pk or not _deal_visible(org, policy, deal):
            raise _field_error("deal", "Choose a deal from the list.")
        if deal.is_archived and deal.pk != current_deal_id:
            raise _field_error(
                "deal", "This deal is archived; restore it before linking orders to it."
            )
    involved = deal is not None and _deal_involves(org, deal, contact)
    if not _contact_visible(org, policy, contact) and not involved:
        raise _field_error("contact", "Choose a contact you can see.")
    if deal is not None and not involved:
        raise _field_error(
            "deal",
            "This deal does not involve the order's contact: choose one of their deals, or "
            "add them to the deal first.",
        )


def _check_external_id(org, policy, source: str, external_id: str, exclude_pk=None) -> None:
    if not external_id:
        return
    clash = (
        Order.objects.for_org(org)
        .filter(source=source, external_id=external_id)
        .exclude(pk=exclude_pk)
        .first()
    )
    if clash is not None:
        raise _field_error("external_id", _clash_message(org, policy, clash, external_id))


def _clash_message(org, policy, clash: Order, external_id: str) -> str:
    if order_is_visible(org, policy, clash):
        return (
            f"The order “{clash.title}” ({clash.order_date.isoformat()}) already has the "
            f"external id “{external_id}”; each order's external id is unique."
        )
    return (
        f"Another order (one outside the orders you can see) already has the external id "
        f"“{external_id}”; each order's external id is unique."
    )


def _raise_errors(errors: dict[str, str]) -> None:
    if errors:
        raise ValidationError({key: [message] for key, message in errors.items()})


def _save(org, policy, order: Order) -> None:
    """Write `order`; the race of two orders with one external id (the unique constraint)
    is a field error too, never a 500."""
    try:
        with transaction.atomic():
            order.save()
    except IntegrityError as exc:
        if UNIQUE_CONSTRAINT not in str(exc):
            raise
        _check_external_id(org, policy, order.source, order.external_id, exclude_pk=order.pk)
        raise _field_error("external_id", "Another order already has this external id.") from None


# Records -------------------------------------------------------------------------------------


def _state(order: Order) -> dict:
    state = snapshot(order, [name for name in STATE_FIELDS if name not in ("contact", "deal")])
    state["value"] = str(order.value)
    state["contact"] = str(order.contact.public_id) if order.contact_id else None
    state["deal"] = str(order.deal.public_id) if order.deal is not None else None
    return state


def _payload(order: Order, **extra) -> dict:
    return {
        "order": order.public_id,
        "contact": order.contact.public_id if order.contact_id else None,
        "deal": order.deal.public_id if order.deal is not None else None,
        "title": order.title,
        "value": str(order.value),
        "currency": order.currency,
        "status": order.status,
        "source": order.source,
        "external_id": order.external_id,
        "order_date": order.order_date,
        "paid_date": order.paid_date,
        **extra,
    }


def _via(actor: Actor, via: str | None) -> str:
    if via is not None:
        return via
    return OrderStatusChange.Via.MEMBER if _user_of(actor) else OrderStatusChange.Via.SYSTEM


def _history(org, actor: Actor, order: Order, from_status: str, note: str, via: str | None):
    return OrderStatusChange.objects.for_org(org).create(
        org=org,
        order=order,
        from_status=from_status,
        to_status=order.status,
        via=_via(actor, via),
        changed_by=_user_of(actor),
        changed_at=timezone.now(),
        note=note,
    )


def _locked(org, policy, order: Order) -> Order:
    """The order, locked for the change; gone meanwhile, or out of the member's reach."""
    locked = (
        Order.objects.for_org(org)
        .select_for_update(of=("self",))
        .select_related("contact", "deal")
        .filter(pk=order.pk)
        .first()
    )
    if locked is None:
        raise ValidationError("This order was deleted meanwhile.")
    if policy is not None and not order_is_visible(org, policy, locked):
        raise PermissionDenied("This order is outside the orders you may work on.")
    return locked


# Writes --------------------------------------------------------------------------------------


@transaction.atomic
def order_create(
    *,
    org,
    actor: Actor,
    policy,
    contact,
    deal: Deal | None = None,
    data: dict,
    source: str = Order.Source.MANUAL,
) -> Order:
    """A new order of `contact` (optionally on `deal`) from raw field values (form strings
    or JSON values; see order_input.clean_order_fields for defaults)."""
    require(policy, "create")
    values, errors = clean_order_fields(org, {k: v for k, v in data.items() if k in FIELD_LABELS})
    try:
        check_links(org, policy, contact, deal)
    except ValidationError as exc:
        errors = {**{k: v[0] for k, v in exc.message_dict.items()}, **errors}
    if "external_id" not in errors:
        try:
            _check_external_id(org, policy, source, values.get("external_id", ""))
        except ValidationError as exc:
            errors["external_id"] = exc.message_dict["external_id"][0]
    _raise_errors(errors)
    order = Order(org=org, contact=contact, deal=deal, source=source, created_by=_user_of(actor))
    for key, value in values.items():
        setattr(order, key, value)
    _save(org, policy, order)
    _history(org, actor, order, "", "", None)
    audit(org=org, actor=actor, verb="order.created", obj=order, changes=diff({}, _state(order)))
    emit_event(org=org, event_type="order.created", payload=_payload(order))
    return order


@transaction.atomic
def order_update(
    *,
    org,
    actor: Actor,
    policy,
    order: Order,
    data: dict,
    contact=UNSET,
    deal=UNSET,
) -> Order:
    """Change the fields given in `data` (and the contact or deal when passed; deal=None
    unlinks the deal). A status in `data` is a status change, recorded as such."""
    order = _locked(org, policy, order)
    require(policy, "edit")
    wanted = {k: v for k, v in data.items() if k in EDITABLE_KEYS}
    if data.get("status") not in (None, ""):
        wanted["status"] = data["status"]
    values, errors = clean_order_fields(org, wanted, partial=True)
    new_status = values.pop("status", order.status)
    external_id = values.get("external_id")
    if external_id is not None and external_id != order.external_id:
        if order.source != Order.Source.MANUAL:
            errors["external_id"] = (
                f"This order came from {order.get_source_display()}: its external id belongs "
                "to the sender and can't be changed here."
            )
        elif "external_id" not in errors:
            try:
                _check_external_id(org, policy, order.source, external_id, exclude_pk=order.pk)
            except ValidationError as exc:
                errors["external_id"] = exc.message_dict["external_id"][0]
    new_contact = order.contact if contact is UNSET else contact
    new_deal = order.deal if deal is UNSET else deal
    relinked = (new_contact is None or new_contact.pk != order.contact_id) or (
        (new_deal.pk if new_deal is not None else None) != order.deal_id
    )
    if relinked:
        try:
            check_links(org, policy, new_contact, new_deal, current_deal_id=order.deal_id)
        except ValidationError as exc:
            errors = {**{k: v[0] for k, v in exc.message_dict.items()}, **errors}
    _raise_errors(errors)
    before = _state(order)
    for key, value in values.items():
        setattr(order, key, value)
    order.contact, order.deal = new_contact, new_deal
    changes = diff(before, _state(order))
    if changes:
        _save(org, policy, order)
        audit(org=org, actor=actor, verb="order.updated", obj=order, changes=changes)
        emit_event(
            org=org, event_type="order.updated", payload=_payload(order, changes=list(changes))
        )
    if new_status != order.status:
        order = _change_status(org, actor, order, new_status, "", None)
    return order


def _change_status(org, actor: Actor, order: Order, status_raw, note, via) -> Order:
    values, errors = clean_order_fields(org, {"status": status_raw}, partial=True)
    note = " ".join(str(note or "").split())
    if len(note) > STATUS_NOTE_MAX:
        errors["note"] = f"A note on a status change has at most {STATUS_NOTE_MAX} characters."
    _raise_errors(errors)
    status = values["status"]
    if status == order.status:
        raise _field_error("status", f"The order is already {order.get_status_display().lower()}.")
    old = order.status
    order.status = status
    changes: dict = {"status": [old, status]}
    if status == Order.Status.PAID and order.paid_date is None:
        # Marked paid now, with no paid date given: it was paid today, as far as anyone knows.
        order.paid_date = timezone.localdate(timezone=org_timezone(org))
        changes["paid_date"] = [None, order.paid_date]
    order.save(update_fields=["status", "paid_date", "updated_at"])
    _history(org, actor, order, old, note, via)
    if note:
        changes["note"] = note
    audit(org=org, actor=actor, verb="order.status_changed", obj=order, changes=changes)
    emit_event(
        org=org,
        event_type="order.status_changed",
        payload=_payload(order, from_status=old, to_status=status, note=note),
    )
    return order


@transaction.atomic
def order_change_status(
    *,
    org,
    actor: Actor,
    policy,
    order: Order,
    status,
    note: str = "",
    via: str | None = None,
) -> Order:
    """Move the order to `status`, with an optional note kept in its history. Nothing is
    charged or refunded: the registry records what happened elsewhere."""
    order = _locked(org, policy, order)
    require(policy, "edit")
    return _change_status(org, actor, order, status, note, via)


@transaction.atomic
def order_delete(*, org, actor: Actor, policy, order: Order) -> None:
    """Remove the order and its status history (the audit log keeps what it was)."""
    order = _locked(org, policy, order)
    require(policy, "delete")
    state = _state(order)
    payload = _payload(order)
    public_id = str(order.public_id)
    title = order.title
    order.delete()
    audit(
        org=org,
        actor=actor,
        verb="order.deleted",
        object_type="order",
        object_id=public_id,
        object_repr=title,
        changes=diff(state, {}),
    )
    emit_event(org=org, event_type="order.deleted", payload=payload)
