"""The contacts app's outbox consumers (crm.outbox), registered when the app loads
(ContactsConfig.ready): crm relays the events without knowing this app exists."""

from __future__ import annotations

from django.urls import reverse

from crm import outbox
from crm.models import Membership, User
from crm.services.notifications import notify

from .models import Contact

# Contacts named in the body of a notification about many.
NAMES_SHOWN = 5


@outbox.consumer(
    "contacts.owner_notifications", events={"contact.owner_changed"}, batch_size=outbox.BATCH_SIZE
)
def tell_new_owners(org, events: list[outbox.Event]) -> None:
    """A member hears when someone else gives them contacts: an edit of the owner, a
    reassignment, a bulk change of owner. One notification per giver for the events of a
    batch (a bulk change of 300 contacts is one message, not 300). Claiming a contact, or
    taking one for yourself, tells no one; nor does a release. An event that does not say
    who acted (written before events carried it) is skipped: better silent than wrong."""
    given: dict[tuple[str, str | None], list[str]] = {}
    for event in events:
        payload = event.payload
        owner = payload.get("owner")
        if not owner or "actor" not in payload or payload["actor"] == owner:
            continue
        contacts = given.setdefault((owner, payload["actor"]), [])
        if payload["contact"] not in contacts:
            contacts.append(payload["contact"])
    if not given:
        return
    people = {
        str(user.public_id): user
        for user in User.objects.filter(public_id__in={p for pair in given for p in pair if p})
    }
    members = set(
        Membership.objects.for_org(org)
        .active()
        .filter(user__in=list(people.values()))
        .values_list("user_id", flat=True)
    )
    named = {
        str(contact.public_id): contact
        for contact in Contact.objects.for_org(org).filter(
            public_id__in=[pid for ids in given.values() for pid in ids[:NAMES_SHOWN]]
        )
    }
    for (owner_id, actor_id), contact_ids in given.items():
        owner = people.get(owner_id)
        if owner is None or owner.pk not in members:
            continue
        actor = people.get(actor_id) if actor_id else None
        notify(org=org, user=owner, **_message(actor, contact_ids, named))


def _message(actor, contact_ids: list[str], named: dict[str, Contact]) -> dict:
    count = len(contact_ids)
    one = named.get(contact_ids[0]) if count == 1 else None
    what = one.full_name if one else f"{count} contact{'s' if count != 1 else ''}"
    title = f"{actor.display_name} assigned you {what}" if actor else f"You were assigned {what}"
    if one is not None:
        return {"title": title, "url": reverse("contacts:contact_detail", args=[one.public_id])}
    names = [named[pid].full_name for pid in contact_ids[:NAMES_SHOWN] if pid in named]
    more = count - len(names)
    body = ", ".join(names) + (f" and {more} more" if more and names else "")
    return {
        "title": title,
        "body": f"{body}." if body else "",
        "url": reverse("contacts:contact_list") + "?owner=me",
    }
