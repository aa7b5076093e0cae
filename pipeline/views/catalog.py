"""Settings → Products: the catalog that deal line items are picked from.

Everyone who sees the pipeline may read the list (the line item form offers its products);
settings admins and members who edit every deal may add, change, turn off and on again
(pipeline.services.catalog.can_manage_catalog says who, and why).
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from contacts.views.common import actor, redirect_or_refresh, workspace_view
from crm.form_errors import add_errors
from crm.permissions import policy_for

from ..forms.deals import ProductForm
from ..models import Product
from ..services import catalog as services

PAGE_LIMIT = 1000


def _require_manager(request) -> None:
    if not services.can_manage_catalog(policy_for(request)):
        raise PermissionDenied(
            "Only admins and members who edit every deal may change the product catalog."
        )


def _require_reader(request) -> None:
    if not services.can_read_catalog(policy_for(request)):
        raise PermissionDenied("Your role may not see the product catalog.")


def _back() -> str:
    return reverse("pipeline:products")


@workspace_view()
def products(request):
    _require_reader(request)
    show = request.GET.get("show", "active")
    show = show if show in ("active", "inactive") else "active"
    rows = Product.objects.for_org(request.org).filter(is_active=show == "active")
    query = (request.GET.get("q") or "").strip()[:200]
    if query:
        rows = rows.filter(Q(name__icontains=query) | Q(sku__iexact=query))
    rows = list(rows.order_by("name", "id")[: PAGE_LIMIT + 1])
    return render(
        request,
        "pipeline/products.html",
        {
            "products": rows[:PAGE_LIMIT],
            "truncated": len(rows) > PAGE_LIMIT,
            "show": show,
            "query": query,
            "can_manage": services.can_manage_catalog(policy_for(request)),
        },
    )


@workspace_view()
@require_http_methods(["GET", "POST"])
def product_create(request):
    _require_manager(request)
    form = ProductForm(request.POST or None, initial={"currency": request.org.base_currency})
    if request.method == "POST" and form.is_valid():
        try:
            product = services.product_create(
                org=request.org,
                actor=actor(request),
                data=form.cleaned_data,
                policy=policy_for(request),
            )
        except ValidationError as exc:
            add_errors(form, exc)
        else:
            messages.success(request, f"“{product.name}” was added to the catalog.")
            return redirect_or_refresh(request, _back())
    return render(request, "pipeline/products_form.html", {"form": form, "product": None})


def _product(request, product_public_id) -> Product:
    return get_object_or_404(Product.objects.for_org(request.org), public_id=product_public_id)


@workspace_view()
@require_http_methods(["GET", "POST"])
def product_edit(request, product_public_id):
    _require_manager(request)
    product = _product(request, product_public_id)
    form = ProductForm(
        request.POST or None,
        initial={
            "name": product.name,
            "sku": product.sku,
            "unit_price": product.unit_price,
            "currency": product.currency,
            "description": product.description,
        },
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.product_update(
                product=product,
                actor=actor(request),
                data=form.cleaned_data,
                policy=policy_for(request),
            )
        except ValidationError as exc:
            add_errors(form, exc)
        else:
            messages.success(request, "Product saved. Lines already on deals keep their price.")
            return redirect_or_refresh(request, _back())
    return render(request, "pipeline/products_form.html", {"form": form, "product": product})


@workspace_view()
@require_POST
def product_deactivate(request, product_public_id):
    _require_manager(request)
    product = _product(request, product_public_id)
    services.product_deactivate(product=product, actor=actor(request), policy=policy_for(request))
    messages.success(
        request, f"“{product.name}” is turned off; deals that have it keep their lines."
    )
    return redirect_or_refresh(request, _back())


@workspace_view()
@require_POST
def product_reactivate(request, product_public_id):
    _require_manager(request)
    product = _product(request, product_public_id)
    services.product_reactivate(product=product, actor=actor(request), policy=policy_for(request))
    messages.success(request, f"“{product.name}” is back in the catalog.")
    return redirect_or_refresh(request, _back() + "?show=inactive")
