"""The record list's filters and sorts, one per field of the type, read from the query string.

Filters (each "f_<key>…", so no field key meets a list parameter):
- text and link: `f_<key>` contains (case-insensitive), or equals with `f_<key>_match=equals`;
- number, currency, percent: `f_<key>_min` / `f_<key>_max`;
- date: `f_<key>_from` / `f_<key>_to`;
- list: `f_<key>` one of the choices; yes/no: `f_<key>` = yes / no;
- `owner` = me / none / a member's public id; `q` searches the display name.

Equality (text equals, a choice, yes) is JSON containment (`values @> {"key": value}`), which
the GIN jsonb_path_ops index answers; ranges and "contains" read the type's rows. A value
that does not parse is an error on its filter, which is then left out (the others apply).

Sorts: the display name and the last update read their own indexes
(object_record_name / object_record_updated); a field's sort orders by the key's value
(numbers and yes/no as such, dates as their ISO text, text case-insensitive), records
without a value last in both directions. Every sort ends on the id, so keyset pages
(crm.pagination) are stable.
"""

from __future__ import annotations

from dataclasses import dataclass

from django import forms
from django.db.models import BooleanField, DecimalField, Func, Q
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.db.models.functions import Lower
from django.db.models.lookups import GreaterThanOrEqual, IContains, LessThanOrEqual

from crm.pagination import OrderKey

from ..models import ObjectField

FieldType = ObjectField.FieldType
NUMERIC = (FieldType.NUMBER, FieldType.CURRENCY, FieldType.PERCENT)
TEXTUAL = (FieldType.TEXT, FieldType.LINK)
DEFAULT_SORT = "name"
QUERY_MAX = 200


class _JsonScalar(Func):
    """A JSON key's value as a SQL scalar of one type, NULL when the stored value is of
    another JSON type (so a cast can never fail on a value written by some other path)."""

    json_type = ""
    sql_type = ""

    def __init__(self, key: str):
        super().__init__(KeyTransform(key, "values"))

    def as_sql(self, compiler, connection, **extra):
        sql, params = compiler.compile(self.source_expressions[0])
        return (
            f"(CASE WHEN jsonb_typeof({sql}) = '{self.json_type}' "
            f"THEN ({sql})::{self.sql_type} END)",
            (*params, *params),
        )


class JsonNumber(_JsonScalar):
    json_type, sql_type = "number", "numeric"
    output_field = DecimalField()


class JsonBool(_JsonScalar):
    json_type, sql_type = "boolean", "boolean"
    output_field = BooleanField()


def _text(key: str):
    return KeyTextTransform(key, "values")


# Filters ----------------------------------------------------------------------------------


class ObjectRecordFilterForm(forms.Form):
    q = forms.CharField(max_length=QUERY_MAX, required=False, label="Search")
    owner = forms.ChoiceField(required=False, label="Owner")

    def __init__(self, data, *, fields: list[ObjectField], owner_choices, **kwargs):
        super().__init__(data, **kwargs)
        self.object_fields = fields
        self.fields["owner"].choices = [("", "Anyone"), *owner_choices]
        self.groups: list[tuple[ObjectField, list[str]]] = []
        for field in fields:
            names = self._add_filter(field)
            self.groups.append((field, names))

    def _add_filter(self, field: ObjectField) -> list[str]:
        # Short labels: each field's inputs sit in a fieldset whose legend is the field's label.
        name = f"f_{field.key}"
        kind = field.field_type
        if kind in TEXTUAL:
            self.fields[name] = forms.CharField(max_length=QUERY_MAX, required=False, label="Value")
            self.fields[f"{name}_match"] = forms.ChoiceField(
                choices=[("contains", "Contains"), ("equals", "Is exactly")],
                required=False,
                label="Match",
            )
            return [f"{name}_match", name]
        if kind in NUMERIC:
            self.fields[f"{name}_min"] = forms.DecimalField(required=False, label="From")
            self.fields[f"{name}_max"] = forms.DecimalField(required=False, label="To")
            return [f"{name}_min", f"{name}_max"]
        if kind == FieldType.DATE:
            for suffix, words in (("from", "From"), ("to", "To")):
                self.fields[f"{name}_{suffix}"] = forms.DateField(
                    required=False,
                    label=words,
                    widget=forms.DateInput(attrs={"type": "date"}),
                )
            return [f"{name}_from", f"{name}_to"]
        if kind == FieldType.LIST:
            choices = [("", "Any"), *[(c, c) for c in field.choices or ()]]
            self.fields[name] = forms.ChoiceField(choices=choices, required=False, label="Is")
            return [name]
        if kind == FieldType.CHECKBOX:
            choices = [("", "Any"), ("yes", "Yes"), ("no", "No")]
            self.fields[name] = forms.ChoiceField(choices=choices, required=False, label="Is")
            return [name]
        return []

    def field_groups(self) -> list[tuple[ObjectField, list]]:
        """(field, its bound filter inputs) for the filter panel."""
        return [(field, [self[name] for name in names]) for field, names in self.groups if names]

    def cleaned(self) -> dict:
        """The valid filters only: an invalid one shows its error and is left out."""
        self.is_valid()
        return {k: v for k, v in getattr(self, "cleaned_data", {}).items() if v not in (None, "")}

    def active_count(self) -> int:
        values = self.cleaned()
        return sum(1 for k in values if not k.endswith("_match") and k != "q")

    def apply(self, queryset, user):
        values = self.cleaned()
        query = values.get("q")
        if query:
            queryset = queryset.filter(display_name__icontains=query)
        owner = values.get("owner")
        if owner == "me":
            queryset = queryset.filter(owner=user)
        elif owner == "none":
            queryset = queryset.filter(owner__isnull=True)
        elif owner:
            queryset = queryset.filter(owner__public_id=owner)
        for field in self.object_fields:
            queryset = queryset.filter(_field_condition(field, values))
        return queryset


