"""Checklists on a deal: lists of steps (add, rename, delete) and their items (add, rename,
tick and untick, delete), with done/total counters.

Changing a checklist needs the pipeline edit right and the deal in the member's record
scope, like any change to the deal. Each write audits on the deal and emits "deal.updated"
with what changed, so webhooks hear about it through the outbox.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from crm.field_sizes import char_max_length
from crm.services import Actor, audit, emit_event

from ..models import Checklist, ChecklistItem, Deal
from .deals import require

MAX_CHECKLISTS = 50
MAX_ITEMS = 200
TITLE_MAX = char_max_length(Checklist, "title")
TEXT_MAX = char_max_length(ChecklistItem, "text")


@dataclass(frozen=True)
class Progress:
    done: int
    total: int

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.total) if self.total else 0

    @property
    def complete(self) -> bool:
        return self.total > 0 and self.done == self.total


def _text(raw, *, limit: int, what: str) -> str:
    text = " ".join(str(raw or "").split())
    if not text:
        raise ValidationError(f"{what} cannot be empty.")
    if len(text) > limit:
        raise ValidationError(f"Keep it to {limit} characters.")
    return text


def _user_of(actor: Actor):
    user = getattr(actor, "user", None)
    return user if user is not None and getattr(user, "pk", None) else None


def _lock(deal: Deal) -> Deal:
    return (
        Deal.objects.for_org(deal.org_id)
        .select_for_update(of=("self",))
        .select_related("org")
        .get(pk=deal.pk)
    )


def _may_change(policy, deal: Deal) -> None:
    require(policy, "edit", deal)
    if deal.is_archived:
        raise ValidationError("Restore the deal before changing its checklists.")


def _record(org, actor, deal: Deal, verb: str, changes: dict) -> None:
    audit(org=org, actor=actor, verb=verb, obj=deal, changes=changes)
    emit_event(
        org=org,
        event_type="deal.updated",
        payload={"deal": deal.public_id, "title": deal.title, "changes": ["checklists"]},
    )


# Checklists ------------------------------------------------------------------------------------


@transaction.atomic
def checklist_add(*, deal: Deal, actor: Actor, title: str, policy=None) -> Checklist:
    deal = _lock(deal)
    org = deal.org
    _may_change(policy, deal)
    try:
        title = _text(title, limit=TITLE_MAX, what="A checklist's title")
    except ValidationError as exc:
        raise ValidationError({"title": exc.messages}) from None
    existing = Checklist.objects.for_org(org).filter(deal=deal)
    if existing.count() >= MAX_CHECKLISTS:
        raise ValidationError(f"A deal can have at most {MAX_CHECKLISTS} checklists.")
    top = existing.aggregate(top=Max("position"))["top"]
    checklist = Checklist.objects.for_org(org).create(
        org=org, deal=deal, title=title, position=0 if top is None else top + 1
    )
    _record(org, actor, deal, "deal.checklist_added", {"checklist": [None, title]})
    return checklist


@transaction.atomic
def checklist_rename(*, checklist: Checklist, actor: Actor, title: str, policy=None) -> Checklist:
    deal = _lock(checklist.deal)
    org = deal.org
    _may_change(policy, deal)
    try:
        title = _text(title, limit=TITLE_MAX, what="A checklist's title")
    except ValidationError as exc:
        raise ValidationError({"title": exc.messages}) from None
    checklist = Checklist.objects.for_org(org).get(pk=checklist.pk, deal=deal)
    if checklist.title == title:
        return checklist
    before = checklist.title
    checklist.title = title
    checklist.save(update_fields=["title"])
    _record(org, actor, deal, "deal.checklist_renamed", {"checklist": [before, title]})
    return checklist


@transaction.atomic
def checklist_delete(*, checklist: Checklist, actor: Actor, policy=None) -> None:
    """Delete a checklist with its items."""
    deal = _lock(checklist.deal)
    org = deal.org
    _may_change(policy, deal)
    checklist = Checklist.objects.for_org(org).get(pk=checklist.pk, deal=deal)
    progress = checklist_progress(checklist)
    _record(
        org,
        actor,
        deal,
        "deal.checklist_deleted",
        {"checklist": [f"{checklist.title} ({progress.done}/{progress.total})", None]},
    )
    checklist.delete()


# Items -----------------------------------------------------------------------------------------


@transaction.atomic
def checklist_item_add(
    *, checklist: Checklist, actor: Actor, text: str, policy=None
) -> ChecklistItem:
    deal = _lock(checklist.deal)
    org = deal.org
    _may_change(policy, deal)
    try:
        text = _text(text, limit=TEXT_MAX, what="A step")
    except ValidationError as exc:
        raise ValidationError({"text": exc.messages}) from None
    items = ChecklistItem.objects.for_org(org).filter(checklist=checklist)
    if items.count() >= MAX_ITEMS:
        raise ValidationError({"text": [f"A checklist can have at most {MAX_ITEMS} steps."]})
    top = items.aggregate(top=Max("position"))["top"]
    item = ChecklistItem.objects.for_org(org).create(
        org=org, checklist=checklist, text=text, position=0 if top is None else top + 1
    )
    _record(org, actor, deal, "deal.checklist_item_added", {checklist.title: [None, text]})
    return item


def _locked_item(item: ChecklistItem, deal: Deal) -> ChecklistItem:
    return (
        ChecklistItem.objects.for_org(deal.org_id)
        .select_for_update(of=("self",))
        .select_related("checklist")
        .get(pk=item.pk, checklist__deal=deal)
    )


@transaction.atomic
def checklist_item_rename(
    *, item: ChecklistItem, actor: Actor, text: str, policy=None
) -> ChecklistItem:
    deal = _lock(item.checklist.deal)
    org = deal.org
    _may_change(policy, deal)
    try:
        text = _text(text, limit=TEXT_MAX, what="A step")
    except ValidationError as exc:
        raise ValidationError({"text": exc.messages}) from None
    item = _locked_item(item, deal)
    if item.text == text:
        return item
    before = item.text
    item.text = text
    item.save(update_fields=["text"])
    _record(org, actor, deal, "deal.checklist_item_renamed", {item.checklist.title: [before, text]})
    return item


@transaction.atomic
def checklist_item_toggle(
    *, item: ChecklistItem, actor: Actor, done: bool | None = None, policy=None
) -> ChecklistItem:
    """Tick or untick a step (`done` None: the opposite of what it is)."""
    deal = _lock(item.checklist.deal)
    org = deal.org
    _may_change(policy, deal)
    item = _locked_item(item, deal)
    target = (not item.is_done) if done is None else bool(done)
    if item.is_done == target:
        return item
    item.is_done = target
    item.done_at = timezone.now() if target else None
    item.done_by = _user_of(actor) if target else None
    item.save(update_fields=["is_done", "done_at", "done_by"])
    verb = "deal.checklist_item_done" if target else "deal.checklist_item_undone"
    _record(org, actor, deal, verb, {item.text: [not target, target]})
    return item


@transaction.atomic
def checklist_item_delete(*, item: ChecklistItem, actor: Actor, policy=None) -> None:
    deal = _lock(item.checklist.deal)
    org = deal.org
    _may_change(policy, deal)
    item = _locked_item(item, deal)
    _record(
        org, actor, deal, "deal.checklist_item_deleted", {item.checklist.title: [item.text, None]}
    )
    item.delete()


# Counters --------------------------------------------------------------------------------------


def checklist_progress(checklist: Checklist) -> Progress:
    counts = (
        ChecklistItem.objects.for_org(checklist.org_id)
        .filter(checklist=checklist)
        .aggregate(total=Count("id"), done=Count("id", filter=Q(is_done=True)))
    )
    return Progress(done=counts["done"], total=counts["total"])


def deal_checklists(org, deal: Deal) -> list[Checklist]:
    """The deal's checklists in order, each with its items (`item_list`) and its done/total
    counters (`progress`), in two queries whatever the number of checklists."""
    checklists = list(Checklist.objects.for_org(org).filter(deal=deal).order_by("position", "id"))
    items = (
        ChecklistItem.objects.for_org(org)
        .filter(checklist__in=[c.pk for c in checklists])
        .select_related("done_by")
        .order_by("position", "id")
    )
    by_checklist: dict[int, list[ChecklistItem]] = {c.pk: [] for c in checklists}
    for item in items:
        by_checklist[item.checklist_id].append(item)
    for checklist in checklists:
        checklist.item_list = by_checklist[checklist.pk]
        done = sum(1 for item in checklist.item_list if item.is_done)
        checklist.progress = Progress(done=done, total=len(checklist.item_list))
    return checklists


def deal_progress(org, deal: Deal) -> Progress:
    """Done and total steps over all of the deal's checklists, in one query."""
    counts = (
        ChecklistItem.objects.for_org(org)
        .filter(checklist__deal=deal)
        .aggregate(total=Count("id"), done=Count("id", filter=Q(is_done=True)))
    )
    return Progress(done=counts["done"], total=counts["total"])
