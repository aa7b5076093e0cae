"""Deals: create, change, move between stages, win, lose, reopen, archive.

Every write checks the pipeline module's right and record scope (policy None is system
work), runs in one transaction, audits, emits a domain event through the outbox, and puts
an entry on the timelines of the deal, its contacts and its company. Every stage or status
change appends a StageHistory row: time in stage and conversion rates are read from it."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Max, Min
from django.utils import timezone

from contacts.models import Activity, Contact
from crm.services import Actor, audit, diff, emit_event, snapshot

from ..fields import DEAL_FIELD_LABELS, locked_deal_fields
from ..models import (
    Deal,
    DealContact,
    DealReason,
    Pipeline,
    Stage,
    StageHistory,
)
from ..money import to_decimal
from .deal_input import check_stage, clean, first_stage, org_object, resolve_tags, set_tags, text

# Positions of cards in a column are spread this far apart when a column is renumbered.
POSITION_STEP = 1024.0
# Two neighbours closer than this leave no room between them: the column is renumbered.
MIN_GAP = 1e-6

STATE_FIELDS = (
    "title",
    "value",
    "currency",
    "pipeline",
    "stage",
    "probability",
    "priority",
    "owner",
    "team",
    "contact",
    "company",
    "expected_close_date",
    "status",
    "source",
    "forecast_category",
    "custom",
)


class DealFieldLocked(PermissionDenied):
    def __init__(self, keys):
        self.keys = list(keys)
        names = ", ".join(DEAL_FIELD_LABELS.get(k, k) for k in self.keys)
        super().__init__(f"Your role may not change these deal fields: {names}.")


# Permissions -----------------------------------------------------------------------------


def require(policy, action: str, deal: Deal | None = None) -> None:
    """The pipeline module's `action` right, and for an existing deal its record scope."""
    if policy is None:
        return
    policy.require("pipeline", action)
    if deal is not None and not policy.owns_in_scope("pipeline", deal.owner_id):
        raise PermissionDenied("This deal is outside the deals you may work on.")


def _user_of(actor: Actor):
    user = getattr(actor, "user", None)
    return user if user is not None and getattr(user, "pk", None) else None


def _state(deal: Deal) -> dict:
    state = snapshot(deal, STATE_FIELDS)
    state["value"] = str(deal.value)
    return state


# Timeline ----------------------------------------------------------------------------------


def timeline(org, actor: Actor, deal: Deal, type_: str, subject: str, data=None, at=None) -> None:
    """One entry on the deal's timeline (with its primary contact and company), and a copy on
    the timeline of each other contact of the deal, marked so the deal shows it once."""
    at = at or timezone.now()
    user = _user_of(actor)
    base = {"deal": str(deal.public_id), "deal_title": deal.title, **(data or {})}
    rows = [
        Activity(
            org_id=org.id,
            type=type_,
            deal=deal,
            contact_id=deal.contact_id,
            company_id=deal.company_id,
            actor=user,
            subject=subject[:300],
            data=base,
            occurred_at=at,
        )
    ]
    others = (
        DealContact.objects.for_org(org)
        .filter(deal=deal)
        .exclude(contact_id=deal.contact_id)
        .values_list("contact_id", flat=True)
    )
    rows += [
        Activity(
            org_id=org.id,
            type=type_,
            deal=deal,
            contact_id=contact_id,
            actor=user,
            subject=subject[:300],
            data={**base, "copy": True},
            occurred_at=at,
        )
        for contact_id in others
    ]
    Activity.objects.for_org(org).bulk_create(rows)
    Deal.objects.for_org(org).filter(pk=deal.pk).update(last_activity_at=at)


def _history(org, actor: Actor, deal: Deal, *, from_stage_id, from_status, at) -> StageHistory:
    seconds = None
    if deal.stage_entered_at is not None and from_stage_id is not None:
        seconds = max(int((at - deal.stage_entered_at).total_seconds()), 0)
    return StageHistory.objects.for_org(org).create(
        org=org,
        deal=deal,
        pipeline_id=deal.pipeline_id,
        from_stage_id=from_stage_id,
        to_stage_id=deal.stage_id,
        from_status=from_status,
        to_status=deal.status,
        seconds_in_from_stage=seconds,
        actor=_user_of(actor),
        actor_label=(actor.label or "")[:200],
        occurred_at=at,
    )


