"""A deal's line items: add (from the catalog, or one-off), change, remove, reorder.

A line picked from the catalog is a snapshot: its name, unit price and currency are copied
when it is added, so a later change of the product's price never changes the deal.

The deal's value follows its lines: while it has lines, its value is their sum and cannot
be typed (value_is_manual False); when the last line goes, the value keeps the last sum and
is the member's to change again. A deal has one currency, set by its first line: a line in
another currency is refused, as converting on the fly would hide a rate nobody chose.

Every write locks the deal's row first, so two members adding lines at once cannot lose one
of the sums; it checks the pipeline edit right, the deal's record scope and the "value" field
rule (lines change the value), audits, and emits "deal.updated" through the outbox.
"""

from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max, Sum

from crm.field_sizes import char_max_length
from crm.services import Actor, audit, emit_event

from ..fields import locked_deal_fields
from ..models import Deal, LineItem, Product
from ..money import MAX_AMOUNT, ZERO, clean_currency, line_total, to_decimal
from .deals import DealFieldLocked, require

MAX_LINES = 200
NAME_MAX = char_max_length(LineItem, "name")
QUANTITY_MAX = Decimal("999999999.999")
DISCOUNT_KINDS = LineItem.DiscountKind

LINE_FIELDS = ("name", "quantity", "unit_price", "discount_kind", "discount")


# Checks ---------------------------------------------------------------------------------------


def _locked_deal(deal: Deal) -> Deal:
    return (
        Deal.objects.for_org(deal.org_id)
        .select_for_update(of=("self",))
        .select_related("org", "pipeline", "stage")
        .get(pk=deal.pk)
    )


def _may_change_lines(policy, deal: Deal) -> None:
    require(policy, "edit", deal)
    if deal.is_archived:
        raise ValidationError("Restore the deal before changing its line items.")
    locked = locked_deal_fields(policy, ["value"])
    if locked:
        # Lines set the value: a member who may not change the value may not change them.
        raise DealFieldLocked(locked)


