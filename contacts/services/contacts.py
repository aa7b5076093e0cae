"""Contacts and tags: create, update (field by field, as the member may), ownership,
archive and restore."""

from __future__ import annotations

import contextlib

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models.functions import Lower
from django.utils import timezone

from compliance.services.consent import ConsentVia, consent_context
from compliance.services.double_opt_in import gate_opt_in, send_gated_opt_in
from compliance.services.erasure import is_tombstoned
from crm.field_sizes import field_max_length
from crm.services import Actor, audit, diff, emit_event, snapshot

from .. import normalize, validators
from ..custom_fields import apply_custom_values
from ..fields import (
    CONTACT_FIELDS,
    CUSTOM_PREFIX,
    catalog_by_key,
    contact_field_catalog,
)
from ..models import Activity, Company, Contact, Tag
from ..scoring import rescore_contact
from ._base import (
    EMAIL_TAKEN,
    MAX_TAG_LENGTH,
    _bool_or_none,
    _check_member,
    _choice,
    _datetime_or_none,
    _is_contact_admin,
    _org_tz,
    _refuse_locked_fields,
    _require,
    _text,
    _user_of,
)
from .companies import company_for
from .timeline import _log, record_field_changes


def _rescore(contact: Contact) -> None:
    """Recompute the lead score from the org's rules (contacts.scoring owns the rules)."""
    rescore_contact(contact)


# Contact state for the audit trail -----------------------------------------------------

_CONTACT_SCALARS = [spec.key for spec in CONTACT_FIELDS if spec.editable and spec.type != "tags"]


def _contact_state(contact: Contact) -> dict:
    state = snapshot(contact, [*_CONTACT_SCALARS, "is_archived"])
    if contact.pk:
        state["tags"] = sorted(tag.name for tag in contact.tags.all())
    for key, value in (contact.custom or {}).items():
        state[CUSTOM_PREFIX + key] = value
    return state