def _event(org, event_type: str, deal: Deal, **extra) -> None:
    emit_event(
        org=org,
        event_type=event_type,
        payload={
            "deal": deal.public_id,
            "title": deal.title,
            "pipeline": deal.pipeline.public_id,
            "stage": deal.stage.public_id,
            "status": deal.status,
            "value": str(deal.value),
            "currency": deal.currency,
            **extra,
        },
    )


# Positions ---------------------------------------------------------------------------------


def _column(org, stage_id):
    return Deal.objects.for_org(org).filter(
        stage_id=stage_id, status=Deal.Status.OPEN, is_archived=False
    )


def top_position(org, stage_id) -> float:
    lowest = _column(org, stage_id).aggregate(low=Min("position"))["low"]
    return 0.0 if lowest is None else lowest - POSITION_STEP


def bottom_position(org, stage_id) -> float:
    highest = _column(org, stage_id).aggregate(high=Max("position"))["high"]
    return 0.0 if highest is None else highest + POSITION_STEP


def renumber_column(org, stage_id) -> None:
    """Spread a column's cards POSITION_STEP apart, keeping their order."""
    ids = list(_column(org, stage_id).order_by("position", "id").values_list("pk", flat=True))
    rows = [Deal(pk=pk, position=(n + 1) * POSITION_STEP) for n, pk in enumerate(ids)]
    Deal.objects.for_org(org).bulk_update(rows, ["position"], batch_size=2000)


def _position_between(org, stage_id, before: Deal | None, after: Deal | None, moving_pk) -> float:
    """A position for a card placed after `before` and before `after` in a column (either
    may be None: the top or the bottom)."""
    if before is None and after is None:
        return bottom_position(org, stage_id)
    if before is None:
        return after.position - POSITION_STEP  # type: ignore[union-attr]
    if after is None:
        return before.position + POSITION_STEP
    for _ in range(2):
        if after.position - before.position > MIN_GAP:
            return (before.position + after.position) / 2
        renumber_column(org, stage_id)
        before.refresh_from_db(fields=["position"])
        after.refresh_from_db(fields=["position"])
    return (before.position + after.position) / 2


def _neighbour(org, value, stage_id, moving_pk):
    if value in (None, ""):
        return None
    deal = value if isinstance(value, Deal) else org_object(Deal, org, value, "deal")
    if deal.pk == moving_pk or deal.stage_id != stage_id or deal.status != Deal.Status.OPEN:
        return None
    return deal


# Writes ------------------------------------------------------------------------------------


def default_pipeline(org) -> Pipeline:
    """The organization's default pipeline (its first one if none is marked), made from the
    B2B template on first use."""
    found = Pipeline.objects.for_org(org).order_by("-is_default", "position", "id").first()
    if found is not None:
        return found
    from .pipelines import ensure_default_pipeline

    return ensure_default_pipeline(org)