def _field_condition(field: ObjectField, values: dict) -> Q:
    key, name, kind = field.key, f"f_{field.key}", field.field_type
    condition = Q()
    if kind in TEXTUAL and values.get(name):
        if values.get(f"{name}_match") == "equals":
            condition &= Q(values__contains={key: values[name].strip()})
        else:
            condition &= Q(IContains(_text(key), values[name]))
    elif kind in NUMERIC:
        if values.get(f"{name}_min") is not None:
            condition &= Q(GreaterThanOrEqual(JsonNumber(key), values[f"{name}_min"]))
        if values.get(f"{name}_max") is not None:
            condition &= Q(LessThanOrEqual(JsonNumber(key), values[f"{name}_max"]))
    elif kind == FieldType.DATE:
        if values.get(f"{name}_from"):
            condition &= Q(GreaterThanOrEqual(_text(key), values[f"{name}_from"].isoformat()))
        if values.get(f"{name}_to"):
            condition &= Q(LessThanOrEqual(_text(key), values[f"{name}_to"].isoformat()))
    elif kind == FieldType.LIST and values.get(name):
        condition &= Q(values__contains={key: values[name]})
    elif kind == FieldType.CHECKBOX and values.get(name):
        yes = Q(values__contains={key: True})
        condition &= yes if values[name] == "yes" else ~yes
    return condition


# Sorts ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SortOption:
    value: str  # the `sort` parameter
    label: str


def sort_options(fields: list[ObjectField]) -> list[SortOption]:
    options = [
        SortOption("name", "Name (A–Z)"),
        SortOption("-name", "Name (Z–A)"),
        SortOption("-updated", "Recently updated"),
        SortOption("updated", "Least recently updated"),
    ]
    for field in fields:
        options.append(SortOption(f"f_{field.key}", f"{field.label} ↑"))
        options.append(SortOption(f"-f_{field.key}", f"{field.label} ↓"))
    return options


def clean_sort(raw, fields: list[ObjectField]) -> str:
    allowed = {option.value for option in sort_options(fields)}
    return raw if raw in allowed else DEFAULT_SORT


def sort_order(sort: str, fields: list[ObjectField]) -> list[OrderKey]:
    """Keyset order keys for `sort` (already cleaned)."""
    descending = sort.startswith("-")
    name = sort.lstrip("-")
    last = OrderKey("id", descending=descending)
    if name == "name":
        return [OrderKey("name", Lower("display_name"), descending=descending), last]
    if name == "updated":
        return [OrderKey("updated_at", descending=descending), last]
    by_key = {f"f_{field.key}": field for field in fields}
    field = by_key[name]
    kind = field.field_type
    if kind in NUMERIC:
        expression = JsonNumber(field.key)
    elif kind == FieldType.CHECKBOX:
        expression = JsonBool(field.key)
    elif kind == FieldType.DATE:
        expression = _text(field.key)
    else:
        expression = Lower(_text(field.key))
    return [OrderKey(name, expression, descending=descending, nullable=True), last]