def _company_value(org, raw, *, actor, policy) -> Company | None:
    """A Company of `org` from a Company, or from text: a domain or a name of an existing
    company, else a new company with that name (when the member may create companies)."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, Company):
        if raw.org_id != org.id:
            raise ValidationError("Choose a company of this organization.")
        return raw
    text = " ".join(str(raw).split())
    if not text:
        return None
    companies = Company.objects.for_org(org)
    domain = ""
    if " " not in text and "." in text:
        with contextlib.suppress(ValidationError):
            domain = normalize.normalize_domain(text)
    if domain:
        found = companies.filter(domain=domain).first()
        if found is not None:
            return found
    named = list(companies.filter(name__iexact=text).order_by("is_archived", "id")[:2])
    if len(named) > 1:
        raise ValidationError(
            f"Several companies are called “{text}”. Type the company's domain instead."
        )
    if named:
        return named[0]
    if policy is not None and not policy.can("companies", "create"):
        raise ValidationError(
            f"There is no company called “{text}”, and your role may not add companies."
        )
    return company_for(org, name="" if domain else text, domain=domain, actor=actor, policy=policy)


def _clean_contact_input(
    org, data: dict, *, contact: Contact | None, specs_by_key: dict, actor=None, policy=None
):
    """Checked model values, tags and custom values from `data` (catalog key → value).

    Returns (values, tags or None, custom JSON or None)."""
    errors: dict[str, list] = {}
    values: dict = {}
    tags = None
    custom_raw: dict = {}
    tz = _org_tz(org)

    unknown = [k for k in data if k not in specs_by_key or not specs_by_key[k].editable]
    for key in unknown:
        errors[key] = [f"“{key}” is not a field you can set."]

    country = data.get("country", contact.country if contact else "")
    region = normalize.phone_region(country=_text(country), org=org)

    for key, raw in data.items():
        if key in unknown:
            continue
        spec = specs_by_key[key]
        try:
            if spec.is_custom:
                custom_raw[spec.definition.key] = raw
                continue
            kind = spec.type
            if kind == "email":
                values[key] = normalize.normalize_email(raw)
            elif kind == "emails":
                values[key] = normalize.normalize_email_list(raw)
            elif kind == "phone":
                text = _text(raw)
                if contact is not None and _unchanged_as_typed(contact, key, text):
                    # A number an import kept as typed, sent back unchanged (a form saving
                    # other fields): it stays as it is, still unverified.
                    continue
                values[key] = normalize.normalize_phone(text, region=region)
                values[f"{key}_unverified"] = False
            elif kind == "choice":
                values[key] = _choice(spec, raw, Contact)
            elif kind == "bool":
                value = _bool_or_none(raw)
                # A flag (do_not_sell, legal_hold) has no "unknown": not set is no.
                if value is None and not getattr(Contact._meta.get_field(spec.path), "null", True):
                    value = False
                values[key] = value
            elif kind == "datetime":
                values[key] = _datetime_or_none(raw, tz)
            elif kind == "url":
                values[key] = validators.clean_url(raw)
            elif kind == "country":
                text = _text(raw).upper()
                if text and normalize.region_code(text) is None:
                    raise ValidationError(f"“{text}” is not a country code such as US or DE.")
                values[key] = text
            elif kind == "user":
                values[key] = raw or None
            elif kind == "company":
                values[key] = _company_value(org, raw, actor=actor, policy=policy)
            elif kind == "tags":
                tags = raw
            else:
                text = _text(raw)
                if key == "timezone":
                    text = validators.clean_timezone(text)
                if key == "twitter_handle":
                    text = validators.clean_twitter_handle(text)
                limit = field_max_length(Contact, key)
                if limit and len(text) > limit:
                    raise ValidationError(f"Use at most {limit} characters.")
                values[key] = text
        except ValidationError as exc:
            errors[key] = exc.messages

    if "other_emails" in values:
        primary = values.get("email", contact.email if contact else "")
        values["other_emails"] = [e for e in values["other_emails"] if e != primary]

    custom = None
    if custom_raw:
        definitions = {
            spec.definition.key: spec.definition for spec in specs_by_key.values() if spec.is_custom
        }
        try:
            custom = apply_custom_values(contact.custom if contact else {}, definitions, custom_raw)
        except ValidationError as exc:
            for key, messages in exc.message_dict.items():
                errors[CUSTOM_PREFIX + key] = messages

    if errors:
        raise ValidationError(errors)
    return values, tags, custom


def _unchanged_as_typed(contact: Contact, key: str, text: str) -> bool:
    """Whether `text` is the phone number `key` an import kept as typed on `contact`."""
    if not getattr(contact, f"{key}_unverified", False):
        return False
    stored = getattr(contact, key) or ""
    return bool(stored) and " ".join(text.split()) == " ".join(stored.split())


def _check_email_free(org, email: str, exclude_pk=None) -> None:
    if not email:
        return
    # Spelled like the partial unique index (org, lower(email)) WHERE active and non-empty,
    # so this is one index probe at any number of contacts (iexact would scan them all).
    taken = (
        Contact.objects.for_org(org)
        .filter(is_archived=False)
        .exclude(email="")
        .annotate(email_lower=Lower("email"))
        .filter(email_lower=email.lower())
    )
    if exclude_pk is not None:
        taken = taken.exclude(pk=exclude_pk)
    if taken.exists():
        raise ValidationError({"email": [EMAIL_TAKEN]})


ERASED_ON_REQUEST = (
    "This person was erased on request, so they cannot be added again with this {what}."
)


def _refuse_erased(org, values: dict) -> None:
    """A person erased on request is not created again from the same address or number."""
    if values.get("email") and is_tombstoned(org, email=values["email"]):
        raise ValidationError({"email": [ERASED_ON_REQUEST.format(what="email")]})
    for key in ("phone", "mobile"):
        if values.get(key) and is_tombstoned(org, phone=values[key]):
            raise ValidationError({key: [ERASED_ON_REQUEST.format(what="phone number")]})


def _save_contact(contact: Contact, **kwargs) -> None:
    """Save inside a savepoint so a lost race on the email constraint becomes a form error."""
    try:
        with transaction.atomic():
            contact.save(**kwargs)
    except IntegrityError as exc:
        if "contact_email_per_org_active" in str(exc):
            raise ValidationError({"email": [EMAIL_TAKEN]}) from None
        raise


def _resolve_tags(org, actor, raw) -> list[Tag]:
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = raw.split(",")
    out: list[Tag] = []
    for item in raw:
        if isinstance(item, Tag):
            if item.org_id != org.id:
                raise ValidationError({"tags": ["Choose tags of this organization."]})
            tag = item
        else:
            name = " ".join(str(item).split())
            if not name:
                continue
            try:
                tag = tag_get_or_create(org=org, actor=actor, name=name)
            except ValidationError as exc:
                raise ValidationError({"tags": exc.messages}) from None
        if tag.pk not in {t.pk for t in out}:
            out.append(tag)
    return out


def _owner_change_allowed(policy, actor_user, old_owner_id, new_owner) -> None:
    """Claiming an unowned contact and releasing your own are open to anyone who may edit;
    giving a contact to someone else, or taking it from them, is for admins."""
    if _is_contact_admin(policy):
        return
    new_id = new_owner.pk if new_owner else None
    me = actor_user.pk if actor_user else None
    if new_id == old_owner_id:
        return
    if new_id == me and old_owner_id is None:
        return
    if new_id is None and old_owner_id == me:
        return
    raise ValidationError(
        {"owner": ["Only admins can assign a contact to someone else or take it from its owner."]}
    )


# Contacts --------------------------------------------------------------------------------


def _consent_source(actor: Actor) -> str:
    """Where a consent change made through the contact services comes from, for the ledger."""
    return "API" if actor.type == "api_key" else "Contact record"


@transaction.atomic
def contact_create(
    *,
    org,
    actor: Actor,
    data: dict,
    policy=None,
    activity_type: str = Activity.Type.CREATED,
) -> Contact:
    """A new contact from `data` (catalog key → value). Without an owner in `data`, a
    member's new contact is theirs; system-made contacts (policy None) stay unclaimed."""
    _require(policy, "contacts", "create")
    specs_by_key = catalog_by_key(contact_field_catalog(org))
    _refuse_locked_fields(policy, specs_by_key, data.keys())
    values, tag_input, custom = _clean_contact_input(
        org, data, contact=None, specs_by_key=specs_by_key, actor=actor, policy=policy
    )
    identity = ("first_name", "last_name", "email", "phone", "mobile")
    if not any(values.get(key) for key in identity):
        raise ValidationError("A contact needs at least a name, an email or a phone number.")
    user = _user_of(actor)
    if "owner" not in values and policy is not None:
        values["owner"] = user
    owner = values.get("owner")
    if owner is not None:
        _owner_change_allowed(policy, user, None, owner)
        if not (policy is not None and user is not None and owner.pk == user.pk):
            try:
                _check_member(org, owner, "Choose an active member of this organization.")
            except ValidationError as exc:
                raise ValidationError({"owner": exc.messages}) from None
    _check_email_free(org, values.get("email", ""))
    _refuse_erased(org, values)

    # GDPR: "opted_in" set directly becomes "pending" until the person confirms by email.
    needs_opt_in = gate_opt_in(org, values)
    contact = Contact(org=org, custom=custom or {}, **values)
    with consent_context(ConsentVia.from_actor(actor, source=_consent_source(actor))):
        _save_contact(contact)
    if needs_opt_in:
        send_gated_opt_in(contact=contact, actor=actor, source=_consent_source(actor))
    tags = _resolve_tags(org, actor, tag_input)
    if tags:
        contact.tags.set(tags)

    audit(
        org=org,
        actor=actor,
        verb="contact.created",
        obj=contact,
        changes=diff({}, _contact_state(contact)),
    )
    emit_event(
        org=org,
        event_type="contact.created",
        payload={"contact": contact.public_id, "email": contact.email},
    )
    # The entry carries the record's own created_at: one date for "added" everywhere.
    _log(
        org,
        actor,
        activity_type,
        contact=contact,
        subject="Contact added",
        occurred_at=contact.created_at,
    )
    _rescore(contact)
    return contact


