"""Bulk actions on deals: change the owner, move to a stage of the same pipeline, add or
remove tags, archive.

A selection is either the deals the member ticked (public ids) or "all matching" the table's
filter state, re-evaluated here on the server: a client's count is never trusted. The module
right is checked before anything runs (edit; archive needs delete), as is the field rule of a
field the action writes (owner, tags). Then every deal goes through the deal services one by
one, so each is checked for record scope and edit right, audited, put on the timelines and
emitted as a domain event exactly as a change on the deal page would be; a deal outside the
member's scope is skipped, one the service refuses (a stage of another pipeline, an owner
outside the member's scope) fails, and each is reported with its reason.

Small selections run in the request; larger ones become a BackgroundJob ("pipeline.bulk")
that the job runner (crm.jobs) runs chunk by chunk from its stored cursor (the last deal id
done), each chunk in its own transaction with its counts, so a resumed job never applies a
chunk twice. A summary AuditEvent records the whole run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models.functions import Lower
from django.http import QueryDict

from contacts.models import Tag
from crm import jobs
from crm.jobs.background import fail_job, finish_job, starter_policy
from crm.models import BackgroundJob, Membership, User
from crm.services import Actor, audit

from .filters import filter_deals
from .models import Deal, DealTag, Stage
from .selectors import visible_deals
from .services.deals import deal_archive, deal_update

logger = logging.getLogger(__name__)

JOB_KIND = "pipeline.bulk"
# Each deal goes through its service (a dozen queries), so the request does a few hundred at
# most and a job commits every CHUNK_SIZE deals.
INLINE_LIMIT = 100
CHUNK_SIZE = 100
MAX_TAGS = 20
# Per-deal results kept for the member to read (the counts are always complete).
MAX_REPORTED = 200

CHANGED, UNCHANGED, SKIPPED, FAILED = "changed", "unchanged", "skipped", "failed"
OUTCOME_KEYS = ("selected", CHANGED, UNCHANGED, SKIPPED, FAILED)
OUTSIDE_SCOPE = "outside the deals you may change"


class BulkError(Exception):
    """Bad input for a bulk action, with a message fit to show the member."""


@dataclass(frozen=True)
class DealBulkAction:
    key: str
    label: str  # the button
    done_label: str  # "Archived 12 deals"
    right: str  # the pipeline module's right it needs
    field: str | None = None  # the deal field rule it writes, which must be editable
    argument: str | None = None  # "owner" | "stage" | "tags"
    destructive: bool = False  # confirmed in two steps


ACTIONS: dict[str, DealBulkAction] = {
    action.key: action
    for action in [
        DealBulkAction(
            "change_owner",
            "Change owner",
            "Changed the owner of",
            "edit",
            field="owner",
            argument="owner",
            destructive=True,
        ),
        DealBulkAction("move_stage", "Move to stage", "Moved", "edit", argument="stage"),
        DealBulkAction("add_tags", "Add tags", "Tagged", "edit", field="tags", argument="tags"),
        DealBulkAction(
            "remove_tags", "Remove tags", "Untagged", "edit", field="tags", argument="tags"
        ),
        DealBulkAction("archive", "Archive", "Archived", "delete", destructive=True),
    ]
}


def action_allowed(policy, action: DealBulkAction) -> bool:
    if policy is None:
        return True
    if not policy.can("pipeline", action.right):
        return False
    return not (action.field and not policy.can_edit_field(action.field, "pipeline"))


def available_actions(policy, *, archived: bool = False) -> list[DealBulkAction]:
    """The actions this member may run on the table (none on archived deals: they are
    restored one by one on their page)."""
    if archived:
        return []
    return [action for action in ACTIONS.values() if action_allowed(policy, action)]


def get_action(key: str) -> DealBulkAction:
    action = ACTIONS.get(key or "")
    if action is None:
        raise BulkError("Choose an action.")
    return action


# The selection ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """Ticked public ids, or everything the table's filter state (`params`) matches."""

    ids: tuple[str, ...] = ()
    all_matching: bool = False
    params: tuple[tuple[str, str], ...] = ()

    def to_params(self) -> dict:
        return {
            "ids": list(self.ids),
            "all_matching": self.all_matching,
            "params": [list(pair) for pair in self.params],
        }

    @classmethod
    def from_params(cls, data: dict) -> Selection:
        return cls(
            ids=tuple(str(i) for i in data.get("ids") or ()),
            all_matching=bool(data.get("all_matching")),
            params=tuple((str(k), str(v)) for k, v in data.get("params") or ()),
        )

    @property
    def is_empty(self) -> bool:
        return not self.all_matching and not self.ids

    def query(self) -> QueryDict:
        query = QueryDict(mutable=True)
        for name, value in self.params:
            query.appendlist(name, value)
        return query


