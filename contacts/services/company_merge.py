"""Merging duplicate companies: one company (the *primary*) absorbs another (the *secondary*).

- Every row that points at the secondary moves to the primary. The relations are found by
  introspection (`company_relations_to_move()`): contacts, deals, timeline entries, notes,
  tasks today, and any foreign key to Company added later, in any app, unless
  COMPANY_MERGE_EXCLUDED names it with its reason. Where a relation is unique per company
  and the primary already has the same link, the secondary's row stays where it is (it is
  counted under "kept" in the result and the audit entry), so nothing is deleted.
- The primary keeps its values; each of its empty fields (domain, website, industry, size,
  description) takes the secondary's, and custom-field keys it lacks are copied over. The
  name and owner stay the primary's.
- The secondary is archived, not deleted, and its domain moves to the primary when the
  primary had none (a domain belongs to one company of the org).
- One transaction: audited and emitted as "company.merged", with a timeline entry on both.

Unlike contact merges there is no undo: the audit entry records what changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.utils import timezone

from crm.services import Actor, audit, diff, emit_event

from ..models import Activity, Company, Contact
from ..scoring import rescore_contacts
from ._base import _require
from .companies import _company_state
from .merge_relations import conflicting_ids, relation_key, repoint, rows_of
from .timeline import _log

__all__ = [
    "COMPANY_MERGE_EXCLUDED",
    "FILLED_FIELDS",
    "CompanyMergeResult",
    "company_merge_blockers",
    "company_relations",
    "company_relations_to_move",
    "merge_companies",
]

# Foreign keys to Company that a merge leaves where they are, with the reason. Every other
# one moves (tests/contacts/test_company_duplicates.py fails for one in neither).
COMPANY_MERGE_EXCLUDED: dict[str, str] = {}

# The primary's fields that take the secondary's value when they are empty.
FILLED_FIELDS = ("domain", "website", "industry", "size", "description")


@dataclass
class CompanyMergeResult:
    primary: Company
    secondary: Company
    moved: dict[str, list[int]] = field(default_factory=dict)  # relation → moved row ids
    kept: dict[str, list[int]] = field(default_factory=dict)  # relation → rows left behind
    filled: list[str] = field(default_factory=list)  # the primary's fields that were empty

    @property
    def moved_count(self) -> int:
        return sum(len(ids) for ids in self.moved.values())


def company_relations() -> list[models.ForeignKey]:
    """Every foreign key (and one-to-one) to Company, hidden ones and many-to-many link
    tables included."""
    out = []
    for rel in Company._meta.get_fields(include_hidden=True):
        if not isinstance(rel, models.ForeignObjectRel) or rel.many_to_many:
            continue  # a many-to-many moves through its link table's foreign key, listed too
        out.append(cast(models.ForeignKey, rel.field))
    return out


def company_relations_to_move() -> list[models.ForeignKey]:
    return [f for f in company_relations() if relation_key(f) not in COMPANY_MERGE_EXCLUDED]


# Checks ------------------------------------------------------------------------------------


def company_merge_blockers(*, primary: Company, secondary: Company, policy=None) -> list[str]:
    """Why this member cannot merge `secondary` into `primary`, in words ([] when they can).
    Merging needs the right to edit both companies and to delete the secondary, each inside
    the member's record scope."""
    if primary.org_id != secondary.org_id:
        return ["Only companies of one organization can be merged."]
    if primary.pk == secondary.pk:
        return ["Choose two different companies to merge."]
    if policy is not None:
        problems = []
        for company, action in ((primary, "edit"), (secondary, "edit"), (secondary, "delete")):
            if not policy.can_touch("companies", action, company.owner_id):
                problems.append(f"You may not {action} {company.name}.")
        if problems:
            return list(dict.fromkeys(problems))
    return [
        f"{company.name} is archived; restore it before merging."
        for company in (primary, secondary)
        if company.is_archived
    ]


def _check(primary: Company, secondary: Company, policy) -> None:
    if primary.org_id != secondary.org_id:
        raise ValidationError("Only companies of one organization can be merged.")
    if primary.pk == secondary.pk:
        raise ValidationError("Choose two different companies to merge.")
    try:
        _require(policy, "companies", "edit", primary.owner_id, check_scope=True)
        _require(policy, "companies", "edit", secondary.owner_id, check_scope=True)
        _require(policy, "companies", "delete", secondary.owner_id, check_scope=True)
    except PermissionDenied:
        raise PermissionDenied(
            "Merging companies needs the right to edit both and to delete "
            f"{secondary.name}, the one merged away."
        ) from None
    problems = company_merge_blockers(primary=primary, secondary=secondary)
    if problems:
        raise ValidationError(problems)