@transaction.atomic
def contact_update(*, contact: Contact, actor: Actor, data: dict, policy=None) -> Contact:
    """Change the fields in `data` (catalog key → value) and nothing else."""
    org = contact.org
    contact = Contact.objects.for_org(contact.org_id).select_for_update().get(pk=contact.pk)
    _require(policy, "contacts", "edit", contact.owner_id, check_scope=True)
    specs_by_key = catalog_by_key(contact_field_catalog(org))
    _refuse_locked_fields(policy, specs_by_key, data.keys())
    values, tag_input, custom = _clean_contact_input(
        org, data, contact=contact, specs_by_key=specs_by_key, actor=actor, policy=policy
    )
    before = _contact_state(contact)
    old_owner_id, old_stage = contact.owner_id, contact.lifecycle_stage

    if "owner" in values:
        new_owner = values["owner"]
        _owner_change_allowed(policy, _user_of(actor), old_owner_id, new_owner)
        if new_owner is not None and new_owner.pk != old_owner_id:
            try:
                _check_member(org, new_owner, "Choose an active member of this organization.")
            except ValidationError as exc:
                raise ValidationError({"owner": exc.messages}) from None
    if "email" in values and not contact.is_archived:
        _check_email_free(org, values["email"], exclude_pk=contact.pk)

    needs_opt_in = gate_opt_in(org, values, contact=contact)
    for key, value in values.items():
        setattr(contact, key, value)
    if custom is not None:
        contact.custom = custom
    with consent_context(ConsentVia.from_actor(actor, source=_consent_source(actor))):
        _save_contact(contact)
    if needs_opt_in:
        send_gated_opt_in(contact=contact, actor=actor, source=_consent_source(actor))
    if tag_input is not None:
        contact.tags.set(_resolve_tags(org, actor, tag_input))

    after = _contact_state(contact)
    changes = diff(before, after)
    if not changes:
        return contact
    audit(org=org, actor=actor, verb="contact.updated", obj=contact, changes=changes)
    emit_event(
        org=org,
        event_type="contact.updated",
        payload={"contact": contact.public_id, "fields": sorted(changes)},
    )
    record_field_changes(
        org=org, actor=actor, contact=contact, changes=changes, specs_by_key=specs_by_key
    )
    if contact.lifecycle_stage != old_stage:
        _log_stage_change(org, actor, contact, old_stage)
    if contact.owner_id != old_owner_id:
        _log_owner_change(org, actor, contact, before.get("owner"))
    _rescore(contact)
    return contact