def clean_ids(raw_ids) -> tuple[str, ...]:
    """The well-formed UUIDs among `raw_ids`, de-duplicated, order kept."""
    import uuid

    out: list[str] = []
    for raw in raw_ids or ():
        try:
            text = str(uuid.UUID(str(raw).strip()))
        except ValueError:
            continue
        if text not in out:
            out.append(text)
    return tuple(out)


def selection_queryset(org, policy, selection: Selection):
    """The selected deals. "All matching" is the member's own deals under the filter (an
    invalid filter matches nothing); ticked ids are looked up in the organization only, so
    the ones outside the member's scope are seen, skipped and reported."""
    if selection.all_matching:
        queryset, _state = filter_deals(
            visible_deals(org, policy, archived=None),
            org=org,
            policy=policy,
            params=selection.query(),
        )
        return queryset.order_by()
    return Deal.objects.for_org(org).filter(public_id__in=list(selection.ids))


# Preparing an action -----------------------------------------------------------------------------


@dataclass
class Prepared:
    action: DealBulkAction
    args: dict  # JSON-safe, as the member sent them (stored on a job)
    owner: User | None = None
    stage: Stage | None = None
    tag_names: list[str] = field(default_factory=list)

    def describe(self) -> str:
        if self.action.argument == "owner" and self.owner is not None:
            return f"to {self.owner.display_name}"
        if self.action.argument == "stage" and self.stage is not None:
            return f"to {self.stage.pipeline.name} › {self.stage.name}"
        if self.action.argument == "tags":
            word = "from" if self.action.key == "remove_tags" else "with"
            return f"{word} " + ", ".join(self.tag_names)
        return ""


def parse_tag_names(raw) -> list[str]:
    """Tag names from a list or text separated by commas; de-duplicated ignoring case."""
    if isinstance(raw, str):
        raw = raw.split(",")
    names: list[str] = []
    seen: set[str] = set()
    limit = Tag._meta.get_field("name").max_length
    for item in raw or ():
        name = " ".join(str(item).split())
        if not name:
            continue
        if len(name) > limit:
            raise BulkError(f"“{name[:30]}…” is too long for a tag ({limit} characters at most).")
        if name.lower() not in seen:
            seen.add(name.lower())
            names.append(name)
    if not names:
        raise BulkError("Type at least one tag.")
    if len(names) > MAX_TAGS:
        raise BulkError(f"Add or remove at most {MAX_TAGS} tags at a time.")
    return names


def assignable_members(org):
    """Active members a deal may be given to."""
    return (
        Membership.objects.for_org(org)
        .active()
        .select_related("user")
        .order_by("user__first_name", "user__last_name", "user__email")
    )


def prepare(org, policy, action_key: str, args: dict | None) -> Prepared:
    """Check the member may run the action (PermissionDenied) and that its argument is valid
    (BulkError)."""
    action = get_action(action_key)
    if not action_allowed(policy, action):
        raise PermissionDenied(f"Your role may not use “{action.label}” on deals.")
    args = {k: v for k, v in (args or {}).items() if isinstance(v, str | list)}
    prepared = Prepared(action=action, args=args)
    if action.argument == "owner":
        target = clean_ids([args.get("owner") or ""])
        membership = (
            assignable_members(org).filter(user__public_id=target[0]).first() if target else None
        )
        if membership is None:
            raise BulkError("Choose a member to give the deals to.")
        prepared.owner = membership.user
    elif action.argument == "stage":
        target = clean_ids([args.get("stage") or ""])
        stage = (
            Stage.objects.for_org(org)
            .select_related("pipeline")
            .filter(public_id=target[0])
            .first()
            if target
            else None
        )
        if stage is None:
            raise BulkError("Choose a stage.")
        prepared.stage = stage
    elif action.argument == "tags":
        prepared.tag_names = parse_tag_names(args.get("tags"))
        prepared.args["tags"] = prepared.tag_names
    return prepared