@transaction.atomic
def deal_create(*, org, actor: Actor, data: dict, policy=None, position: str = "bottom") -> Deal:
    """A new open deal. Without a stage it goes to the first stage of the pipeline given
    (or of the default pipeline); without an owner it is the creating member's."""
    require(policy, "create")
    locked = locked_deal_fields(policy, [k for k in data if data[k] not in (None, "", [])])
    if locked:
        raise DealFieldLocked(locked)
    data = dict(data)
    data.setdefault("title", "")
    values, tags, custom = clean(org, data, None)
    if values.get("stage") is None:
        stage = first_stage(values.get("pipeline") or default_pipeline(org))
        if stage is None:
            raise ValidationError({"stage": ["This pipeline has no stages yet."]})
        values["stage"] = stage
    check_stage(values, None)
    values.setdefault("currency", org.base_currency)
    values.setdefault("value", to_decimal("0"))
    user = _user_of(actor)
    if "owner" not in values and policy is not None:
        values["owner"] = user
    if policy is not None and values.get("owner") is not None:
        owner = values["owner"]
        if not policy.owns_in_scope("pipeline", owner.pk):
            raise ValidationError({"owner": ["You may only create deals owned within your scope."]})
    now = timezone.now()
    stage = values["stage"]
    place = top_position(org, stage.pk) if position == "top" else bottom_position(org, stage.pk)
    deal = Deal(
        org=org,
        created_by=user,
        stage_entered_at=now,
        position=place,
        custom=custom or {},
        **values,
    )
    deal.full_clean(exclude=["org", "pipeline", "stage", "owner", "team", "contact", "company"])
    deal.save()
    if tags:
        set_tags(deal, resolve_tags(org, actor, tags))
    if deal.contact_id:
        DealContact.objects.for_org(org).get_or_create(
            org=org, deal=deal, contact_id=deal.contact_id, defaults={"role": ""}
        )
    _history(org, actor, deal, from_stage_id=None, from_status="", at=now)
    audit(org=org, actor=actor, verb="deal.created", obj=deal, changes=diff({}, _state(deal)))
    _event(org, "deal.created", deal)
    timeline(org, actor, deal, Activity.Type.DEAL_CREATED, f"Deal created: {deal.title}", at=now)
    return deal


def _locked(deal: Deal) -> Deal:
    return (
        Deal.objects.for_org(deal.org_id)
        .select_for_update(of=("self",))
        .select_related("pipeline", "stage", "org")
        .get(pk=deal.pk)
    )


@transaction.atomic
def deal_update(*, deal: Deal, actor: Actor, data: dict, policy=None) -> Deal:
    """Change the fields in `data`. A new stage here is a move (history, timeline, event)."""
    org = deal.org
    deal = _locked(deal)
    require(policy, "edit", deal)
    if deal.is_archived:
        raise ValidationError("Restore the deal before changing it.")
    values, tags, custom = clean(org, data, deal)
    changed = [k for k, v in values.items() if getattr(deal, k) != v]
    if custom is not None and custom != deal.custom:
        changed.append("custom")
    if tags is not None:
        changed.append("tags")
    locked = locked_deal_fields(policy, changed)
    if locked:
        raise DealFieldLocked(locked)
    if "value" in values and not deal.value_is_manual and values["value"] != deal.value:
        raise ValidationError(
            {"value": ["The value is the sum of the line items; change the lines instead."]}
        )
    new_owner = values.get("owner")
    if (
        policy is not None
        and new_owner is not None
        and new_owner.pk != deal.owner_id
        and not policy.owns_in_scope("pipeline", new_owner.pk)
    ):
        raise ValidationError({"owner": ["Choose an owner within your scope."]})
    if "currency" in values and values["currency"] != deal.currency and deal.line_items.exists():
        raise ValidationError(
            {"currency": ["The currency comes from the line items; remove them to change it."]}
        )
    check_stage(values, deal)
    before = _state(deal)
    old_stage, old_status = deal.stage, deal.status
    old_stage_id = old_stage.pk
    for key, value in values.items():
        setattr(deal, key, value)
    if custom is not None:
        deal.custom = custom
    now = timezone.now()
    moved = deal.stage_id != old_stage_id
    if moved:
        deal.position = bottom_position(org, deal.stage_id)
        _history(org, actor, deal, from_stage_id=old_stage_id, from_status=old_status, at=now)
        deal.stage_entered_at = now
    deal.save()
    if tags is not None:
        set_tags(deal, resolve_tags(org, actor, tags))
    if "contact" in values and deal.contact_id:
        DealContact.objects.for_org(org).get_or_create(
            org=org, deal=deal, contact_id=deal.contact_id, defaults={"role": ""}
        )
    changes = diff(before, _state(deal))
    if changes or tags is not None:
        audit(org=org, actor=actor, verb="deal.updated", obj=deal, changes=changes)
        _event(org, "deal.updated", deal, changes=list(changes))
    if moved:
        _moved_side_effects(org, actor, deal, old_stage.name, now)
    return deal


