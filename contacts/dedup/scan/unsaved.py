"""One contact not saved yet (`pairs_for`): what the contact form's duplicate warning asks.

It writes nothing: the candidates come from the key index, from the contacts changed since
the last scan (not indexed yet) and from those sharing the email or phone, and are compared
in the caller's transaction, so a request gets its answer without waiting for a scan. (An
import checks its new contacts a batch at a time on the same index instead:
contacts.importing.services.duplicates.)"""

from __future__ import annotations

from dataclasses import dataclass

from ..compare import compare
from ..model import default_model
from ..models import DedupSettings
from ..records import Person
from ._base import MAX_BLOCK, band_for, org_rules
from .index import block_partners
from .keys import _active_contacts, _load_people, key_hashes, person_from_values, refine_subs

# Contacts changed since the last scan that `pairs_for` also compares with (their keys are
# not indexed yet), most recent first.
RECENT_UNKEYED = 2000


@dataclass
class Match:
    contact_id: int
    public_id: object
    name: str
    score: float
    band: str
    reasons: list[str]


def pairs_for(
    org,
    person_or_values: Person | dict,
    *,
    limit: int = 5,
    exclude_id: int | None = None,
    max_block: int = MAX_BLOCK,
) -> list[Match]:
    """The existing active contacts that `person_or_values` (a prepared Person, or contact
    field values from a form or an import row) probably or possibly duplicates, best first.
    Its block partners come from the blocking-key index; contacts changed since the last
    scan (not indexed yet) and those with the same email or phone are compared as well.
    `exclude_id`: the contact being edited. Runs in the caller's transaction (a request is
    already in its organization)."""
    model = default_model()
    rules = org_rules(org, model=model)
    if isinstance(person_or_values, Person):
        person = person_or_values
    else:
        person = person_from_values(None, person_or_values, rules.email)
    found = block_partners(org, {None: key_hashes(person)}, {None: refine_subs(person)}, max_block)
    candidate_ids: set[int] = set(found.get(None, ()))
    settings_row = DedupSettings.objects.for_org(org).first()
    recent = _active_contacts(org)
    if settings_row is not None and settings_row.last_scan_at is not None:
        recent = recent.filter(updated_at__gt=settings_row.last_scan_at)
    candidate_ids.update(
        recent.order_by("-updated_at").values_list("id", flat=True)[:RECENT_UNKEYED]
    )
    if not isinstance(person_or_values, Person):
        email = (person_or_values.get("email") or "").strip().lower()
        if email:
            candidate_ids.update(
                _active_contacts(org).filter(email=email).values_list("id", flat=True)[:50]
            )
        phone = (person_or_values.get("phone") or "").strip()
        if phone:
            candidate_ids.update(
                _active_contacts(org).filter(phone=phone).values_list("id", flat=True)[:50]
            )
    if exclude_id is not None:
        candidate_ids.discard(exclude_id)
    people = _load_people(org, candidate_ids, rules.email)
    scored = []
    for contact_id, other in people.items():
        comparison = compare(person, other)
        score = model.probability(comparison)
        band = band_for(score, rules)
        if band is not None:
            scored.append((score, contact_id, band, model.reasons(comparison)))
    scored.sort(key=lambda item: (-item[0], item[1]))
    best = scored[:limit]
    names = {
        row[0]: row[1:]
        for row in _active_contacts(org)
        .filter(id__in=[item[1] for item in best])
        .values_list("id", "public_id", "first_name", "last_name", "email")
    }
    matches = []
    for score, contact_id, band, reasons in best:
        public_id, first, last, email = names[contact_id]
        name = f"{first} {last}".strip() or email or "(no name)"
        matches.append(Match(contact_id, public_id, name, round(score, 4), band, reasons))
    return matches