# Outcomes ----------------------------------------------------------------------------------------


@dataclass
class DealResult:
    public_id: str
    title: str  # empty for a deal the member may not see
    outcome: str
    reason: str = ""


@dataclass
class Outcome:
    selected: int = 0
    changed: int = 0
    unchanged: int = 0
    skipped: int = 0
    failed: int = 0
    results: list[DealResult] = field(default_factory=list)

    def add(self, counts: dict) -> None:
        for key in OUTCOME_KEYS:
            setattr(self, key, getattr(self, key) + int(counts.get(key) or 0))

    def counts(self) -> dict:
        return {key: getattr(self, key) for key in OUTCOME_KEYS}

    @property
    def problems(self) -> list[DealResult]:
        """The deals that were skipped or failed, with their reasons."""
        return [r for r in self.results if r.outcome in (SKIPPED, FAILED)]


def _deals(number: int) -> str:
    return f"{number:,} deal" + ("" if number == 1 else "s")


def summary_text(prepared: Prepared, outcome: Outcome) -> str:
    """The outcome in a sentence or two, e.g. "Archived 12 deals. 3 skipped (...)."."""
    action = prepared.action
    if action.key == "remove_tags":
        text = f"Removed {', '.join(prepared.tag_names)} from {_deals(outcome.changed)}."
    else:
        detail = prepared.describe()
        text = f"{action.done_label} {_deals(outcome.changed)}" + (f" {detail}" if detail else "")
        text += "."
    notes = []
    if outcome.unchanged:
        notes.append(f"{outcome.unchanged:,} needed no change")
    if outcome.skipped:
        notes.append(f"{outcome.skipped:,} skipped")
    if outcome.failed:
        notes.append(f"{outcome.failed:,} could not be changed")
    if notes:
        sentence = "; ".join(notes)
        text += " " + sentence[0].upper() + sentence[1:] + "."
    return text


def confirm_texts(prepared: Prepared, count: int) -> tuple[str, str]:
    """The confirmation's question and its button, both naming the number."""
    n = _deals(count)
    if prepared.action.key == "change_owner":
        return f"Change the owner of {n} {prepared.describe()}?", f"Change owner of {n}"
    return f"Archive {n}?", f"Archive {n}"


# Running ---------------------------------------------------------------------------------------


@dataclass
class _Run:
    org: object
    actor: Actor
    policy: object
    prepared: Prepared
    tags: list[Tag] = field(default_factory=list)
    outcome: Outcome = field(default_factory=Outcome)

    def report(self, deal: Deal, outcome: str, reason: str = "", *, visible: bool = True):
        """Keep the deal's result (the first MAX_REPORTED of a run) and return its outcome. A
        deal outside the member's scope is reported without its title."""
        if len(self.outcome.results) < MAX_REPORTED:
            self.outcome.results.append(
                DealResult(str(deal.public_id), deal.title if visible else "", outcome, reason)
            )
        return outcome


def _tags_named(org, names: list[str]):
    lowered = [name.lower() for name in names]
    return Tag.objects.for_org(org).alias(name_lower=Lower("name")).filter(name_lower__in=lowered)


def _ensure_tags(org, actor: Actor, names: list[str]) -> list[Tag]:
    """The org's tags with these names; missing ones are created (and audited) by the
    contacts service, as the deal services do."""
    from contacts.services.contacts import tag_get_or_create

    existing = {t.name.lower(): t for t in _tags_named(org, names)}
    return [
        existing.get(name.lower()) or tag_get_or_create(org=org, actor=actor, name=name)
        for name in names
    ]


