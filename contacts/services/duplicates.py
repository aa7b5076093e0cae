"""Writes of the Data Health page that are not merges: "Not a duplicate".

A dismissal is stored with the lower contact id first, like the pair it answers, so a later
scan (contacts.dedup.scan) finds it whichever contact it starts from and never brings the
pair back."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from crm.services import Actor, audit, emit_event

from ..dedup.models import DuplicateDismissal, DuplicatePair, ordered_pair
from ..models import Contact
from ._base import _require, _user_of


@transaction.atomic
def dismiss_pair(
    *, org, actor: Actor, first: Contact, second: Contact, policy=None
) -> DuplicateDismissal:
    """Remember that `first` and `second` are different people and drop their found pair.
    Needs edit rights on both contacts (it changes what Data Health shows about them)."""
    _require(policy, "contacts", "edit", first.owner_id, check_scope=True)
    _require(policy, "contacts", "edit", second.owner_id, check_scope=True)
    if first.pk == second.pk:
        raise ValidationError("A contact cannot be a duplicate of itself.")
    low, high = ordered_pair(first.pk, second.pk)
    dismissal, created = DuplicateDismissal.objects.for_org(org).get_or_create(
        org=org,
        contact_a_id=low,
        contact_b_id=high,
        defaults={"dismissed_by": _user_of(actor)},
    )
    removed, _ = (
        DuplicatePair.objects.for_org(org).filter(contact_a_id=low, contact_b_id=high).delete()
    )
    if created:
        names = {c.pk: c for c in (first, second)}
        audit(
            org=org,
            actor=actor,
            verb="contact.duplicate_dismissed",
            obj=names[low],
            object_repr=f"{_label(names[low])} is not {_label(names[high])}",
            changes={"other": str(names[high].public_id), "pair_removed": bool(removed)},
        )
        emit_event(
            org=org,
            event_type="contact.duplicate_dismissed",
            payload={"contacts": [names[low].public_id, names[high].public_id]},
        )
    return dismissal


def _label(contact: Contact) -> str:
    name = f"{contact.first_name} {contact.last_name}".strip()
    return name or contact.email or str(contact.public_id)
