"""Legal hold: while a legal matter needs a contact's record, retention rules and erasure
leave it alone. Putting a contact on hold, or lifting the hold, needs a note and is audited."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from contacts.models import Contact
from crm.services import Actor, audit, emit_event

NOTE_MAX = 1000


@transaction.atomic
def set_legal_hold(*, contact: Contact, on: bool, actor: Actor, note: str) -> bool:
    """Put `contact` on legal hold (on=True) or lift it. Returns whether anything changed."""
    note = (note or "").strip()
    if not note:
        raise ValidationError({"note": ["Say why the hold is put on or lifted."]})
    if len(note) > NOTE_MAX:
        raise ValidationError({"note": [f"Keep the note under {NOTE_MAX} characters."]})
    locked = Contact.objects.for_org(contact.org_id).select_for_update().get(pk=contact.pk)
    if locked.legal_hold == on:
        return False
    locked.legal_hold = on
    locked.save(update_fields=["legal_hold", "updated_at"])
    contact.legal_hold = on
    audit(
        org=locked.org,
        actor=actor,
        verb="contact.legal_hold_set" if on else "contact.legal_hold_lifted",
        obj=locked,
        changes={"legal_hold": [not on, on], "note": note},
    )
    emit_event(
        org=locked.org,
        event_type="contact.updated",
        payload={"contact": locked.public_id, "fields": ["legal_hold"]},
    )
    return True
