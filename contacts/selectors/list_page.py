"""What one page of the contact list reads beyond the queryset of `contacts_for_state`: only
the columns it shows, the tags of its rows, and the pick-lists of its filter panel."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models import Prefetch, QuerySet

from crm.models import Membership

from ..fields import FieldSpec, catalog_by_key
from ..models import Tag
from . import sort_order

# What every row shows whatever its columns: the name (or email) with its link and checkbox.
_ROW_FIELDS = ("id", "public_id", "first_name", "last_name", "email", "is_archived")
# Columns read through a joined row, and what they read of it.
_RELATED_COLUMNS = {
    "company": ("company", "company__public_id", "company__name"),
}
# The owner is read by a second query, for the page's few owners. Joined, the users table
# (outside row-level security) made the planner misjudge a filtered "own" list: it summed
# up every match before sorting (220 ms instead of 30 ms for a rep's "Advanced" courses).
_OWNER_FIELDS = ("id", "first_name", "last_name", "email")


def for_list_page(
    qs: QuerySet, columns: list[str], catalog: list[FieldSpec], sort: str
) -> QuerySet:
    """`qs` reading only what a list page with `columns` shows and its sort needs: a contact
    row has some fifty columns (a search vector among them), and reading and converting the
    ones nobody sees cost more than the query. The company comes joined, the owners in one
    more query; tags come from `tag_names_by_contact`, one query for the page."""
    fields = catalog_by_key(catalog)
    only = set(_ROW_FIELDS)
    related = []
    for key in columns:
        if key == "owner":
            only.add("owner")
            owners = get_user_model().objects.only(*_OWNER_FIELDS)
            qs = qs.prefetch_related(Prefetch("owner", queryset=owners))
        elif key in _RELATED_COLUMNS:
            only.update(_RELATED_COLUMNS[key])
            related.append(key)
        elif key == "tags":
            continue
        elif fields[key].is_custom:
            only.add("custom")
        else:
            only.add(fields[key].path)
    only.update(key.name for key in sort_order(sort, catalog) if key.expression is None)
    if related:
        qs = qs.select_related(*related)
    return qs.only(*sorted(only))


def tag_names_by_contact(org, contact_ids) -> dict[int, list[str]]:
    """{contact id: its tag names A to Z} for a page of contacts, in one query."""
    names: dict[int, list[str]] = {}
    links = (
        Tag.objects.for_org(org)
        .filter(contacttag__contact_id__in=list(contact_ids))
        .order_by("name", "id")
        .values_list("contacttag__contact_id", "name")
    )
    for contact_id, name in links:
        names.setdefault(contact_id, []).append(name)
    return names


def panel_pick_lists(org, fields, *, tag_limit: int) -> tuple[list[str], list[Membership]]:
    """(tag names A to Z, up to `tag_limit`; active members with their user, by name) for the
    filter panel and the builder, each only when the member sees that field (`fields`)."""
    tag_names = (
        list(Tag.objects.for_org(org).order_by("name").values_list("name", flat=True)[:tag_limit])
        if "tags" in fields
        else []
    )
    members = (
        list(
            Membership.objects.for_org(org)
            .active()
            .select_related("user")
            .order_by("user__first_name", "user__email")
        )
        if "owner" in fields
        else []
    )
    return tag_names, members
