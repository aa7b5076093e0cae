"""Links between custom object records and contacts or deals (associations).

A record is linked to one contact or one deal at a time, at most once per pair, with an
optional label ("student", "guardian") and date. The pair is unique in the database
(ObjectAssociation's constraints), and that is what decides: two requests that link the same
pair at once make one row, and the loser gets the same "already linked" error as a later try.

Rights (policy None is system work): linking, relinking and unlinking need the Custom objects
edit right on the record (in scope) and the right to see the other side: the contact
(Contacts view, in scope) or the deal (Pipeline view, in scope). The module must be on.
Every write audits and emits `object_record.associated`, `object_record.association_changed`
or `object_record.disassociated` in its transaction.
"""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction

from contacts.models import Contact
from crm.optional_modules import is_enabled
from crm.services import Actor, audit, emit_event

from ..models import Deal, ObjectAssociation, ObjectRecord

LABEL_MAX = 80
# The unique constraints that make a pair at most one row (pipeline/models/objects.py).
PAIR_CONSTRAINTS = {
    "object_association_once_per_contact": "contact",
    "object_association_once_per_deal": "deal",
}


class AlreadyAssociated(ValidationError):
    """The record is already linked to this contact or deal."""

    def __init__(self, field: str, record: ObjectRecord):
        target = "contact" if field == "contact" else "deal"
        name = record.display_name or "This record"
        super().__init__({field: [f"“{name}” is already associated with this {target}."]})


# Checks ------------------------------------------------------------------------------------


def require_module(org) -> None:
    if not is_enabled(org, "custom_objects"):
        raise PermissionDenied("Custom objects are turned off for this organization.")


def may_link(policy, record: ObjectRecord) -> bool:
    """Whether this member may change the links of `record` (policy None: system work)."""
    return policy is None or policy.can_touch("custom_objects", "edit", record.owner_id)


def sees_contact(policy, contact: Contact) -> bool:
    return policy is None or policy.can_touch("contacts", "view", contact.owner_id)


def sees_deal(policy, deal: Deal) -> bool:
    return policy is None or policy.can_touch("pipeline", "view", deal.owner_id)


def _require_rights(policy, record: ObjectRecord, contact, deal) -> None:
    if not may_link(policy, record):
        raise PermissionDenied("Your role may not change the links of this record.")
    if contact is not None and not sees_contact(policy, contact):
        raise PermissionDenied("Your role may not see this contact.")
    if deal is not None and not sees_deal(policy, deal):
        raise PermissionDenied("Your role may not see this deal.")


def _same_org(org, *rows) -> None:
    for row in rows:
        if row is not None and row.org_id != org.id:
            raise ValidationError("That record is not in this organization.")


def clean_label(value) -> str:
    """The label as stored: text, trimmed, at most LABEL_MAX characters, no NUL."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationError({"label": ["The label must be text."]})
    label = value.strip()
    if "\x00" in label:
        raise ValidationError({"label": ["The label can't contain a NUL character."]})
    if len(label) > LABEL_MAX:
        raise ValidationError(
            {"label": [f"Keep the label to {LABEL_MAX} characters (it has {len(label)})."]}
        )
    return label


def clean_date(value) -> dt.date | None:
    if value in (None, ""):
        return None
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        raise ValidationError({"associated_on": ["Enter a date."]})
    return value


# Payloads ----------------------------------------------------------------------------------


def _target(link: ObjectAssociation) -> tuple[str, Contact | Deal]:
    if link.contact_id is not None:
        assert link.contact is not None
        return "contact", link.contact
    assert link.deal is not None
    return "deal", link.deal


def _payload(link: ObjectAssociation) -> dict:
    kind, target = _target(link)
    record = link.record
    return {
        "association": link.public_id,
        "record": record.public_id,
        "object_type": record.object_type.public_id,
        "object_type_key": record.object_type.key,
        "target_type": kind,
        "target": target.public_id,
        "label": link.label,
        "associated_on": link.associated_on,
    }


def _audit(org, actor: Actor, verb: str, link: ObjectAssociation, changes: dict) -> None:
    kind, target = _target(link)
    audit(
        org=org,
        actor=actor,
        verb=verb,
        obj=link.record,
        changes={kind: str(target.public_id), **changes},
    )


# Writes ------------------------------------------------------------------------------------


def associate(
    *,
    org,
    actor: Actor,
    policy,
    record: ObjectRecord,
    contact: Contact | None = None,
    deal: Deal | None = None,
    label: str = "",
    associated_on: dt.date | None = None,
) -> ObjectAssociation:
    """Link `record` to one contact or one deal. A pair already linked is an
    AlreadyAssociated error (a ValidationError on the "contact" or "deal" field)."""
    require_module(org)
    if (contact is None) == (deal is None):
        raise ValidationError("Link the record to one contact or one deal.")
    _same_org(org, record, contact, deal)
    _require_rights(policy, record, contact, deal)
    label = clean_label(label)
    associated_on = clean_date(associated_on)
    field = "contact" if contact is not None else "deal"
    with transaction.atomic():
        try:
            # A savepoint: the unique constraint is the judge, and its refusal must leave a
            # caller's transaction usable.
            with transaction.atomic():
                link = ObjectAssociation.objects.for_org(org).create(
                    org=org,
                    record=record,
                    object_type_id=record.object_type_id,
                    contact=contact,
                    deal=deal,
                    label=label,
                    associated_on=associated_on,
                    created_by=actor.user,
                )
        except IntegrityError as exc:
            diag = getattr(exc.__cause__, "diag", None)
            if getattr(diag, "constraint_name", None) in PAIR_CONSTRAINTS:
                raise AlreadyAssociated(field, record) from None
            raise
        _audit(
            org,
            actor,
            "object_record.associated",
            link,
            {"label": label, "associated_on": associated_on},
        )
        emit_event(org=org, event_type="object_record.associated", payload=_payload(link))
    return link


def association_update(
    *,
    org,
    actor: Actor,
    policy,
    link: ObjectAssociation,
    label: str = "",
    associated_on: dt.date | None = None,
) -> ObjectAssociation:
    """Change a link's label and date."""
    require_module(org)
    _same_org(org, link)
    _require_rights(policy, link.record, link.contact, link.deal)
    label = clean_label(label)
    associated_on = clean_date(associated_on)
    changes: dict[str, list] = {}
    if label != link.label:
        changes["label"] = [link.label, label]
    if associated_on != link.associated_on:
        changes["associated_on"] = [link.associated_on, associated_on]
    if not changes:
        return link
    with transaction.atomic():
        link.label = label
        link.associated_on = associated_on
        link.save(update_fields=["label", "associated_on"])
        _audit(org, actor, "object_record.association_changed", link, changes)
        emit_event(org=org, event_type="object_record.association_changed", payload=_payload(link))
    return link


def disassociate(*, org, actor: Actor, policy, link: ObjectAssociation) -> None:
    """Remove a link. A link removed meanwhile by someone else is simply gone: no error."""
    require_module(org)
    _same_org(org, link)
    _require_rights(policy, link.record, link.contact, link.deal)
    payload = _payload(link)
    with transaction.atomic():
        deleted, _ = ObjectAssociation.objects.for_org(org).filter(pk=link.pk).delete()
        if not deleted:
            return
        _audit(
            org,
            actor,
            "object_record.disassociated",
            link,
            {"label": link.label, "associated_on": link.associated_on},
        )
        emit_event(org=org, event_type="object_record.disassociated", payload=payload)