def start_run(org, actor: Actor, policy, prepared: Prepared) -> _Run:
    run = _Run(org=org, actor=actor, policy=policy, prepared=prepared)
    if prepared.action.key == "add_tags":
        with transaction.atomic():
            run.tags = _ensure_tags(org, actor, prepared.tag_names)
    elif prepared.action.key == "remove_tags":
        run.tags = list(_tags_named(org, prepared.tag_names))  # never creates a tag
    return run


def _apply(run: _Run, deal: Deal, current_tags: list[Tag]) -> str:
    """One deal through its service; the outcome (and its reason) is reported."""
    prepared, policy = run.prepared, run.policy
    key = prepared.action.key
    if policy is not None and not policy.owns_in_scope("pipeline", deal.owner_id):
        return run.report(deal, SKIPPED, OUTSIDE_SCOPE, visible=False)
    if deal.is_archived:
        if key == "archive":
            return run.report(deal, UNCHANGED)
        return run.report(deal, SKIPPED, "archived: restore it first")
    data = None
    if key == "change_owner":
        if deal.owner_id == prepared.owner.pk:
            return run.report(deal, UNCHANGED)
        data = {"owner": prepared.owner}
    elif key == "move_stage":
        if deal.pipeline_id != prepared.stage.pipeline_id:
            return run.report(deal, SKIPPED, "in another pipeline")
        if deal.stage_id == prepared.stage.pk:
            return run.report(deal, UNCHANGED)
        data = {"stage": prepared.stage}
    elif key == "add_tags":
        have = {tag.pk for tag in current_tags}
        missing = [tag for tag in run.tags if tag.pk not in have]
        if not missing:
            return run.report(deal, UNCHANGED)
        data = {"tags": [*current_tags, *missing]}
    elif key == "remove_tags":
        removing = {tag.pk for tag in run.tags}
        if not any(tag.pk in removing for tag in current_tags):
            return run.report(deal, UNCHANGED)
        data = {"tags": [tag for tag in current_tags if tag.pk not in removing]}
    deal.org = run.org  # the same row: the services read deal.org
    try:
        with transaction.atomic():
            if key == "archive":
                deal_archive(deal=deal, actor=run.actor, policy=policy)
            else:
                deal_update(deal=deal, actor=run.actor, data=data or {}, policy=policy)
    except ValidationError as exc:
        return run.report(deal, FAILED, " ".join(exc.messages))
    except PermissionDenied as exc:
        return run.report(deal, SKIPPED, str(exc) or OUTSIDE_SCOPE)
    return run.report(deal, CHANGED)


def process_chunk(run: _Run, ids: list[int]) -> dict:
    """Apply the action to the deals `ids` (the caller holds the transaction)."""
    deals = list(Deal.objects.for_org(run.org).filter(pk__in=ids).order_by("pk"))
    tags: dict[int, list[Tag]] = {}
    if run.prepared.action.argument == "tags":
        for link in DealTag.objects.filter(org=run.org, deal_id__in=ids).select_related("tag"):
            tags.setdefault(link.deal_id, []).append(link.tag)
    counts = dict.fromkeys(OUTCOME_KEYS, 0)
    counts["selected"] = len(ids)
    for deal in deals:
        counts[_apply(run, deal, tags.get(deal.pk, []))] += 1
    # A deal deleted since the chunk's ids were read is gone: nothing to change.
    counts[SKIPPED] += len(ids) - len(deals)
    return counts


def _audit_summary(run: _Run, outcome: Outcome, selection: Selection) -> None:
    audit(
        org=run.org,
        actor=run.actor,
        verb="deals.bulk_action",
        object_type="deal",
        object_repr=summary_text(run.prepared, outcome)[:200],
        changes={
            "action": run.prepared.action.key,
            "arguments": run.prepared.args,
            "selection": "all matching" if selection.all_matching else "selected",
            **outcome.counts(),
        },
    )


@dataclass
class Preview:
    selected: int  # what the selection names (ticked ids, or the deals matching)
    found: int  # of those, deals of this organization