def _places(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def _quantity(raw) -> Decimal:
    value = to_decimal(raw if raw not in (None, "") else "1", "Quantity")
    if value <= 0:
        raise ValidationError("Quantity must be more than zero.")
    if _places(value.normalize()) > 3:
        raise ValidationError("Quantity can have at most 3 decimal places.")
    if value > QUANTITY_MAX:
        raise ValidationError("Quantity is too large.")
    return value.quantize(Decimal("0.001"))


def _price(raw, label: str = "Unit price") -> Decimal:
    value = to_decimal(raw, label)
    if _places(value.normalize()) > 2:
        raise ValidationError(f"{label} can have at most 2 decimal places (cents).")
    return value.quantize(Decimal("0.01"))


def _discount(kind_raw, raw) -> tuple[str, Decimal]:
    kind = str(kind_raw or DISCOUNT_KINDS.NONE).strip()
    if kind not in DISCOUNT_KINDS.values:
        raise ValidationError({"discount_kind": ["Choose no discount, an amount or a percent."]})
    if kind == DISCOUNT_KINDS.NONE:
        return kind, ZERO
    try:
        value = _price(raw if raw not in (None, "") else "0", "Discount")
    except ValidationError as exc:
        raise ValidationError({"discount": exc.messages}) from None
    if kind == DISCOUNT_KINDS.PERCENT and value > 100:
        raise ValidationError({"discount": ["A percent discount is between 0 and 100."]})
    return kind, value


def _name(raw) -> str:
    text = " ".join(str(raw or "").split())
    if not text:
        raise ValidationError("A line needs a name.")
    if len(text) > NAME_MAX:
        raise ValidationError(f"Keep the name to {NAME_MAX} characters.")
    return text


def _clean(data: dict, *, partial: bool) -> dict:
    """The line's fields from `data`, every field's error collected at once."""
    values: dict = {}
    errors: dict = {}

    def field(key, parse):
        if key not in data and partial:
            return
        try:
            values[key] = parse(data.get(key))
        except ValidationError as exc:
            errors[key] = exc.messages

    field("name", _name)
    field("quantity", _quantity)
    field("unit_price", _price)
    if "discount_kind" in data or "discount" in data or not partial:
        try:
            values["discount_kind"], values["discount"] = _discount(
                data.get("discount_kind"), data.get("discount")
            )
        except ValidationError as exc:
            errors.update(exc.message_dict)
    if errors:
        raise ValidationError(errors)
    return values


def _total(line: LineItem) -> Decimal:
    total = line_total(line.quantity, line.unit_price, line.discount_kind, line.discount)
    if total > MAX_AMOUNT:
        raise ValidationError({"quantity": ["This line's total is too large."]})
    return total


def _check_currency(deal: Deal, currency: str, *, has_lines: bool, what: str) -> None:
    if has_lines and currency != deal.currency:
        raise ValidationError(
            {
                "currency": [
                    f"This deal is in {deal.currency}, and {what} is in {currency}. A deal has "
                    f"one currency: add lines in {deal.currency}, or remove the deal's lines "
                    "first to switch it."
                ]
            }
        )


# The deal's value --------------------------------------------------------------------------


def _refresh_value(deal: Deal) -> list[str]:
    """Set the deal's value from its lines (or make it manual when there are none); returns
    the deal fields that changed."""
    lines = LineItem.objects.for_org(deal.org_id).filter(deal=deal)
    total = lines.aggregate(total=Sum("total"))["total"]
    changed = []
    if total is None:  # no lines left: the value stays, and is the member's again
        if not deal.value_is_manual:
            deal.value_is_manual = True
            changed.append("value_is_manual")
    else:
        if total > MAX_AMOUNT:
            raise ValidationError("The deal's total would be too large.")
        if deal.value != total:
            deal.value = total
            changed.append("value")
        if deal.value_is_manual:
            deal.value_is_manual = False
            changed.append("value_is_manual")
    if changed:
        deal.save(update_fields=[*changed, "updated_at"])
    return changed


def _line_state(line: LineItem) -> dict:
    return {
        "line": str(line.public_id),
        "name": line.name,
        "quantity": str(line.quantity),
        "unit_price": str(line.unit_price),
        "discount_kind": line.discount_kind,
        "discount": str(line.discount),
        "total": str(line.total),
    }


def _record(org, actor: Actor, deal: Deal, verb: str, changes: dict, value_before) -> None:
    if str(deal.value) != value_before:
        changes = {**changes, "value": [value_before, str(deal.value)]}
    audit(org=org, actor=actor, verb=verb, obj=deal, changes=changes)
    emit_event(
        org=org,
        event_type="deal.updated",
        payload={
            "deal": deal.public_id,
            "title": deal.title,
            "value": str(deal.value),
            "currency": deal.currency,
            "value_is_manual": deal.value_is_manual,
            "changes": ["line_items", *(["value"] if "value" in changes else [])],
        },
    )


# Writes --------------------------------------------------------------------------------------


@transaction.atomic
def line_item_add(
    *,
    deal: Deal,
    actor: Actor,
    data: dict,
    product: Product | None = None,
    policy=None,
) -> LineItem:
    """A line on `deal`: from `product` (its name, price and currency copied now; `data`
    may still set the quantity, the discount, and a negotiated unit price), or one-off from
    `data` (name, quantity, unit_price, discount_kind, discount, currency)."""
    org = deal.org
    deal = _locked_deal(deal)
    _may_change_lines(policy, deal)
    lines = LineItem.objects.for_org(org).filter(deal=deal)
    count = lines.count()
    if count >= MAX_LINES:
        raise ValidationError(f"A deal can have at most {MAX_LINES} line items.")
    data = dict(data)
    if product is not None:
        if product.org_id != org.id:
            raise ValidationError({"product": ["Choose a product of this organization."]})
        # The snapshot is of the catalog as it is now, not of a copy read earlier.
        product = Product.objects.for_org(org).get(pk=product.pk)
        if not product.is_active:
            raise ValidationError({"product": [f"“{product.name}” is no longer sold."]})
        data.setdefault("name", product.name)
        if data.get("unit_price") in (None, ""):
            data["unit_price"] = product.unit_price
        currency = product.currency
        what = f"the product “{product.name}”"
    else:
        try:
            currency = clean_currency(data.get("currency") or deal.currency)
        except ValidationError as exc:
            raise ValidationError({"currency": exc.messages}) from None
        what = "this line"
    values = _clean(data, partial=False)
    _check_currency(deal, currency, has_lines=count > 0, what=what)
    position = (lines.aggregate(top=Max("position"))["top"] or 0) + 1 if count else 0
    line = LineItem(org=org, deal=deal, product=product, position=position, **values)
    line.total = _total(line)
    line.save()
    value_before = str(deal.value)
    if count == 0 and deal.currency != currency:
        deal.currency = currency  # the first line sets the deal's currency
        deal.save(update_fields=["currency", "updated_at"])
    _refresh_value(deal)
    changes: dict[str, list] = {"line_item": [None, _line_state(line)]}
    if product is not None:
        changes["product"] = [None, str(product.public_id)]
    _record(org, actor, deal, "deal.line_item_added", changes, value_before)
    return line


@transaction.atomic
def line_item_update(*, line: LineItem, actor: Actor, data: dict, policy=None) -> LineItem:
    """Change a line's name, quantity, unit price or discount. Its currency is the deal's."""
    deal = _locked_deal(line.deal)
    org = deal.org
    _may_change_lines(policy, deal)
    line = LineItem.objects.for_org(org).select_for_update().get(pk=line.pk, deal=deal)
    data = {k: v for k, v in data.items() if k in (*LINE_FIELDS, "currency")}
    if "discount" in data and "discount_kind" not in data:
        data["discount_kind"] = line.discount_kind  # a new amount keeps the kind of discount
    values = _clean({k: v for k, v in data.items() if k in LINE_FIELDS}, partial=True)
    if "currency" in data and data["currency"] not in (None, ""):
        try:
            currency = clean_currency(data["currency"])
        except ValidationError as exc:
            raise ValidationError({"currency": exc.messages}) from None
        _check_currency(deal, currency, has_lines=True, what="this line")
    before = _line_state(line)
    for key, value in values.items():
        setattr(line, key, value)
    line.total = _total(line)
    after = _line_state(line)
    if before == after:
        return line
    line.save()
    value_before = str(deal.value)
    _refresh_value(deal)
    _record(
        org, actor, deal, "deal.line_item_updated", {"line_item": [before, after]}, value_before
    )
    return line


@transaction.atomic
def line_item_remove(*, line: LineItem, actor: Actor, policy=None) -> None:
    deal = _locked_deal(line.deal)
    org = deal.org
    _may_change_lines(policy, deal)
    line = LineItem.objects.for_org(org).select_for_update().get(pk=line.pk, deal=deal)
    before = _line_state(line)
    line.delete()
    value_before = str(deal.value)
    _refresh_value(deal)
    _record(org, actor, deal, "deal.line_item_removed", {"line_item": [before, None]}, value_before)


@transaction.atomic
def line_items_reorder(*, deal: Deal, actor: Actor, order: list, policy=None) -> list[LineItem]:
    """Put the deal's lines in `order` (their public ids, every line once)."""
    deal = _locked_deal(deal)
    org = deal.org
    _may_change_lines(policy, deal)
    lines = list(LineItem.objects.for_org(org).filter(deal=deal).order_by("position", "id"))
    by_id = {str(line.public_id): line for line in lines}
    wanted = [str(item) for item in order]
    if sorted(wanted) != sorted(by_id):
        raise ValidationError("The order must list each of the deal's lines once.")
    before = [str(line.public_id) for line in lines]
    if before == wanted:
        return lines
    ordered = [by_id[key] for key in wanted]
    for position, line in enumerate(ordered):
        line.position = position
    LineItem.objects.for_org(org).bulk_update(ordered, ["position"])
    _record(
        org, actor, deal, "deal.line_items_reordered", {"order": [before, wanted]}, str(deal.value)
    )
    return ordered


@transaction.atomic
def line_item_move(*, line: LineItem, actor: Actor, direction: str, policy=None) -> list[LineItem]:
    """Move a line one place up or down (the keyboard and no-JavaScript way to reorder)."""
    if direction not in ("up", "down"):
        raise ValidationError("Move a line up or down.")
    _locked_deal(line.deal)
    ids = list(
        LineItem.objects.for_org(line.org_id)
        .filter(deal_id=line.deal_id)
        .order_by("position", "id")
        .values_list("public_id", flat=True)
    )
    index = ids.index(line.public_id)
    target = index - 1 if direction == "up" else index + 1
    if 0 <= target < len(ids):
        ids[index], ids[target] = ids[target], ids[index]
    return line_items_reorder(deal=line.deal, actor=actor, order=ids, policy=policy)


def deal_lines(org, deal: Deal) -> list[LineItem]:
    return list(
        LineItem.objects.for_org(org)
        .filter(deal=deal)
        .select_related("product")
        .order_by("position", "id")
    )