def _lock_pair(org, first_pk: int, second_pk: int) -> dict[int, Company]:
    """Both companies, locked in id order, so two merges of overlapping pairs never
    deadlock, and no row is linked to either while the merge runs."""
    locked = (
        Company.objects.for_org(org)
        .select_for_update(of=("self",))
        .filter(pk__in=[first_pk, second_pk])
        .order_by("pk")
    )
    return {c.pk: c for c in locked}


# Merge -------------------------------------------------------------------------------------


def _is_empty(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _fill(primary: Company, secondary: Company) -> list[str]:
    """Give the primary the secondary's values where it has none; returns what was filled.
    The domain moves: the secondary is saved without it first (one company per domain)."""
    filled = []
    for name in FILLED_FIELDS:
        if _is_empty(getattr(primary, name)) and not _is_empty(getattr(secondary, name)):
            setattr(primary, name, getattr(secondary, name))
            filled.append(name)
    custom = dict(primary.custom or {})
    for key, value in (secondary.custom or {}).items():
        if custom.get(key) in (None, "", [], {}) and value not in (None, "", [], {}):
            custom[key] = value
            filled.append(f"custom.{key}")
    primary.custom = custom
    return filled


@transaction.atomic
def merge_companies(
    *, primary: Company, secondary: Company, actor: Actor, policy=None
) -> CompanyMergeResult:
    """Merge `secondary` into `primary` (see the module docstring). Raises PermissionDenied
    without the rights, ValidationError when the pair cannot be merged."""
    _check(primary, secondary, policy)  # on the caller's copies: a fast refusal
    org = primary.org
    locked = _lock_pair(org, primary.pk, secondary.pk)
    if len(locked) != 2:
        raise ValidationError("One of the companies no longer exists.")
    primary, secondary = locked[primary.pk], locked[secondary.pk]
    _check(primary, secondary, policy)  # again on the locked, current rows
    before = _company_state(primary)
    now = timezone.now()

    filled = _fill(primary, secondary)
    secondary.is_archived = True
    secondary.archived_at = now
    secondary.merged_into = primary
    secondary_fields = ["is_archived", "archived_at", "merged_into", "updated_at"]
    if "domain" in filled:
        secondary.domain = ""
        secondary_fields.append("domain")
    secondary.save(update_fields=secondary_fields)
    primary.save()

    result = CompanyMergeResult(primary=primary, secondary=secondary, filled=filled)
    for relation in company_relations_to_move():
        key = relation_key(relation)
        conflicts = conflicting_ids(relation, org, primary.pk, secondary.pk)
        if conflicts:
            result.kept[key] = sorted(conflicts)
        others = None
        if conflicts:
            others = list(
                rows_of(relation.model, org)
                .filter(**{relation.attname: secondary.pk})
                .exclude(pk__in=conflicts)
                .values_list("pk", flat=True)
            )
        ids = repoint(relation, org, from_id=secondary.pk, to_id=primary.pk, ids=others)
        if ids:
            result.moved[key] = sorted(ids)
    moved_contacts = result.moved.get(relation_key(Contact._meta.get_field("company")), [])
    if moved_contacts:
        # Scoring rules may ask for the company: the moved contacts are scored again.
        rescore_contacts(org, ids=moved_contacts)

    changes = {
        **diff(before, _company_state(primary)),
        "merged": [None, secondary.name],
        "secondary": [None, str(secondary.public_id)],
        "moved": [None, result.moved_count],
    }
    if result.kept:
        changes["kept"] = [None, sum(len(ids) for ids in result.kept.values())]
    audit(org=org, actor=actor, verb="company.merged", obj=primary, changes=changes)
    emit_event(
        org=org,
        event_type="company.merged",
        payload={
            "primary": primary.public_id,
            "secondary": secondary.public_id,
            "moved": {key: len(ids) for key, ids in result.moved.items()},
        },
    )
    _log(
        org,
        actor,
        Activity.Type.MERGED,
        company=primary,
        subject=f"Merged with {secondary.name}",
        data={"secondary": str(secondary.public_id), "moved": result.moved_count},
    )
    _log(
        org,
        actor,
        Activity.Type.MERGED,
        company=secondary,
        subject=f"Merged into {primary.name}",
        data={"primary": str(primary.public_id)},
    )
    return result