def _log_stage_change(org, actor, contact: Contact, old_stage: str) -> None:
    labels = dict(Contact.Stage.choices)
    old_label, new_label = labels.get(old_stage, old_stage), contact.get_lifecycle_stage_display()
    _log(
        org,
        actor,
        Activity.Type.STAGE_CHANGE,
        contact=contact,
        subject=f"Stage changed from {old_label} to {new_label}",
        data={"from": old_stage, "to": contact.lifecycle_stage},
    )
    emit_event(
        org=org,
        event_type="contact.stage_changed",
        payload={"contact": contact.public_id, "from": old_stage, "to": contact.lifecycle_stage},
    )


def _log_owner_change(org, actor, contact: Contact, old_owner_label) -> None:
    new_label = str(contact.owner) if contact.owner_id else None
    if new_label and old_owner_label:
        subject = f"Owner changed from {old_owner_label} to {new_label}"
    elif new_label:
        subject = f"Claimed by {new_label}"
    else:
        subject = f"Released by {old_owner_label}" if old_owner_label else "Owner removed"
    _log(
        org,
        actor,
        Activity.Type.OWNER_CHANGED,
        contact=contact,
        subject=subject,
        data={"from": old_owner_label, "to": new_label},
    )
    emit_event(
        org=org,
        event_type="contact.owner_changed",
        payload={
            "contact": contact.public_id,
            "owner": contact.owner.public_id if contact.owner else None,
            # Who made the change: consumers tell an owner about contacts someone else gave.
            "actor": actor.user.public_id if actor.user else None,
        },
    )


def _set_owner(*, contact: Contact, actor: Actor, owner, verb: str) -> Contact:
    org = contact.org
    before_label = str(contact.owner) if contact.owner_id else None
    before = snapshot(contact, ["owner"])
    contact.owner = owner
    contact.save(update_fields=["owner", "updated_at"])
    audit(
        org=org,
        actor=actor,
        verb=verb,
        obj=contact,
        changes=diff(before, snapshot(contact, ["owner"])),
    )
    _log_owner_change(org, actor, contact, before_label)
    _rescore(contact)
    return contact


@transaction.atomic
def contact_claim(*, contact: Contact, actor: Actor, policy=None) -> Contact:
    """Make the acting member the owner of an unowned contact (or keep it if it is theirs)."""
    contact = (
        Contact.objects.for_org(contact.org_id)
        .select_related("owner")
        .select_for_update(of=("self",))
        .get(pk=contact.pk)
    )
    _require(policy, "contacts", "edit")
    _refuse_locked_fields(policy, {}, ["owner"])
    user = _user_of(actor)
    if user is None:
        raise ValidationError("Only a person can claim a contact.")
    if contact.owner_id == user.pk:
        return contact
    if contact.owner_id is not None:
        raise ValidationError(f"{contact.owner} already owns this contact.")
    return _set_owner(contact=contact, actor=actor, owner=user, verb="contact.claimed")


