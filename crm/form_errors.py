"""Showing a service's ValidationError on the form the member filled in."""

from __future__ import annotations

from django.core.exceptions import ValidationError


def add_errors(form, exc: ValidationError, default_field: str | None = None) -> None:
    """Each message next to its field; messages for a key the form has no field for (or
    without a key) go to `default_field`, or above the form when that is None."""
    if hasattr(exc, "error_dict"):
        for key, messages in exc.message_dict.items():
            form.add_error(key if key in form.fields else default_field, messages)
    else:
        form.add_error(default_field, exc.messages)
