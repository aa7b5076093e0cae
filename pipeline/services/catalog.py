"""The product catalog (Settings → Products): what deal line items are picked from.

Who manages it: settings admins (Settings edit), and members who edit every deal of the
organization (pipeline edit with scope "all", i.e. sales managers), because prices are a
sales decision as much as an administrative one. A rep with own or team scope picks from the
catalog but does not change it. Everyone who sees the pipeline may read the catalog: the line
item form lists its active products.

Products are deactivated, never deleted: lines keep their snapshot either way, and a
deactivated product can be turned on again. Changing a product's price never touches the
lines already on deals (see pipeline.services.line_items).
"""

from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction

from crm.field_sizes import char_max_length
from crm.services import Actor, audit, diff, emit_event, snapshot

from ..models import Product
from ..money import clean_currency, to_decimal

NAME_MAX = char_max_length(Product, "name")
SKU_MAX = char_max_length(Product, "sku")
DESCRIPTION_MAX = 5000
MAX_PRODUCTS = 10000
PRODUCT_FIELDS = ["name", "sku", "description", "unit_price", "currency", "is_active"]
SKU_TAKEN = "Another product already has this SKU."


def can_manage_catalog(policy) -> bool:
    """Settings admins and members who edit all deals (policy None: system work)."""
    if policy is None:
        return True
    if policy.is_settings_admin():
        return True
    return policy.can("pipeline", "edit") and policy.scope("pipeline") == "all"


def can_read_catalog(policy) -> bool:
    if policy is None:
        return True
    return can_manage_catalog(policy) or policy.can("pipeline", "view")


def _require_manager(policy) -> None:
    if not can_manage_catalog(policy):
        raise PermissionDenied(
            "Only admins and members who edit every deal may change the product catalog."
        )


def _places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def _clean(org, data: dict, *, product: Product | None) -> dict:
    values: dict = {}
    errors: dict = {}
    partial = product is not None

    def field(key, parse):
        if key not in data and partial:
            return
        try:
            values[key] = parse(data.get(key))
        except ValidationError as exc:
            errors[key] = exc.messages

    def name(raw):
        text = " ".join(str(raw or "").split())
        if not text:
            raise ValidationError("A product needs a name.")
        if len(text) > NAME_MAX:
            raise ValidationError(f"Keep the name to {NAME_MAX} characters.")
        return text

    def sku(raw):
        text = str(raw or "").strip()
        if len(text) > SKU_MAX:
            raise ValidationError(f"Keep the SKU to {SKU_MAX} characters.")
        return text

    def description(raw):
        text = str(raw or "").strip()
        if len(text) > DESCRIPTION_MAX:
            raise ValidationError(f"Keep the description to {DESCRIPTION_MAX} characters.")
        return text

    def price(raw):
        value = to_decimal(raw, "Unit price")
        if _places(value) > 2:
            raise ValidationError("Unit price can have at most 2 decimal places (cents).")
        return value.quantize(Decimal("0.01"))

    def currency(raw):
        return clean_currency(raw if raw not in (None, "") else org.base_currency)

    field("name", name)
    field("sku", sku)
    field("description", description)
    field("unit_price", price)
    field("currency", currency)
    if errors:
        raise ValidationError(errors)
    sku_value = values.get("sku")
    if sku_value:
        taken = Product.objects.for_org(org).filter(sku__iexact=sku_value)
        if product is not None:
            taken = taken.exclude(pk=product.pk)
        if taken.exists():
            raise ValidationError({"sku": [SKU_TAKEN]})
    return values


def _save(product: Product, **kwargs) -> None:
    try:
        with transaction.atomic():
            product.save(**kwargs)
    except IntegrityError as exc:
        if "product_sku_per_org" in str(exc):
            raise ValidationError({"sku": [SKU_TAKEN]}) from None
        raise


def _event(org, event_type: str, product: Product) -> None:
    emit_event(
        org=org,
        event_type=event_type,
        payload={
            "product": product.public_id,
            "name": product.name,
            "sku": product.sku,
            "unit_price": str(product.unit_price),
            "currency": product.currency,
            "is_active": product.is_active,
        },
    )


@transaction.atomic
def product_create(*, org, actor: Actor, data: dict, policy=None) -> Product:
    _require_manager(policy)
    if Product.objects.for_org(org).count() >= MAX_PRODUCTS:
        raise ValidationError(f"A catalog holds at most {MAX_PRODUCTS:,} products.")
    values = _clean(org, data, product=None)
    product = Product(org=org, **values)
    _save(product)
    audit(
        org=org,
        actor=actor,
        verb="product.created",
        obj=product,
        changes=diff({}, snapshot(product, PRODUCT_FIELDS)),
    )
    _event(org, "product.created", product)
    return product


def _locked(product: Product) -> Product:
    return Product.objects.for_org(product.org_id).select_for_update().get(pk=product.pk)


@transaction.atomic
def product_update(*, product: Product, actor: Actor, data: dict, policy=None) -> Product:
    """Change a product. Lines already on deals keep the name and price they were added with."""
    _require_manager(policy)
    product = _locked(product)
    org = product.org
    values = _clean(org, data, product=product)
    before = snapshot(product, PRODUCT_FIELDS)
    for key, value in values.items():
        setattr(product, key, value)
    changes = diff(before, snapshot(product, PRODUCT_FIELDS))
    if not changes:
        return product
    _save(product)
    audit(org=org, actor=actor, verb="product.updated", obj=product, changes=changes)
    _event(org, "product.updated", product)
    return product


def _set_active(product: Product, actor: Actor, policy, active: bool) -> Product:
    _require_manager(policy)
    product = _locked(product)
    if product.is_active == active:
        return product
    product.is_active = active
    product.save(update_fields=["is_active", "updated_at"])
    verb = "product.reactivated" if active else "product.deactivated"
    audit(
        org=product.org,
        actor=actor,
        verb=verb,
        obj=product,
        changes={"is_active": [not active, active]},
    )
    _event(product.org, verb, product)
    return product


@transaction.atomic
def product_deactivate(*, product: Product, actor: Actor, policy=None) -> Product:
    """Take a product out of the line item picker; deals that have it keep their lines."""
    return _set_active(product, actor, policy, False)


@transaction.atomic
def product_reactivate(*, product: Product, actor: Actor, policy=None) -> Product:
    return _set_active(product, actor, policy, True)


def active_products(org):
    return Product.objects.for_org(org).filter(is_active=True).order_by("name", "id")
