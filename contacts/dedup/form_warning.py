"""The contact form's "Looks like Jane Doe (same phone; names 93% alike)" warning, shown
before a new or edited contact is saved when its values look like an existing one.

A probable match stops the save once: the form comes back with the matches listed and a
"Save anyway" button whose value names the matches the member was shown
(`CONFIRM_FIELD`); the next submit saves unless a match not shown before has appeared.
Possible matches only ride along as a softer note (and in the check while typing); they
never stop a save.

Only contacts the member may open are named: matches are filtered by the member's record
scope, and only the fields the member may see are compared, so a warning can neither name
an out-of-scope contact nor say "same email" about an email hidden from them. Another
organization's contacts are never candidates (the engine reads one organization)."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.urls import reverse

from ..models import Contact
from ..normalize import normalize_email, normalize_phone, phone_region
from .models import DuplicatePair
from .scan import IDENTITY_FIELDS, pairs_for

CONFIRM_FIELD = "confirm_duplicates"
# Matches asked of the engine before the scope filter (it ranks the whole organization),
# and how many of each band the warning names.
CANDIDATES = 25
SHOWN = 3
MAX_VALUE_LENGTH = 300  # a check while typing reads GET parameters: bound them


@dataclass
class ShownMatch:
    public_id: str
    name: str
    url: str
    percent: int
    band: str
    reasons: list[str]


@dataclass
class DuplicateWarning:
    probable: list[ShownMatch] = field(default_factory=list)
    possible: list[ShownMatch] = field(default_factory=list)

    @property
    def signature(self) -> str:
        """What "Save anyway" sends back: the probable matches the member was shown."""
        return ",".join(sorted(match.public_id for match in self.probable))

    @property
    def blocks_save(self) -> bool:
        return bool(self.probable)

    def __bool__(self) -> bool:
        return bool(self.probable or self.possible)


def _visible_name(row: dict, policy) -> str:
    """The contact's name as this member may see it (the same rule as the record page:
    the email stands in for a missing name only when the email is visible)."""
    parts = [
        row["first_name"] if policy.can_see_field("first_name") else "",
        row["last_name"] if policy.can_see_field("last_name") else "",
    ]
    name = " ".join(part for part in parts if part).strip()
    if not name and row["email"] and policy.can_see_field("email"):
        return row["email"]
    return name or "(no name)"


def _instance_value(contact: Contact, key: str):
    if key == "company":
        return contact.company.name if contact.company_id else ""
    if key == "other_emails":
        return list(contact.other_emails or [])
    return getattr(contact, key, "") or ""


def _phone(value: str, country: str, org) -> str:
    """The number as stored (E.164) when it reads as one, so an exact match is found;
    as typed otherwise (the engine compares digits anyway)."""
    try:
        return normalize_phone(value, region=phone_region(country=country, org=org)) or value
    except ValidationError:
        return value


def form_values(form, policy, instance: Contact | None = None) -> dict:
    """The identity values the contact will have after this save: what the member typed,
    over the record's current values for fields the form leaves out; only fields the member
    may see."""
    cleaned = getattr(form, "cleaned_data", {}) or {}
    values: dict = {}
    for key in IDENTITY_FIELDS:
        if not policy.can_see_field(key):
            continue
        bound = form.fields.get(key)
        if bound is not None and not bound.disabled and key in cleaned:
            value = cleaned[key]
        elif instance is not None:
            value = _instance_value(instance, key)
        else:
            value = ""
        if key == "other_emails" and isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if key == "company" and not isinstance(value, str | list):
            value = getattr(value, "name", "") or ""
        values[key] = value
    country = cleaned.get("country") or (instance.country if instance is not None else "")
    for key in ("phone", "mobile"):
        if isinstance(values.get(key), str) and values[key]:
            values[key] = _phone(values[key], country or "", form.org)
    return values


def values_from_query(params, policy) -> dict:
    """Identity values from a check while typing (GET parameters), bounded in length."""
    values = {}
    for key in IDENTITY_FIELDS:
        if policy.can_see_field(key):
            values[key] = (params.get(key) or "").strip()[:MAX_VALUE_LENGTH]
    if isinstance(values.get("other_emails"), str):
        values["other_emails"] = [
            part.strip() for part in values["other_emails"].split(",") if part.strip()
        ]
    return values


def find(org, policy, values: dict, *, exclude_id: int | None = None) -> DuplicateWarning:
    """The existing active contacts `values` looks like, limited to the member's scope."""
    warning = DuplicateWarning()
    if not any(v for v in values.values()):
        return warning
    matches = pairs_for(org, values, limit=CANDIDATES, exclude_id=exclude_id)
    if not matches:
        return warning
    visible = {
        row["id"]: row
        for row in Contact.objects.for_org(org)
        .filter(policy.scope_filter("contacts"), is_archived=False)
        .filter(id__in=[match.contact_id for match in matches])
        .values("id", "public_id", "first_name", "last_name", "email")
    }
    for match in matches:  # best first
        row = visible.get(match.contact_id)
        if row is None:
            continue  # outside the member's scope: never named
        bucket = warning.probable if match.band == DuplicatePair.Band.PROBABLE else warning.possible
        if len(bucket) >= SHOWN:
            continue
        bucket.append(
            ShownMatch(
                public_id=str(row["public_id"]),
                name=_visible_name(row, policy),
                url=reverse("contacts:contact_detail", kwargs={"public_id": row["public_id"]}),
                percent=round(match.score * 100),
                band=match.band,
                reasons=[str(reason) for reason in match.reasons],
            )
        )
    return warning


def identity_changed(form) -> bool:
    return any(name in IDENTITY_FIELDS for name in form.changed_data)


def _email_taken(org, form, instance: Contact | None) -> bool:
    """Whether another active contact has the email typed (the save will be refused)."""
    field_ = form.fields.get("email")
    if field_ is None or field_.disabled:
        return False
    try:
        email = normalize_email(form.cleaned_data.get("email"))
    except ValidationError:
        return False
    if not email:
        return False
    others = Contact.objects.for_org(org).filter(is_archived=False, email=email)
    if instance is not None:
        others = others.exclude(pk=instance.pk)
    return others.exists()


def save_blocked_by(request, form, policy, instance: Contact | None = None):
    """The warning that stops this save, or None to go ahead. Call with a valid form.

    Nothing is checked on an edit that leaves the identity fields alone (a record already
    known to look like another is not warned about on every save), nor when "Save anyway"
    confirmed every probable match found now."""
    if instance is not None and not identity_changed(form):
        return None
    if _email_taken(request.org, form, instance):
        return None  # the service refuses it, next to the email field: that error says more
    warning = find(
        request.org,
        policy,
        form_values(form, policy, instance),
        exclude_id=instance.pk if instance is not None else None,
    )
    if not warning.blocks_save:
        return None
    confirmed = {part for part in request.POST.get(CONFIRM_FIELD, "").split(",") if part}
    if {match.public_id for match in warning.probable} <= confirmed:
        return None
    return warning
