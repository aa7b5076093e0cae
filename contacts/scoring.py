"""Lead scoring: rules of "condition → points" give every contact a score from 0 to 100.

A rule's condition is one condition of the smart-view filter language (contacts.filters), so
scoring and views share one compiler and one set of operators. Scores are computed in SQL:

    lead_score = GREATEST(0, LEAST(100, CASE WHEN <rule 1> THEN p1 ELSE 0 END + ...))

in one UPDATE per chunk of contacts, touching only rows whose score changes. The reasons
behind one contact's score are read in one query with a boolean column per rule.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import transaction
from django.db.models import (
    BooleanField,
    Case,
    Exists,
    ExpressionWrapper,
    F,
    IntegerField,
    OuterRef,
    Q,
    Value,
    When,
)
from django.db.models.functions import Greatest, Least
from django.db.models.lookups import Exact
from django.utils import timezone

from crm import jobs, rls
from crm.jobs.background import fail_job, finish_job
from crm.models import BackgroundJob
from crm.selectors import org_timezone
from crm.services import Actor, audit

from .fields import CONTACT_FIELDS, CUSTOM_PREFIX, catalog_by_key, contact_field_catalog
from .filters import FilterError, compile_condition, describe_condition
from .models import Contact, ScoringRule

logger = logging.getLogger(__name__)

CHUNK_SIZE = 1000
MIN_SCORE, MAX_SCORE = 0, 100
JOB_KIND = "contacts.rescore"


def active_rules(org) -> list[ScoringRule]:
    return list(ScoringRule.objects.for_org(org).filter(is_active=True).order_by("position", "id"))


def has_active_rules(org) -> bool:
    return ScoringRule.objects.for_org(org).filter(is_active=True).exists()


def rules_catalog(org, rules):
    """The field catalog the rules need: the standard fields, plus the org's custom fields
    only when a rule uses one (saves a query on every contact save)."""
    if any(str(rule.condition.get("field", "")).startswith(CUSTOM_PREFIX) for rule in rules):
        return catalog_by_key(contact_field_catalog(org))
    return catalog_by_key(CONTACT_FIELDS)


def _as_row_condition(org, q: Q):
    """`q` as something usable in a CASE of an UPDATE: the condition itself when it reads
    only the contact's own row, else an EXISTS over the same contact (an UPDATE cannot join,
    and a join on a many-valued relation would repeat rows)."""
    # Never run, only its joins counted: an org filter would add an (unused) alias to them.
    query = Contact.objects.all_orgs().filter(q).query
    if len(query.alias_map) <= 1:
        return q
    return Q(Exists(Contact.objects.for_org(org).filter(pk=OuterRef("pk")).filter(q)))


@dataclass
class CompiledRule:
    rule: ScoringRule
    condition: Q | None  # None: the condition no longer compiles (e.g. its field was removed)
    error: str = ""


def compile_rules(org, rules=None) -> list[CompiledRule]:
    rules = active_rules(org) if rules is None else rules
    catalog = rules_catalog(org, rules)
    tz, now = org_timezone(org), timezone.now()
    compiled = []
    for rule in rules:
        try:
            q = compile_condition(rule.condition, catalog, tz=tz, now=now, org=org)
        except FilterError as exc:
            logger.warning("Scoring rule %s of org %s does not compile: %s", rule.pk, org.pk, exc)
            compiled.append(CompiledRule(rule, None, exc.message))
            continue
        compiled.append(CompiledRule(rule, _as_row_condition(org, q)))
    return compiled


def score_expression(compiled: list[CompiledRule]):
    """The clamped sum of the points of the rules a row meets."""
    terms = [
        Case(When(item.condition, then=Value(item.rule.points)), default=Value(0))
        for item in compiled
        if item.condition is not None and item.rule.points
    ]
    if not terms:
        return Value(MIN_SCORE, output_field=IntegerField())
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return Greatest(Value(MIN_SCORE), Least(Value(MAX_SCORE), total), output_field=IntegerField())


def rescore_ids(org, ids, expression) -> int:
    """One UPDATE for these contacts (internal ids) with a `score_expression()`, writing
    only the scores that change."""
    return (
        Contact.objects.for_org(org)
        .filter(pk__in=ids)
        .exclude(Exact(F("lead_score"), expression))
        .update(lead_score=expression)
    )


def rescore_contacts(org, ids=None) -> int:
    """Recompute the scores of the contacts `ids` (internal ids), or of the whole org in
    chunks. Returns how many scores changed."""
    expression = score_expression(compile_rules(org))
    changed = 0
    if ids is not None:
        ids = list(ids)
        for start in range(0, len(ids), CHUNK_SIZE):
            with transaction.atomic():
                changed += rescore_ids(org, ids[start : start + CHUNK_SIZE], expression)
        return changed
    cursor = 0
    while True:
        chunk = next_contact_ids(org, cursor)
        if not chunk:
            return changed
        with transaction.atomic():
            changed += rescore_ids(org, chunk, expression)
        cursor = chunk[-1]


def next_contact_ids(org, cursor: int, limit: int = CHUNK_SIZE) -> list[int]:
    return list(
        Contact.objects.for_org(org)
        .filter(pk__gt=cursor)
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )


def rescore_contact(contact: Contact) -> int:
    """Recompute one contact's score (after it was created or edited) and put it on the
    instance. Returns the score."""
    rescore_contacts(contact.org, ids=[contact.pk])
    contact.lead_score = (
        Contact.objects.for_org(contact.org_id)
        .filter(pk=contact.pk)
        .values_list("lead_score", flat=True)
        .first()
        or 0
    )
    return contact.lead_score


@dataclass(frozen=True)
class Reason:
    name: str
    points: int
    condition: str  # the condition in words, "" when its field is hidden for the viewer


def score_reasons(contact: Contact, policy=None) -> list[Reason]:
    """The active rules this contact meets, with their points, read in one query (one
    boolean column per rule). With `policy`, a rule on a field hidden for that member keeps
    its points but not the wording of its condition."""
    compiled = [c for c in compile_rules(contact.org) if c.condition is not None]
    if not compiled:
        return []
    flags = {
        f"rule_{index}": ExpressionWrapper(item.condition, output_field=BooleanField())
        for index, item in enumerate(compiled)
    }
    row = (
        Contact.objects.for_org(contact.org_id).filter(pk=contact.pk).values(**flags).first() or {}
    )
    catalog = rules_catalog(contact.org, [item.rule for item in compiled])
    reasons = []
    for index, item in enumerate(compiled):
        if not row.get(f"rule_{index}") or not item.rule.points:
            continue
        field_key = item.rule.condition.get("field", "")
        hidden = policy is not None and not policy.can_see_field(field_key)
        wording = "" if hidden else describe_condition(item.rule.condition, catalog)
        reasons.append(Reason(item.rule.name, item.rule.points, wording))
    return reasons


# The rules' writes (create, update, delete) are services: contacts/services/scoring_rules.py.


# Rescoring the whole organization as a background job ------------------------------------------


def start_rescore_job(org, actor: Actor) -> BackgroundJob:
    """Queue a rescore of every contact of the org (after rules changed). A job still
    waiting in the queue is reused: it reads the rules only when it starts."""
    # In the organization's context, whoever calls: a request (already in it) or the
    # nightly sweep (which is not).
    with transaction.atomic(), rls.tenant(org.id):
        waiting = (
            BackgroundJob.objects.for_org(org)
            .filter(kind=JOB_KIND, status=BackgroundJob.Status.QUEUED)
            .first()
        )
        if waiting is not None:
            return waiting
        job = BackgroundJob.objects.for_org(org).create(
            org=org,
            kind=JOB_KIND,
            created_by=actor.user,
            total=Contact.objects.for_org(org).count(),
            params={"title": "Recompute lead scores"},
        )
        audit(org=org, actor=actor, verb="job.queued", obj=job, object_repr="Rescore contacts")
        jobs.enqueue(job)
    return job


@jobs.runner(JOB_KIND, model="crm.BackgroundJob", give_up=fail_job)
def run_rescore_job(job: BackgroundJob) -> None:
    """Run a claimed rescore job to the end, resuming from its cursor."""
    org = job.org
    expression = score_expression(compile_rules(org))
    finished = jobs.run_chunks(
        job,
        next_ids=lambda cursor: next_contact_ids(org, cursor),
        process=lambda ids: {"changed": rescore_ids(org, ids, expression)},
    )
    if finished:
        result = BackgroundJob.objects.for_org(job.org_id).get(pk=job.pk).result
        changed = int((result or {}).get("changed") or 0)
        # Rules are saved often; a notification per rescore would be noise.
        finish_job(job, f"Lead scores recomputed: {changed:,} changed.", tell=False)


def latest_rescore_job(org) -> BackgroundJob | None:
    return BackgroundJob.objects.for_org(org).filter(kind=JOB_KIND).order_by("-created_at").first()


def orgs_with_time_based_rules():
    """Organizations whose active rules say "in the last N days": their scores move as days
    pass, without any contact changing."""
    from crm.models import Organization

    # A nightly sweep: it looks across every organization by design.
    with transaction.atomic(), rls.bypass("nightly lead score refresh: which orgs to rescore"):
        org_ids = list(
            ScoringRule.objects.all_orgs()
            .filter(is_active=True, condition__op="in_last_days")
            .values_list("org_id", flat=True)
            .distinct()
        )
    return Organization.objects.filter(id__in=org_ids)


def queue_nightly_rescores() -> int:
    """Queue one rescore job per organization whose scores drift with time."""
    queued = 0
    for org in orgs_with_time_based_rules():
        start_rescore_job(org, Actor.system("nightly lead score refresh"))
        queued += 1
    return queued
