"""Companies: create, update, archive, restore, and find-or-create by domain."""

from __future__ import annotations

import contextlib

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from crm.field_sizes import field_max_length
from crm.services import Actor, audit, diff, emit_event, snapshot

from .. import normalize, validators
from ..custom_fields import apply_custom_values
from ..fields import (
    CUSTOM_PREFIX,
    catalog_by_key,
    company_field_catalog,
)
from ..models import Activity, Company
from ._base import (
    _check_member,
    _choice,
    _require,
    _text,
    _user_of,
)
from .timeline import _log, record_field_changes

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
            if spec.definition is not None:  # a custom field: its spec carries the definition
                custom_raw[spec.definition.key] = raw
            elif key == "domain":
                values[key] = normalize.normalize_domain(_text(raw))
            elif key == "website":
                values[key] = validators.clean_url(raw)
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
                limit = field_max_length(Company, key)
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
            spec.definition.key: spec.definition
            for spec in specs_by_key.values()
            if spec.definition is not None
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
    _log(
        org,
        actor,
        Activity.Type.CREATED,
        company=company,
        subject="Company added",
        occurred_at=company.created_at,
    )
    return company


@transaction.atomic
def company_update(*, company: Company, actor: Actor, data: dict, policy=None) -> Company:
    company = Company.objects.for_org(company.org_id).select_for_update().get(pk=company.pk)
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
        record_field_changes(
            org=company.org,
            actor=actor,
            company=company,
            changes=changes,
            specs_by_key=catalog_by_key(company_field_catalog(company.org)),
        )
        emit_event(
            org=company.org,
            event_type="company.updated",
            payload={"company": company.public_id, "fields": sorted(changes)},
        )
    return company


def _set_company_archived(company: Company, actor: Actor, policy, archived: bool) -> Company:
    company = Company.objects.for_org(company.org_id).select_for_update().get(pk=company.pk)
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


def _kept(org, company: Company) -> Company:
    """A company merged into another stands for the one kept (followed along a chain of
    merges, which cannot loop: each merge archives the company that points on)."""
    seen = set()
    while company.merged_into_id and company.merged_into_id not in seen:
        seen.add(company.pk)
        company = Company.objects.for_org(org).get(pk=company.merged_into_id)
    return company


def company_for(org, *, name: str = "", domain: str = "", actor: Actor | None = None, policy=None):
    """The org's company for a domain (or, without one, a name), created when missing.

    Import and the contact form use this so "Acme", "acme.com" and "https://www.acme.com"
    land on one company. Returns None when both are empty; an invalid domain raises
    ValidationError keyed "domain". With a member's `policy` a new company needs their
    companies "create" right and is theirs, so an own-scope member can still open it."""
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
        return _kept(org, found)
    actor = actor or Actor.system("company matching")
    try:
        with transaction.atomic():
            return company_create(
                org=org,
                actor=actor,
                data={"name": name or domain, "domain": domain},
                policy=policy,
            )
    except ValidationError:
        # Lost a race on the domain: the other writer's company is the one.
        found = companies.filter(domain=domain).first() if domain else None
        if found is None:
            raise
        return found
