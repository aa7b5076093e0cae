"""The GDPR gate on imports: an "opted in" that a file (or the import's default) gave a
contact GDPR covers becomes "pending", and the person gets the double opt-in email.

The import writes in bulk (COPY and set-based SQL), so the gate runs once the rows are in,
as a step of the import's run (contacts.importing.services.run): it looks for the contacts
whose consent status this very import set to "opted in" (the consent ledger says which:
rows of kind "import" carrying the import's id), keeps those GDPR applies to, and for each
asks for the confirmation as a member's "Send double opt-in email" would. Contacts that
were opted in before the import, or that CCPA or no regime covers, are left alone.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable

from django.db import transaction

from contacts.models import Contact

from ..models import ConsentRecord
from ..selectors import GDPR, jurisdictions, privacy_settings
from .consent import ConsentVia, consent_context
from .double_opt_in import OptInRefused, request_opt_in

BATCH = 500
SOURCE = "GDPR: waiting for the double opt-in confirmation"


def _opted_in_by(job, ids: list[int]) -> list[int]:
    """Of `ids`, the contacts whose status this import set to "opted_in" and still is."""
    by_import = (
        ConsentRecord.objects.for_org(job.org_id)
        .filter(
            contact_id__in=ids,
            field="consent_status",
            new_value=Contact.ConsentStatus.OPTED_IN,
            actor_kind=ConsentRecord.ActorKind.IMPORT,
            evidence__import=str(job.public_id),
        )
        .values_list("contact_id", flat=True)
    )
    return list(
        Contact.objects.for_org(job.org_id)
        .filter(pk__in=by_import, consent_status=Contact.ConsentStatus.OPTED_IN)
        .values_list("pk", flat=True)
    )


def gate_imported_opt_ins(
    job, touched: Iterable[int], *, heartbeat: Callable[[], object] | None = None
) -> int:
    """Apply the gate to the contacts `touched` by `job`. Returns how many confirmation
    emails were asked for."""
    mode = privacy_settings(job.org_id).mode
    if GDPR not in jurisdictions(mode, ""):
        return 0  # GDPR covers nobody in this organization: nothing to gate
    via = ConsentVia(
        kind=ConsentRecord.ActorKind.IMPORT,
        user=job.created_by,
        label=getattr(job.created_by, "email", "") or "",
        source=SOURCE,
        form="Import",
        evidence=job.timeline_data,
    )
    asked = 0
    ids = iter(touched)
    while batch := list(itertools.islice(ids, BATCH)):
        with transaction.atomic():
            wanted = _opted_in_by(job, batch)
            contacts = [
                contact
                for contact in Contact.objects.for_org(job.org_id)
                .select_related("org")
                .filter(pk__in=wanted)
                .order_by("pk")
                if GDPR in jurisdictions(mode, contact.country)
            ]
            if contacts:
                with consent_context(via):
                    Contact.objects.for_org(job.org_id).filter(
                        pk__in=[c.pk for c in contacts]
                    ).update(consent_status=Contact.ConsentStatus.PENDING)
            for contact in contacts:
                contact.consent_status = Contact.ConsentStatus.PENDING
                try:
                    with transaction.atomic():
                        request_opt_in(contact=contact, via=via)
                    asked += 1
                except OptInRefused:
                    # No address, or one that may receive nothing (a bounce): it stays
                    # pending, which may_contact refuses for marketing, as it should.
                    continue
        if heartbeat is not None:
            heartbeat()
    return asked
