"""The timeline as one member may see it: entries that repeat a contact field the member
cannot see are left out, and a change entry lists only the fields the member can see. The
contact page and the company page both read the timeline through here."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from .models import Activity

# Entries that repeat one field's value: shown only to members who may see that field.
FIELD_OF_ACTIVITY = {
    Activity.Type.OWNER_CHANGED: "owner",
    Activity.Type.STAGE_CHANGE: "lifecycle_stage",
}

# What a change written by any code path is shown with when it lacks a part.
CHANGE_DEFAULTS = {"kind": "text", "before": None, "after": None}


# Bookkeeping entries: they are history, not activity, so last_activity_at ignores them and
# "no activity in 30 days" keeps meaning what a rep expects.
BOOKKEEPING_TYPES = frozenset(
    {
        Activity.Type.CREATED,
        Activity.Type.UPDATED,
        Activity.Type.IMPORTED,
        Activity.Type.MERGED,
        Activity.Type.OWNER_CHANGED,
        Activity.Type.ARCHIVED,
        Activity.Type.RESTORED,
    }
)


def visible_entries(queryset: QuerySet, policy, field_keys) -> QuerySet:
    """`queryset` without what this member may not see. `field_keys` are the catalog keys of
    the org's contact fields; a change entry whose fields are all hidden is left out in SQL
    (so a page of the timeline is a full page), a mixed one is trimmed by `with_changes`."""
    hidden_types = [t for t, key in FIELD_OF_ACTIVITY.items() if not policy.can_see_field(key)]
    if hidden_types:
        queryset = queryset.exclude(type__in=hidden_types)
    hidden = sorted(policy.hidden_fields(field_keys))
    if hidden:
        queryset = queryset.exclude(
            Q(type=Activity.Type.UPDATED)
            & Q(contact__isnull=False)
            & Q(data__fields__contained_by=hidden)
        )
    return queryset


def with_changes(entries, policy) -> list:
    """The entries with `.changes` set on change entries (only the fields this member may
    see); a change entry left with nothing to show is dropped."""
    out = []
    for entry in entries:
        if entry.type == Activity.Type.UPDATED:
            # Field rules are about contact fields; a company's entry is checked as such.
            module = "contacts" if entry.contact_id else "companies"
            changes = (entry.data or {}).get("changes") or []
            entry.changes = [
                {**CHANGE_DEFAULTS, "label": change.get("field", ""), **change}
                for change in changes
                if isinstance(change, dict)
                and policy.can_see_field(change.get("field", ""), module)
            ]
            if not entry.changes:
                continue
        out.append(entry)
    return out