def _moved_side_effects(org, actor, deal: Deal, old: str, now) -> None:
    """The event and the timeline entries of a move; `deal.stage` is the new stage."""
    _event(org, "deal.stage_changed", deal, from_stage=old, to_stage=deal.stage.name)
    timeline(
        org,
        actor,
        deal,
        Activity.Type.DEAL_STAGE_CHANGED,
        f"{deal.title}: moved from {old} to {deal.stage.name}",
        data={"from": old, "to": deal.stage.name},
        at=now,
    )


@transaction.atomic
def deal_move(
    *, deal: Deal, actor: Actor, stage=None, before=None, after=None, policy=None
) -> Deal:
    """Put an open deal into `stage` (default: its own) between the cards `before` and
    `after` (deals, public ids or None). A move within a column only changes the order."""
    org = deal.org
    deal = _locked(deal)
    require(policy, "edit", deal)
    if deal.status != Deal.Status.OPEN or deal.is_archived:
        raise ValidationError("Only open deals move on the board; reopen it first.")
    target = deal.stage if stage in (None, "") else org_object(Stage, org, stage, "stage")
    if target.pipeline_id != deal.pipeline_id:
        raise ValidationError("Choose a stage of the deal's pipeline.")
    lower = _neighbour(org, before, target.pk, deal.pk)
    upper = _neighbour(org, after, target.pk, deal.pk)
    if lower is not None and upper is not None and lower.position > upper.position:
        lower, upper = upper, lower
    deal.position = _position_between(org, target.pk, lower, upper, deal.pk)
    if target.pk == deal.stage_id:
        Deal.objects.for_org(org).filter(pk=deal.pk).update(position=deal.position)
        return deal
    now = timezone.now()
    old_stage = deal.stage
    old_stage_id = old_stage.pk
    deal.stage = target
    _history(org, actor, deal, from_stage_id=old_stage_id, from_status=deal.status, at=now)
    deal.stage_entered_at = now
    deal.save(update_fields=["stage", "position", "stage_entered_at", "updated_at"])
    audit(
        org=org,
        actor=actor,
        verb="deal.stage_changed",
        obj=deal,
        changes={"stage": [old_stage.name, target.name]},
    )
    _moved_side_effects(org, actor, deal, old_stage.name, now)
    return deal


def _reason(org, kind: str, value) -> DealReason:
    if value in (None, ""):
        raise ValidationError({"reason": [f"Choose why the deal was {kind}."]})
    reason = org_object(DealReason, org, value, "reason")
    if reason.kind != kind or not reason.is_active:
        raise ValidationError({"reason": [f"Choose one of the organization's {kind} reasons."]})
    return reason


@transaction.atomic
def deal_close(
    *, deal: Deal, actor: Actor, status: str, reason, note: str = "", closed_at=None, policy=None
) -> Deal:
    """Mark a deal won or lost, with a reason from the organization's list."""
    org = deal.org
    deal = _locked(deal)
    require(policy, "edit", deal)
    if status not in (Deal.Status.WON, Deal.Status.LOST):
        raise ValidationError("A deal is closed as won or lost.")
    if deal.is_archived:
        raise ValidationError("Restore the deal before closing it.")
    chosen = _reason(org, status, reason)
    now = timezone.now()
    before = _state(deal)
    old_status = deal.status
    deal.status = status
    deal.close_reason = chosen
    deal.close_note = text(note)[:5000]
    deal.closed_at = closed_at or now
    _history(org, actor, deal, from_stage_id=deal.stage_id, from_status=old_status, at=now)
    deal.stage_entered_at = now
    deal.save()
    audit(
        org=org,
        actor=actor,
        verb=f"deal.{status}",
        obj=deal,
        changes={**diff(before, _state(deal)), "reason": [None, chosen.name]},
    )
    _event(org, f"deal.{status}", deal, reason=chosen.name)
    label = "won" if status == Deal.Status.WON else "lost"
    kind = Activity.Type.DEAL_WON if status == Deal.Status.WON else Activity.Type.DEAL_LOST
    timeline(
        org,
        actor,
        deal,
        kind,
        f"Deal {label}: {deal.title} ({chosen.name})",
        data={"reason": chosen.name},
        at=now,
    )
    return deal