@transaction.atomic
def contact_release(*, contact: Contact, actor: Actor, policy=None) -> Contact:
    """Leave a contact unowned: your own, or (admins) anyone's."""
    contact = (
        Contact.objects.for_org(contact.org_id)
        .select_related("owner")
        .select_for_update(of=("self",))
        .get(pk=contact.pk)
    )
    _require(policy, "contacts", "edit")
    _refuse_locked_fields(policy, {}, ["owner"])
    if contact.owner_id is None:
        raise ValidationError("No one owns this contact.")
    user = _user_of(actor)
    mine = user is not None and contact.owner_id == user.pk
    if not mine and not _is_contact_admin(policy):
        raise PermissionDenied("Only the owner or an admin can release this contact.")
    return _set_owner(contact=contact, actor=actor, owner=None, verb="contact.released")


@transaction.atomic
def contact_assign_owner(*, contact: Contact, actor: Actor, owner, policy=None) -> Contact:
    """Give a contact to another member (admins only)."""
    contact = (
        Contact.objects.for_org(contact.org_id)
        .select_related("owner")
        .select_for_update(of=("self",))
        .get(pk=contact.pk)
    )
    if not _is_contact_admin(policy):
        raise PermissionDenied("Only admins can reassign contacts.")
    if owner is not None:
        _check_member(contact.org, owner, "Choose an active member of this organization.")
    if (owner.pk if owner else None) == contact.owner_id:
        return contact
    return _set_owner(contact=contact, actor=actor, owner=owner, verb="contact.reassigned")


@transaction.atomic
def contact_archive(*, contact: Contact, actor: Actor, policy=None) -> Contact:
    """Archive (never delete): the contact leaves lists and frees its email for reuse."""
    contact = Contact.objects.for_org(contact.org_id).select_for_update().get(pk=contact.pk)
    _require(policy, "contacts", "edit", contact.owner_id, check_scope=True)
    if contact.is_archived:
        return contact
    before = snapshot(contact, ["is_archived"])
    contact.is_archived = True
    contact.archived_at = timezone.now()
    contact.save(update_fields=["is_archived", "archived_at", "updated_at"])
    audit(
        org=contact.org,
        actor=actor,
        verb="contact.archived",
        obj=contact,
        changes=diff(before, snapshot(contact, ["is_archived"])),
    )
    emit_event(
        org=contact.org, event_type="contact.archived", payload={"contact": contact.public_id}
    )
    _log(contact.org, actor, Activity.Type.ARCHIVED, contact=contact, subject="Archived")
    return contact


@transaction.atomic
def contact_restore(*, contact: Contact, actor: Actor, policy=None) -> Contact:
    """Bring an archived contact back, unless an active contact has taken its email."""
    contact = Contact.objects.for_org(contact.org_id).select_for_update().get(pk=contact.pk)
    _require(policy, "contacts", "edit", contact.owner_id, check_scope=True)
    if not contact.is_archived:
        return contact
    try:
        _check_email_free(contact.org, contact.email, exclude_pk=contact.pk)
    except ValidationError:
        raise ValidationError(
            f"Another active contact now uses {contact.email}. Change one of the two emails "
            "(or merge the contacts) before restoring this one."
        ) from None
    before = snapshot(contact, ["is_archived"])
    contact.is_archived = False
    contact.archived_at = None
    _save_contact(contact, update_fields=["is_archived", "archived_at", "updated_at"])
    audit(
        org=contact.org,
        actor=actor,
        verb="contact.restored",
        obj=contact,
        changes=diff(before, snapshot(contact, ["is_archived"])),
    )
    emit_event(
        org=contact.org, event_type="contact.restored", payload={"contact": contact.public_id}
    )
    _log(contact.org, actor, Activity.Type.RESTORED, contact=contact, subject="Restored")
    return contact


# Tags ------------------------------------------------------------------------------------


def tag_get_or_create(*, org, actor: Actor | None = None, name: str) -> Tag:
    """The org's tag called `name` (ignoring case), created when missing."""
    name = " ".join((name or "").split())
    if not name:
        raise ValidationError("A tag needs a name.")
    if len(name) > MAX_TAG_LENGTH:
        raise ValidationError(f"“{name[:20]}…” is too long for a tag ({MAX_TAG_LENGTH} max).")
    existing = Tag.objects.for_org(org).filter(name__iexact=name).first()
    if existing is not None:
        return existing
    with transaction.atomic():
        try:
            with transaction.atomic():
                tag = Tag.objects.for_org(org).create(org=org, name=name)
        except IntegrityError:
            # Someone created it between our look-up and insert.
            return Tag.objects.for_org(org).get(name__iexact=name)
        audit(
            org=org,
            actor=actor or Actor.system("tags"),
            verb="tag.created",
            obj=tag,
            changes={"name": [None, name]},
        )
        emit_event(org=org, event_type="tag.created", payload={"tag": tag.public_id, "name": name})
    return tag
