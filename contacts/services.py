"""Every write to contacts, companies, tags, notes, tasks, the timeline and custom fields.

Each public function runs in one transaction, records an AuditEvent with the before/after of
what changed and emits a domain event, so the record, its history and its outbox row commit or
vanish together. Views, import, bulk actions, the API and the AI all write through here.

`policy` (a crm.permissions.Policy) is the acting member's; pass None only for system work
(imports already checked, demo data, migrations of data), which then may write any field.
Bad input raises django's ValidationError keyed by catalog field key ("email",
"custom.budget"), so a form can show each message next to its field; a forbidden action
raises PermissionDenied.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import zoneinfo

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import URLValidator
from django.db import IntegrityError, transaction
from django.db.models import F
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from crm.models import Membership
from crm.services import Actor, audit, diff, emit_event, snapshot

from . import normalize
from .custom_fields import apply_custom_values, clean_definition
from .fields import (
    CONTACT_FIELDS,
    CUSTOM_PREFIX,
    catalog_by_key,
    company_field_catalog,
    contact_field_catalog,
)
from .models import Activity, Company, Contact, CustomFieldDefinition, Note, Tag, Task
from .scoring import rescore_contact

# Timeline types that record a conversation with the person: they move last_contacted_at.
CONTACTED_TYPES = frozenset(
    {
        Activity.Type.CALL,
        Activity.Type.MEETING,
        Activity.Type.EMAIL_SENT,
        Activity.Type.EMAIL_RECEIVED,
        Activity.Type.SMS,
    }
)
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
# What a rep can log by hand (quick-log on the contact page and in the inbox).
QUICK_LOG_TYPES = (Activity.Type.NOTE, Activity.Type.CALL, Activity.Type.MEETING)

MAX_TAG_LENGTH = Tag._meta.get_field("name").max_length
EMAIL_TAKEN = "Another active contact already has this email."


class FieldNotEditable(PermissionDenied):
    """The input holds fields the member may see but not change, or may not see at all."""

    def __init__(self, keys, labels):
        self.keys = list(keys)
        names = ", ".join(labels)
        super().__init__(f"Your role may not change these fields: {names}.")


# Permission helpers ----------------------------------------------------------------------


def is_contact_admin(policy) -> bool:
    """Admins in the contacts sense: may edit every contact (scope "all"). They alone
    reassign contacts to other people and release contacts someone else owns."""
    return policy is None or (policy.can("contacts", "edit") and policy.scope("contacts") == "all")


def _require(policy, module: str, action: str, owner_id=None, *, check_scope=False) -> None:
    if policy is None:
        return
    policy.require(module, action)
    if check_scope and not policy.owns_in_scope(module, owner_id):
        raise PermissionDenied(f"This record is outside the {module} you may {action}.")


def _user_of(actor: Actor):
    user = getattr(actor, "user", None)
    return user if user is not None and getattr(user, "pk", None) else None


def _check_member(org, user, message: str) -> None:
    if not Membership.objects.active().filter(org=org, user=user).exists():
        raise ValidationError(message)


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


# Input cleaning --------------------------------------------------------------------------


def _text(value) -> str:
    return "" if value is None else str(value).strip()


def _bool_or_none(value):
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"", "unknown", "none", "null"}:
        return None
    if text in {"true", "yes", "y", "1", "on"}:
        return True
    if text in {"false", "no", "n", "0", "off"}:
        return False
    raise ValidationError("Choose yes, no or unknown.")


def _datetime_or_none(value, tz):
    if value in (None, ""):
        return None
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime.combine(value, dt.time.min)
    else:
        moment = parse_datetime(str(value).strip())
        if moment is None:
            raise ValidationError(f"“{value}” is not a date and time.")
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, tz)
    return moment


def _url(value) -> str:
    text = _text(value)
    if not text:
        return ""
    if "://" not in text:
        text = f"https://{text}"
    try:
        URLValidator(schemes=["http", "https"])(text)
    except ValidationError:
        raise ValidationError(f"“{_text(value)}” is not a web address.") from None
    return text


def _choice(spec, value, model) -> str:
    text = _text(value)
    allowed = {key for key, _ in spec.choices}
    if text in allowed:
        return text
    for key, label in spec.choices:  # people and CSV files use labels too
        if text.casefold() == str(label).casefold():
            return key
    if text == "" and model._meta.get_field(spec.key).blank:
        return ""
    names = ", ".join(str(label) for _, label in spec.choices)
    raise ValidationError(f"“{text}” is not a valid {spec.label.lower()} (choose {names}).")


def _org_tz(org):
    try:
        return zoneinfo.ZoneInfo(org.timezone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return dt.UTC


def _refuse_locked_fields(policy, specs_by_key, keys, module="contacts") -> None:
    """A field the member may only see (or not see) is refused loudly, never dropped."""
    if policy is None:
        return
    locked = [key for key in keys if policy.field_level(key, module) != "editable"]
    if locked:
        raise FieldNotEditable(
            locked, [specs_by_key[k].label if k in specs_by_key else k for k in locked]
        )


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
    return company_for(org, name="" if domain else text, domain=domain, actor=actor)


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
                values[key] = normalize.normalize_phone(_text(raw), region=region)
            elif kind == "choice":
                values[key] = _choice(spec, raw, Contact)
            elif kind == "bool":
                values[key] = _bool_or_none(raw)
            elif kind == "datetime":
                values[key] = _datetime_or_none(raw, tz)
            elif kind == "url":
                values[key] = _url(raw)
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
                if key == "timezone" and text:
                    try:
                        zoneinfo.ZoneInfo(text)
                    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                        raise ValidationError(
                            f"“{text}” is not a time zone such as Europe/Berlin."
                        ) from None
                if key == "twitter_handle":
                    text = text.lstrip("@")
                limit = Contact._meta.get_field(key).max_length
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


def _check_email_free(org, email: str, exclude_pk=None) -> None:
    if not email:
        return
    taken = Contact.objects.for_org(org).filter(is_archived=False, email__iexact=email)
    if exclude_pk is not None:
        taken = taken.exclude(pk=exclude_pk)
    if taken.exists():
        raise ValidationError({"email": [EMAIL_TAKEN]})


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
    if policy is None or is_contact_admin(policy):
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


def _log(org, actor, type_, *, contact=None, company=None, subject="", body="", data=None):
    return activity_log(
        org=org,
        actor=actor,
        type=type_,
        contact=contact,
        company=company,
        subject=subject,
        body=body,
        data=data,
        record=False,
    )


# Contacts --------------------------------------------------------------------------------


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

    contact = Contact(org=org, custom=custom or {}, **values)
    _save_contact(contact)
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
    _log(org, actor, activity_type, contact=contact, subject="Contact added")
    _rescore(contact)
    return contact


@transaction.atomic
def contact_update(*, contact: Contact, actor: Actor, data: dict, policy=None) -> Contact:
    """Change the fields in `data` (catalog key → value) and nothing else."""
    org = contact.org
    contact = Contact.objects.select_for_update().get(pk=contact.pk)
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

    for key, value in values.items():
        setattr(contact, key, value)
    if custom is not None:
        contact.custom = custom
    _save_contact(contact)
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
            "owner": contact.owner.public_id if contact.owner_id else None,
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
        Contact.objects.select_related("owner").select_for_update(of=("self",)).get(pk=contact.pk)
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
        Contact.objects.select_related("owner").select_for_update(of=("self",)).get(pk=contact.pk)
    )
    _require(policy, "contacts", "edit")
    _refuse_locked_fields(policy, {}, ["owner"])
    if contact.owner_id is None:
        raise ValidationError("Nobody owns this contact.")
    user = _user_of(actor)
    mine = user is not None and contact.owner_id == user.pk
    if not mine and not is_contact_admin(policy):
        raise PermissionDenied("Only the owner or an admin can release this contact.")
    return _set_owner(contact=contact, actor=actor, owner=None, verb="contact.released")


@transaction.atomic
def contact_assign_owner(*, contact: Contact, actor: Actor, owner, policy=None) -> Contact:
    """Give a contact to another member (admins only)."""
    contact = (
        Contact.objects.select_related("owner").select_for_update(of=("self",)).get(pk=contact.pk)
    )
    if not is_contact_admin(policy):
        raise PermissionDenied("Only admins can reassign contacts.")
    if owner is not None:
        _check_member(contact.org, owner, "Choose an active member of this organization.")
    if (owner.pk if owner else None) == contact.owner_id:
        return contact
    return _set_owner(contact=contact, actor=actor, owner=owner, verb="contact.reassigned")


@transaction.atomic
def contact_archive(*, contact: Contact, actor: Actor, policy=None) -> Contact:
    """Archive (never delete): the contact leaves lists and frees its email for reuse."""
    contact = Contact.objects.select_for_update().get(pk=contact.pk)
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
    contact = Contact.objects.select_for_update().get(pk=contact.pk)
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
                tag = Tag.objects.create(org=org, name=name)
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


# Companies -------------------------------------------------------------------------------

_COMPANY_SCALARS = ["name", "domain", "website", "industry", "size", "description", "owner"]


def _company_state(company: Company) -> dict:
    state = snapshot(company, [*_COMPANY_SCALARS, "is_archived"])
    for key, value in (company.custom or {}).items():
        state[CUSTOM_PREFIX + key] = value
    return state


def _clean_company_input(org, data: dict, *, company: Company | None) -> tuple[dict, dict | None]:
    specs_by_key = catalog_by_key(company_field_catalog(org))
    errors: dict[str, list] = {}
    values: dict = {}
    custom_raw: dict = {}
    for key, raw in data.items():
        spec = specs_by_key.get(key)
        if spec is None or not spec.editable:
            errors[key] = [f"“{key}” is not a field you can set."]
            continue
        try:
            if spec.is_custom:
                custom_raw[spec.definition.key] = raw
            elif key == "domain":
                values[key] = normalize.normalize_domain(_text(raw))
            elif key == "website":
                values[key] = _url(raw)
            elif key == "size":
                values[key] = _choice(spec, raw, Company)
            elif key == "owner":
                if raw is not None and raw.pk != (company.owner_id if company else None):
                    _check_member(org, raw, "Choose an active member of this organization.")
                values[key] = raw or None
            else:
                text = _text(raw)
                if key == "name" and not text:
                    raise ValidationError("A company needs a name.")
                limit = Company._meta.get_field(key).max_length
                if limit and len(text) > limit:
                    raise ValidationError(f"Use at most {limit} characters.")
                values[key] = text
        except ValidationError as exc:
            errors[key] = exc.messages
    # A website without a domain gives the company its domain, so matching by email works.
    if not values.get("domain") and values.get("website") and "domain" not in errors:
        current = company.domain if company else ""
        if not current and "domain" not in data:
            with contextlib.suppress(ValidationError):
                values["domain"] = normalize.normalize_domain(values["website"])
    custom = None
    if custom_raw:
        definitions = {
            spec.definition.key: spec.definition for spec in specs_by_key.values() if spec.is_custom
        }
        try:
            custom = apply_custom_values(company.custom if company else {}, definitions, custom_raw)
        except ValidationError as exc:
            for key, messages in exc.message_dict.items():
                errors[CUSTOM_PREFIX + key] = messages
    if errors:
        raise ValidationError(errors)
    return values, custom


def _domain_taken_error(org, domain: str, exclude_pk=None) -> ValidationError | None:
    if not domain:
        return None
    other = Company.objects.for_org(org).filter(domain=domain)
    if exclude_pk is not None:
        other = other.exclude(pk=exclude_pk)
    other = other.only("name", "is_archived").first()
    if other is None:
        return None
    state = " (archived)" if other.is_archived else ""
    return ValidationError({"domain": [f"{other.name}{state} already uses {domain}."]})


def _save_company(company: Company, **kwargs) -> None:
    try:
        with transaction.atomic():
            company.save(**kwargs)
    except IntegrityError as exc:
        if "company_domain_per_org" in str(exc):
            raise ValidationError(
                {"domain": [f"Another company already uses {company.domain}."]}
            ) from None
        raise


@transaction.atomic
def company_create(*, org, actor: Actor, data: dict, policy=None) -> Company:
    _require(policy, "companies", "create")
    values, custom = _clean_company_input(org, data, company=None)
    if not values.get("name"):
        raise ValidationError({"name": ["A company needs a name."]})
    taken = _domain_taken_error(org, values.get("domain", ""))
    if taken:
        raise taken
    if "owner" not in values and policy is not None:
        values["owner"] = _user_of(actor)
    company = Company(org=org, custom=custom or {}, **values)
    _save_company(company)
    audit(
        org=org,
        actor=actor,
        verb="company.created",
        obj=company,
        changes=diff({}, _company_state(company)),
    )
    emit_event(
        org=org,
        event_type="company.created",
        payload={"company": company.public_id, "domain": company.domain},
    )
    _log(org, actor, Activity.Type.CREATED, company=company, subject="Company added")
    return company


@transaction.atomic
def company_update(*, company: Company, actor: Actor, data: dict, policy=None) -> Company:
    company = Company.objects.select_for_update().get(pk=company.pk)
    _require(policy, "companies", "edit", company.owner_id, check_scope=True)
    values, custom = _clean_company_input(company.org, data, company=company)
    if "name" in data and not values.get("name"):
        raise ValidationError({"name": ["A company needs a name."]})
    taken = _domain_taken_error(company.org, values.get("domain", ""), exclude_pk=company.pk)
    if taken:
        raise taken
    before = _company_state(company)
    for key, value in values.items():
        setattr(company, key, value)
    if custom is not None:
        company.custom = custom
    _save_company(company)
    changes = diff(before, _company_state(company))
    if changes:
        audit(org=company.org, actor=actor, verb="company.updated", obj=company, changes=changes)
        emit_event(
            org=company.org,
            event_type="company.updated",
            payload={"company": company.public_id, "fields": sorted(changes)},
        )
    return company


def _set_company_archived(company: Company, actor: Actor, policy, archived: bool) -> Company:
    company = Company.objects.select_for_update().get(pk=company.pk)
    _require(policy, "companies", "edit", company.owner_id, check_scope=True)
    if company.is_archived == archived:
        return company
    before = snapshot(company, ["is_archived"])
    company.is_archived = archived
    company.archived_at = timezone.now() if archived else None
    company.save(update_fields=["is_archived", "archived_at", "updated_at"])
    verb = "company.archived" if archived else "company.restored"
    audit(
        org=company.org,
        actor=actor,
        verb=verb,
        obj=company,
        changes=diff(before, snapshot(company, ["is_archived"])),
    )
    emit_event(org=company.org, event_type=verb, payload={"company": company.public_id})
    _log(
        company.org,
        actor,
        Activity.Type.ARCHIVED if archived else Activity.Type.RESTORED,
        company=company,
        subject="Archived" if archived else "Restored",
    )
    return company


@transaction.atomic
def company_archive(*, company: Company, actor: Actor, policy=None) -> Company:
    """Archive a company; its contacts keep their link to it."""
    return _set_company_archived(company, actor, policy, True)


@transaction.atomic
def company_restore(*, company: Company, actor: Actor, policy=None) -> Company:
    return _set_company_archived(company, actor, policy, False)


def company_for(org, *, name: str = "", domain: str = "", actor: Actor | None = None):
    """The org's company for a domain (or, without one, a name), created when missing.

    Import and the contact form use this so "Acme", "acme.com" and "https://www.acme.com"
    land on one company. Returns None when both are empty; an invalid domain raises
    ValidationError keyed "domain"."""
    name = " ".join((name or "").split())
    try:
        domain = normalize.normalize_domain(domain)
    except ValidationError as exc:
        raise ValidationError({"domain": exc.messages}) from None
    if not name and not domain:
        return None
    companies = Company.objects.for_org(org)
    if domain:
        found = companies.filter(domain=domain).first()
    else:
        found = companies.filter(name__iexact=name).order_by("is_archived", "id").first()
    if found is not None:
        return found
    actor = actor or Actor.system("company matching")
    try:
        with transaction.atomic():
            return company_create(
                org=org,
                actor=actor,
                data={"name": name or domain, "domain": domain},
            )
    except ValidationError:
        # Lost a race on the domain: the other writer's company is the one.
        found = companies.filter(domain=domain).first() if domain else None
        if found is None:
            raise
        return found


# Timeline --------------------------------------------------------------------------------


def _latest(field: str, moment):
    return Greatest(Coalesce(F(field), moment), moment)


def activity_log(
    *,
    org,
    actor: Actor,
    type: str,
    contact: Contact | None = None,
    company: Company | None = None,
    subject: str = "",
    body: str = "",
    occurred_at: dt.datetime | None = None,
    data: dict | None = None,
    record: bool = True,
) -> Activity:
    """Add an entry to a contact's (and/or company's) timeline and keep the contact's
    last activity / last contacted dates current.

    Other services call this with record=False because they audit the change itself;
    a logged call, meeting or note (record=True) gets its own audit entry and event."""
    if contact is None and company is None:
        raise ValidationError("An activity belongs to a contact or a company.")
    if type not in Activity.Type.values:
        raise ValidationError(f"“{type}” is not a timeline entry type.")
    for obj in (contact, company):
        if obj is not None and obj.org_id != org.id:
            raise ValidationError("The activity and its record must be in one organization.")
    occurred_at = occurred_at or timezone.now()
    with transaction.atomic():
        activity = Activity.objects.create(
            org=org,
            type=type,
            contact=contact,
            company=company,
            actor=_user_of(actor),
            subject=(subject or "")[: Activity._meta.get_field("subject").max_length],
            body=body or "",
            data=data or {},
            occurred_at=occurred_at,
        )
        if contact is not None and type not in BOOKKEEPING_TYPES:
            # GREATEST in SQL: an older entry logged late never moves the dates back.
            updates = {"last_activity_at": _latest("last_activity_at", occurred_at)}
            if type in CONTACTED_TYPES:
                updates["last_contacted_at"] = _latest("last_contacted_at", occurred_at)
            Contact.objects.filter(pk=contact.pk).update(**updates)
            contact.refresh_from_db(fields=list(updates))
        if record:
            target = contact or company
            audit(
                org=org,
                actor=actor,
                verb="activity.logged",
                obj=target,
                changes={"type": [None, type], "subject": [None, activity.subject]},
            )
            emit_event(
                org=org,
                event_type="activity.logged",
                payload={
                    "activity": activity.public_id,
                    "type": type,
                    "contact": contact.public_id if contact else None,
                    "company": company.public_id if company else None,
                },
            )
    return activity


def _require_record_access(policy, contact, company, action="view") -> None:
    """The member must be able to see the contact/company a note, task or entry hangs on."""
    if policy is None:
        return
    if contact is not None:
        _require(policy, "contacts", action, contact.owner_id, check_scope=True)
    if company is not None:
        _require(policy, "companies", action, company.owner_id, check_scope=True)


@transaction.atomic
def quick_log(
    *,
    org,
    actor: Actor,
    type: str,
    contact: Contact,
    subject: str = "",
    body: str = "",
    occurred_at=None,
    policy=None,
):
    """A call, meeting or note logged by hand. A note also lands in the Notes tab."""
    if type not in QUICK_LOG_TYPES:
        raise ValidationError({"type": ["Log a note, a call or a meeting."]})
    _require_record_access(policy, contact, None)
    if type == Activity.Type.NOTE:
        text = "\n\n".join(part for part in (subject.strip(), body.strip()) if part)
        return note_create(org=org, actor=actor, contact=contact, body=text, policy=policy)
    if not (subject or body).strip():
        raise ValidationError({"body": ["Say what happened in a few words."]})
    if occurred_at and occurred_at > timezone.now() + dt.timedelta(minutes=5):
        raise ValidationError(
            {"occurred_at": ["A call or meeting you log cannot be in the future."]}
        )
    label = dict(Activity.Type.choices)[type]
    return activity_log(
        org=org,
        actor=actor,
        type=type,
        contact=contact,
        subject=(subject or label).strip(),
        body=body.strip(),
        occurred_at=occurred_at,
    )


# Notes -----------------------------------------------------------------------------------


def _note_activity(note: Note):
    return Activity.objects.filter(
        org_id=note.org_id, type=Activity.Type.NOTE, data__note=str(note.public_id)
    )


def _may_change_note(policy, actor, note: Note) -> None:
    if policy is None:
        return
    user = _user_of(actor)
    if user is not None and note.author_id == user.pk:
        return
    if is_contact_admin(policy):
        return
    raise PermissionDenied("Only the note's author or an admin can change it.")


def _note_subject(body: str) -> str:
    first = body.strip().splitlines()[0] if body.strip() else ""
    return first[:120]


@transaction.atomic
def note_create(*, org, actor: Actor, body: str, contact=None, company=None, policy=None) -> Note:
    body = (body or "").strip()
    if not body:
        raise ValidationError({"body": ["A note needs some text."]})
    if contact is None and company is None:
        raise ValidationError("A note belongs to a contact or a company.")
    _require_record_access(policy, contact, company)
    note = Note.objects.create(
        org=org, contact=contact, company=company, author=_user_of(actor), body=body
    )
    audit(org=org, actor=actor, verb="note.created", obj=note, changes={"body": [None, body]})
    emit_event(
        org=org,
        event_type="note.created",
        payload={
            "note": note.public_id,
            "contact": contact.public_id if contact else None,
            "company": company.public_id if company else None,
        },
    )
    _log(
        org,
        actor,
        Activity.Type.NOTE,
        contact=contact,
        company=company,
        subject=_note_subject(body),
        body=body,
        data={"note": str(note.public_id)},
    )
    return note


@transaction.atomic
def note_update(*, note: Note, actor: Actor, body: str, policy=None) -> Note:
    note = Note.objects.select_for_update().get(pk=note.pk)
    _may_change_note(policy, actor, note)
    body = (body or "").strip()
    if not body:
        raise ValidationError({"body": ["A note needs some text."]})
    before = snapshot(note, ["body"])
    note.body = body
    note.save(update_fields=["body", "updated_at"])
    changes = diff(before, snapshot(note, ["body"]))
    if changes:
        _note_activity(note).update(subject=_note_subject(body), body=body)
        audit(org=note.org, actor=actor, verb="note.updated", obj=note, changes=changes)
        emit_event(org=note.org, event_type="note.updated", payload={"note": note.public_id})
    return note


@transaction.atomic
def note_delete(*, note: Note, actor: Actor, policy=None) -> None:
    note = Note.objects.select_for_update().get(pk=note.pk)
    _may_change_note(policy, actor, note)
    audit(
        org=note.org,
        actor=actor,
        verb="note.deleted",
        obj=note,
        changes={"body": [note.body, None]},
    )
    emit_event(org=note.org, event_type="note.deleted", payload={"note": note.public_id})
    _note_activity(note).delete()
    note.delete()


# Tasks -----------------------------------------------------------------------------------

_TASK_FIELDS = ["title", "description", "due_at", "priority", "status", "assignee"]


def _clean_task_input(org, data: dict, *, task: Task | None) -> dict:
    errors: dict[str, list] = {}
    values: dict = {}
    for key, raw in data.items():
        try:
            if key == "title":
                text = _text(raw)
                if not text:
                    raise ValidationError("A task needs a title.")
                if len(text) > Task._meta.get_field("title").max_length:
                    raise ValidationError("Keep the title under 300 characters.")
                values[key] = text
            elif key == "description":
                values[key] = _text(raw)
            elif key == "due_at":
                values[key] = _datetime_or_none(raw, _org_tz(org))
            elif key == "priority":
                if raw not in Task.Priority.values:
                    raise ValidationError("Choose a priority.")
                values[key] = raw
            elif key == "assignee":
                if raw is not None and raw.pk != (task.assignee_id if task else None):
                    _check_member(org, raw, "Assign the task to an active member.")
                values[key] = raw
            elif key in ("contact", "company"):
                if raw is not None and raw.org_id != org.id:
                    raise ValidationError(f"Choose a {key} of this organization.")
                values[key] = raw
            else:
                raise ValidationError(f"“{key}” is not a task field you can set.")
        except ValidationError as exc:
            errors[key] = exc.messages
    if errors:
        raise ValidationError(errors)
    return values


def _require_task(policy, task: Task, action: str) -> None:
    if policy is None:
        return
    _require(policy, "tasks", action, task.assignee_id, check_scope=True)


@transaction.atomic
def task_create(*, org, actor: Actor, data: dict, policy=None) -> Task:
    """A task, assigned to its creator unless `data` names an assignee."""
    _require(policy, "tasks", "create")
    values = _clean_task_input(org, data, task=None)
    if not values.get("title"):
        raise ValidationError({"title": ["A task needs a title."]})
    if "assignee" not in values:
        values["assignee"] = _user_of(actor)
    _require_record_access(policy, values.get("contact"), values.get("company"))
    task = Task.objects.create(org=org, created_by=_user_of(actor), **values)
    audit(
        org=org,
        actor=actor,
        verb="task.created",
        obj=task,
        changes=diff({}, snapshot(task, _TASK_FIELDS)),
    )
    emit_event(
        org=org,
        event_type="task.created",
        payload={
            "task": task.public_id,
            "contact": task.contact.public_id if task.contact_id else None,
        },
    )
    return task


@transaction.atomic
def task_update(*, task: Task, actor: Actor, data: dict, policy=None) -> Task:
    task = Task.objects.select_for_update().get(pk=task.pk)
    _require_task(policy, task, "edit")
    values = _clean_task_input(task.org, data, task=task)
    if "title" in data and not values.get("title"):
        raise ValidationError({"title": ["A task needs a title."]})
    before = snapshot(task, _TASK_FIELDS)
    for key, value in values.items():
        setattr(task, key, value)
    task.save()
    changes = diff(before, snapshot(task, _TASK_FIELDS))
    if changes:
        audit(org=task.org, actor=actor, verb="task.updated", obj=task, changes=changes)
        emit_event(
            org=task.org,
            event_type="task.updated",
            payload={"task": task.public_id, "fields": sorted(changes)},
        )
    return task


@transaction.atomic
def task_complete(*, task: Task, actor: Actor, policy=None) -> Task:
    task = (
        Task.objects.select_related("contact", "company")
        .select_for_update(of=("self",))
        .get(pk=task.pk)
    )
    _require_task(policy, task, "edit")
    if task.status == Task.Status.DONE:
        return task
    before = snapshot(task, ["status"])
    task.status = Task.Status.DONE
    task.completed_at = timezone.now()
    task.save(update_fields=["status", "completed_at", "updated_at"])
    audit(
        org=task.org,
        actor=actor,
        verb="task.completed",
        obj=task,
        changes=diff(before, snapshot(task, ["status"])),
    )
    emit_event(org=task.org, event_type="task.completed", payload={"task": task.public_id})
    if task.contact_id or task.company_id:
        _log(
            task.org,
            actor,
            Activity.Type.TASK_COMPLETED,
            contact=task.contact,
            company=task.company if not task.contact_id else None,
            subject=task.title,
            data={"task": str(task.public_id)},
        )
    return task


@transaction.atomic
def task_reopen(*, task: Task, actor: Actor, policy=None) -> Task:
    task = Task.objects.select_for_update().get(pk=task.pk)
    _require_task(policy, task, "edit")
    if task.status == Task.Status.OPEN:
        return task
    before = snapshot(task, ["status"])
    task.status = Task.Status.OPEN
    task.completed_at = None
    task.save(update_fields=["status", "completed_at", "updated_at"])
    audit(
        org=task.org,
        actor=actor,
        verb="task.reopened",
        obj=task,
        changes=diff(before, snapshot(task, ["status"])),
    )
    emit_event(org=task.org, event_type="task.reopened", payload={"task": task.public_id})
    return task


@transaction.atomic
def task_delete(*, task: Task, actor: Actor, policy=None) -> None:
    task = Task.objects.select_for_update().get(pk=task.pk)
    _require_task(policy, task, "delete")
    audit(
        org=task.org,
        actor=actor,
        verb="task.deleted",
        obj=task,
        changes=diff(snapshot(task, _TASK_FIELDS), {}),
    )
    emit_event(org=task.org, event_type="task.deleted", payload={"task": task.public_id})
    task.delete()


# Custom field definitions -----------------------------------------------------------------

_DEFINITION_FIELDS = [
    "entity",
    "key",
    "label",
    "field_type",
    "choices",
    "currency",
    "regex",
    "regex_message",
    "help_text",
    "position",
    "is_active",
]


@transaction.atomic
def customfield_create(*, org, actor: Actor, data: dict, policy=None) -> CustomFieldDefinition:
    _require(policy, "settings", "edit")
    cleaned = clean_definition(org=org, **_definition_args(data))
    last = (
        CustomFieldDefinition.objects.for_org(org)
        .filter(entity=cleaned["entity"])
        .order_by("-position")
        .values_list("position", flat=True)
        .first()
    )
    definition = CustomFieldDefinition.objects.create(
        org=org, position=(last + 1) if last is not None else 0, **cleaned
    )
    audit(
        org=org,
        actor=actor,
        verb="customfield.created",
        obj=definition,
        changes=diff({}, snapshot(definition, _DEFINITION_FIELDS)),
    )
    emit_event(
        org=org,
        event_type="customfield.created",
        payload={"field": definition.public_id, "entity": definition.entity, "key": definition.key},
    )
    return definition


def _definition_args(data: dict, instance=None) -> dict:
    allowed = {
        "entity",
        "key",
        "label",
        "field_type",
        "choices",
        "regex",
        "regex_message",
        "currency",
        "help_text",
    }
    unknown = set(data) - allowed
    if unknown:
        raise ValidationError({key: ["Not a custom field setting."] for key in unknown})
    args = {
        "entity": data.get("entity", instance.entity if instance else "contact"),
        "key": data.get("key", instance.key if instance else ""),
        "label": data.get("label", instance.label if instance else ""),
        "field_type": data.get("field_type", instance.field_type if instance else ""),
        "choices": data.get("choices", instance.choices if instance else []),
        "regex": data.get("regex", instance.regex if instance else ""),
        "regex_message": data.get("regex_message", instance.regex_message if instance else ""),
        "currency": data.get("currency", instance.currency if instance else ""),
        "help_text": data.get("help_text", instance.help_text if instance else ""),
    }
    if instance is not None:
        args["instance"] = instance
    return args


@transaction.atomic
def customfield_update(
    *, definition: CustomFieldDefinition, actor: Actor, data: dict, policy=None
) -> CustomFieldDefinition:
    _require(policy, "settings", "edit")
    definition = CustomFieldDefinition.objects.select_for_update().get(pk=definition.pk)
    cleaned = clean_definition(org=definition.org, **_definition_args(data, definition))
    before = snapshot(definition, _DEFINITION_FIELDS)
    for key, value in cleaned.items():
        setattr(definition, key, value)
    definition.save()
    changes = diff(before, snapshot(definition, _DEFINITION_FIELDS))
    if changes:
        audit(
            org=definition.org,
            actor=actor,
            verb="customfield.updated",
            obj=definition,
            changes=changes,
        )
        emit_event(
            org=definition.org,
            event_type="customfield.updated",
            payload={"field": definition.public_id, "fields": sorted(changes)},
        )
    return definition


def _set_definition_active(definition, actor, policy, active: bool):
    _require(policy, "settings", "edit")
    definition = CustomFieldDefinition.objects.select_for_update().get(pk=definition.pk)
    if definition.is_active == active:
        return definition
    before = snapshot(definition, ["is_active"])
    definition.is_active = active
    definition.save(update_fields=["is_active"])
    verb = "customfield.reactivated" if active else "customfield.deactivated"
    audit(
        org=definition.org,
        actor=actor,
        verb=verb,
        obj=definition,
        changes=diff(before, snapshot(definition, ["is_active"])),
    )
    emit_event(org=definition.org, event_type=verb, payload={"field": definition.public_id})
    return definition


@transaction.atomic
def customfield_deactivate(
    *, definition: CustomFieldDefinition, actor: Actor, policy=None
) -> CustomFieldDefinition:
    """Hide a field from forms, pages, filters and exports. Stored values stay, so turning
    it back on loses nothing."""
    return _set_definition_active(definition, actor, policy, False)


@transaction.atomic
def customfield_reactivate(
    *, definition: CustomFieldDefinition, actor: Actor, policy=None
) -> CustomFieldDefinition:
    return _set_definition_active(definition, actor, policy, True)


__all__ = [
    "BOOKKEEPING_TYPES",
    "CONTACTED_TYPES",
    "EMAIL_TAKEN",
    "QUICK_LOG_TYPES",
    "FieldNotEditable",
    "activity_log",
    "company_archive",
    "company_create",
    "company_for",
    "company_restore",
    "company_update",
    "contact_archive",
    "contact_assign_owner",
    "contact_claim",
    "contact_create",
    "contact_release",
    "contact_restore",
    "contact_update",
    "customfield_create",
    "customfield_deactivate",
    "customfield_reactivate",
    "customfield_update",
    "is_contact_admin",
    "note_create",
    "note_delete",
    "note_update",
    "quick_log",
    "tag_get_or_create",
    "task_complete",
    "task_create",
    "task_delete",
    "task_reopen",
    "task_update",
]