@transaction.atomic
def deal_reopen(*, deal: Deal, actor: Actor, policy=None) -> Deal:
    org = deal.org
    deal = _locked(deal)
    require(policy, "edit", deal)
    if deal.status == Deal.Status.OPEN:
        return deal
    now = timezone.now()
    old_status = deal.status
    deal.status = Deal.Status.OPEN
    deal.closed_at = None
    deal.close_reason = None
    deal.close_note = ""
    deal.position = bottom_position(org, deal.stage_id)
    _history(org, actor, deal, from_stage_id=deal.stage_id, from_status=old_status, at=now)
    deal.stage_entered_at = now
    deal.save()
    audit(
        org=org,
        actor=actor,
        verb="deal.reopened",
        obj=deal,
        changes={"status": [old_status, "open"]},
    )
    _event(org, "deal.reopened", deal, from_status=old_status)
    timeline(org, actor, deal, Activity.Type.DEAL_REOPENED, f"Deal reopened: {deal.title}", at=now)
    return deal


@transaction.atomic
def deal_archive(*, deal: Deal, actor: Actor, policy=None) -> Deal:
    org = deal.org
    deal = _locked(deal)
    require(policy, "delete", deal)
    if deal.is_archived:
        return deal
    deal.is_archived = True
    deal.archived_at = timezone.now()
    deal.save(update_fields=["is_archived", "archived_at", "updated_at"])
    audit(org=org, actor=actor, verb="deal.archived", obj=deal)
    _event(org, "deal.archived", deal)
    return deal


@transaction.atomic
def deal_restore(*, deal: Deal, actor: Actor, policy=None) -> Deal:
    org = deal.org
    deal = _locked(deal)
    require(policy, "delete", deal)
    if not deal.is_archived:
        return deal
    deal.is_archived = False
    deal.archived_at = None
    if deal.status == Deal.Status.OPEN:
        deal.position = bottom_position(org, deal.stage_id)
    deal.save(update_fields=["is_archived", "archived_at", "position", "updated_at"])
    audit(org=org, actor=actor, verb="deal.restored", obj=deal)
    _event(org, "deal.restored", deal)
    return deal


# Contacts on a deal --------------------------------------------------------------------------


@transaction.atomic
def deal_contact_add(
    *, deal: Deal, actor: Actor, contact, role: str = "", policy=None
) -> DealContact:
    org = deal.org
    require(policy, "edit", deal)
    contact = org_object(Contact, org, contact, "contact")
    if policy is not None and not policy.can_touch("contacts", "view", contact.owner_id):
        raise ValidationError({"contact": ["Choose a contact you can see."]})
    if role and role not in Contact.DealRole.values:
        raise ValidationError({"role": ["Choose a valid role."]})
    link, created = DealContact.objects.for_org(org).get_or_create(
        org=org, deal=deal, contact=contact, defaults={"role": role}
    )
    if not created and link.role != role:
        link.role = role
        link.save(update_fields=["role"])
    audit(
        org=org,
        actor=actor,
        verb="deal.contact_added",
        obj=deal,
        changes={"contact": [None, str(contact)], "role": [None, role]},
    )
    _event(org, "deal.updated", deal, changes=["contacts"])
    return link


@transaction.atomic
def deal_contact_remove(*, link: DealContact, actor: Actor, policy=None) -> None:
    deal = link.deal
    require(policy, "edit", deal)
    if deal.contact_id == link.contact_id:
        raise ValidationError("Choose another primary contact before removing this one.")
    audit(
        org=deal.org,
        actor=actor,
        verb="deal.contact_removed",
        obj=deal,
        changes={"contact": [str(link.contact), None]},
    )
    link.delete()
    _event(deal.org, "deal.updated", deal, changes=["contacts"])
