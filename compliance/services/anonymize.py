"""Anonymization: a contact stays, as a record of no one.

What a retention rule's "anonymize" does. Unlike an erasure, the contact row remains, with
what says nothing about the person (lifecycle stage, source, country, score, company, dates)
so counts and reports still add up; its deals, orders, lists, tags and custom-object links
stay too. What could identify the person goes:
- the personal columns of the contact are blanked and its custom fields emptied;
- rows that are only about the person (timeline, notes, tasks, the consent ledger with its
  IP addresses, double opt-in confirmations, duplicate pairs and merge records) are deleted;
- deal titles and order texts have the person's name, email and phone taken out;
- suppressions of their addresses keep working under a keyed hash;
- the free-text places an erasure redacts (audit log, outbox, notifications, import samples,
  data requests) are redacted the same way.
No tombstone is written: an anonymized person who comes back is simply a new contact.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from contacts.models import Contact
from crm.services import Actor, audit, emit_event

from .consent import erasure_mode
from .erasure import (
    DELETE,
    ERASURE_TEXT_PLACES,
    RELATION_HANDLING,
    check_relations,
    contact_relations,
    person_of,
    relation_key,
    rows_of,
    tombstone_suppressions,
)

ANONYMIZED_LABEL = "Anonymized contact"
# Rows about the person that an anonymized contact keeps: links to business records, which
# say nothing about who they were once the contact is anonymous.
KEPT_LINKS = {
    "contacts.ContactTag.contact",
    "contacts.ContactList_contacts.contact",
    "pipeline.DealContact.contact",
    "pipeline.ObjectAssociation.contact",
}
# Contact columns that can identify a person, and their blank value.
PERSONAL_COLUMNS = {
    "first_name": ANONYMIZED_LABEL,
    "last_name": "",
    "email": "",
    "other_emails": [],
    "phone": "",
    "mobile": "",
    "phone_unverified": False,
    "mobile_unverified": False,
    "job_title": "",
    "department": "",
    "street": "",
    "city": "",
    "region": "",
    "postal_code": "",
    "linkedin_url": "",
    "twitter_handle": "",
    "timezone": "",
    "consent_source": "",
    "custom": {},
}
LEGAL_HOLD_MESSAGE = "{name} is on legal hold, so they cannot be anonymized."


def _redact_business_texts(person) -> int:
    """Deal titles and order texts may name the person: take the name, email and phone out."""
    from pipeline.models import Deal, Order

    count = 0
    for order in Order.objects.for_org(person.org).filter(contact_id__in=person.contact_ids):
        title, note = person.redact_text(order.title), person.redact_text(order.note)
        if (title, note) != (order.title, order.note):
            Order.objects.for_org(person.org).filter(pk=order.pk).update(title=title, note=note)
            count += 1
    deals = Deal.objects.for_org(person.org).filter(contact_id__in=person.contact_ids)
    for deal in deals.only("id", "title"):
        title = person.redact_text(deal.title)
        if title != deal.title:
            Deal.objects.for_org(person.org).filter(pk=deal.pk).update(title=title[:200])
            count += 1
    return count


def anonymize_contact(*, contact: Contact, actor: Actor) -> dict:
    """Anonymize `contact` (see the module docstring). Refused on legal hold. Returns what
    was done, as counts."""
    relations = contact_relations()
    check_relations(relations)
    org = contact.org
    with transaction.atomic():
        locked = Contact.objects.for_org(org).select_for_update().get(pk=contact.pk)
        if locked.legal_hold:
            name = f"{locked.first_name} {locked.last_name}".strip() or "This contact"
            raise ValidationError(LEGAL_HOLD_MESSAGE.format(name=name), code="legal_hold")
        if locked.anonymized_at is not None:
            return {}
        person = person_of(org, [locked])
        done: dict[str, int] = {}
        with erasure_mode():
            for fk in relations:
                key = relation_key(fk)
                if RELATION_HANDLING[key] != DELETE or key in KEPT_LINKS:
                    continue
                deleted, _ = rows_of(fk.model, org).filter(**{fk.attname: locked.pk}).delete()
                if deleted:
                    done[key] = deleted
            done["texts"] = _redact_business_texts(person)
            done["suppressions"] = tombstone_suppressions(person, {*person.emails, *person.phones})
            for place in ERASURE_TEXT_PLACES:
                done[place.label] = place.redact(person)
            for name, value in PERSONAL_COLUMNS.items():
                setattr(locked, name, value)
            locked.anonymized_at = timezone.now()
            locked.save(update_fields=[*PERSONAL_COLUMNS, "anonymized_at", "updated_at"])
        audit(
            org=org,
            actor=actor,
            verb="contact.anonymized",
            object_type="contact",
            object_id=str(locked.public_id),
            object_repr=ANONYMIZED_LABEL,
            changes={key: value for key, value in done.items() if value},
        )
        emit_event(
            org=org, event_type="contact.anonymized", payload={"contact": str(locked.public_id)}
        )
    contact.refresh_from_db()
    return done
