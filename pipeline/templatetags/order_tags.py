"""Template helpers of the orders registry's sections on pages that other views render (the
contact page, the deal page), so those views need no change to show them."""

from __future__ import annotations

from django import template

from crm.optional_modules import is_enabled

register = template.Library()


@register.filter
def module_on(org, key: str) -> bool:
    """{% if request.org|module_on:"orders" %}: whether the organization has the optional
    module `key` turned on (crm.optional_modules)."""
    return is_enabled(org, key)
