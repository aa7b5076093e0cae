"""Field sizes read from the models, for the code that checks input against them.

`Model._meta.get_field()` may return a field, a reverse relation or a generic foreign key, and
`max_length` may be None, so `len(text) > Model._meta.get_field("name").max_length` does not
type-check (and would raise TypeError on a field without a limit). These say which is meant.
"""

from django.db import models


def field_max_length(model: type[models.Model], name: str) -> int | None:
    """The field's max_length, or None when it has none (a TextField, a relation)."""
    field = model._meta.get_field(name)
    return field.max_length if isinstance(field, models.Field) else None


def char_max_length(model: type[models.Model], name: str) -> int:
    """The max_length of a field that must have one, such as a CharField."""
    limit = field_max_length(model, name)
    if limit is None:
        raise TypeError(f"{model.__name__}.{name} has no max_length")
    return limit