def bulk_preview(org, policy, selection: Selection) -> Preview:
    if selection.all_matching:
        count = selection_queryset(org, policy, selection).count()
        return Preview(count, count)
    found = selection_queryset(org, policy, selection).count()
    return Preview(len(selection.ids), found)


def bulk_apply_inline(*, org, actor: Actor, policy, prepared: Prepared, selection: Selection):
    """Run the action now, chunk by chunk (for small selections)."""
    run = start_run(org, actor, policy, prepared)
    queryset = selection_queryset(org, policy, selection)
    outcome = run.outcome
    if not selection.all_matching:
        # Ids that name no deal of this organization: counted, never looked at further.
        missing = len(selection.ids) - queryset.count()
        outcome.add({"selected": missing, SKIPPED: missing})
    jobs.each_chunk(
        lambda cursor: jobs.ids_after(queryset, cursor, CHUNK_SIZE),
        lambda ids: outcome.add(process_chunk(run, ids)),
    )
    with transaction.atomic():
        _audit_summary(run, outcome, selection)
    return outcome


@dataclass
class Started:
    """What `bulk_start` did: ran it (outcome) or queued a job."""

    outcome: Outcome | None = None
    job: BackgroundJob | None = None
    summary: str = ""


def bulk_start(
    *,
    org,
    actor: Actor,
    policy,
    prepared: Prepared,
    selection: Selection,
    preview: Preview,
    return_url: str = "",
) -> Started:
    """Run small selections in the request, queue large ones as a background job."""
    if selection.is_empty or preview.selected == 0:
        raise BulkError("Select at least one deal.")
    if preview.found <= INLINE_LIMIT:
        outcome = bulk_apply_inline(
            org=org, actor=actor, policy=policy, prepared=prepared, selection=selection
        )
        return Started(outcome=outcome, summary=summary_text(prepared, outcome))
    missing = preview.selected - preview.found
    title = f"{prepared.action.label}: {_deals(preview.found)}"
    with transaction.atomic():
        job = BackgroundJob.objects.for_org(org).create(
            org=org,
            kind=JOB_KIND,
            created_by=actor.user,
            total=preview.found,
            result={"selected": missing, SKIPPED: missing} if missing else {},
            params={
                "action": prepared.action.key,
                "args": prepared.args,
                "selection": selection.to_params(),
                "title": title,
                "return_url": return_url,
                "ip": actor.ip,
            },
        )
        audit(
            org=org,
            actor=actor,
            verb="job.queued",
            obj=job,
            object_repr=title,
            changes={"action": prepared.action.key, "total": preview.found},
        )
        jobs.enqueue(job)
    return Started(job=job, summary=f"{title}: running in the background.")


@jobs.runner(JOB_KIND, model="crm.BackgroundJob", give_up=fail_job)
def run_deal_bulk_job(job: BackgroundJob) -> None:
    """Run a claimed bulk job on deals to the end (resuming from its cursor), with the rights
    its starter has now."""
    policy = starter_policy(job)
    if policy is None:
        fail_job(job, "The member who started this job is no longer active.")
        return
    params = job.params or {}
    try:
        prepared = prepare(job.org, policy, params.get("action"), params.get("args"))
    except (BulkError, PermissionDenied) as exc:
        fail_job(job, str(exc))
        return
    actor = Actor.for_user(job.created_by, ip=params.get("ip"))
    selection = Selection.from_params(params.get("selection") or {})
    run = start_run(job.org, actor, policy, prepared)
    queryset = selection_queryset(job.org, policy, selection)
    finished = jobs.run_chunks(
        job,
        next_ids=lambda cursor: jobs.ids_after(queryset, cursor, CHUNK_SIZE),
        process=lambda ids: process_chunk(run, ids),
    )
    if not finished:
        return
    outcome = Outcome()
    outcome.add(BackgroundJob.objects.for_org(job.org_id).get(pk=job.pk).result or {})
    summary = summary_text(prepared, outcome)
    problems = [r for r in run.outcome.problems if r.title][:5]
    if problems:
        summary += " " + "; ".join(f"“{r.title}”: {r.reason}" for r in problems) + "."
    with transaction.atomic():
        _audit_summary(run, outcome, selection)
        finish_job(job, summary)
