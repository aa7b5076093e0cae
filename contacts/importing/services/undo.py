"""Undoing an import: delete what it created and restore what it changed, as a background job
that resumes where its last committed batch stopped."""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import replace

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import DatabaseError, OperationalError, connection, transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from compliance.services.consent import ConsentVia, consent_context, erasure_mode
from crm import jobs
from crm.models import AuditEvent
from crm.services.audit import Actor, audit, emit_event
from crm.services.notifications import notify

from ...models import Contact
from .. import selectors
from ..engine import CONTACT_COLUMNS
from ..models import ImportJob
from .access import require_import_in_scope, require_import_rights

log = logging.getLogger(__name__)

JOB_KIND = "contacts.import_undo"
# What the member reads when the undo lost its worker too often in a row.
GAVE_UP = (
    "its worker stopped answering {times} times in a row without finishing a batch "
    "(a file that makes it run out of memory can do that)"
)


# Undo ---------------------------------------------------------------------------------
#
# Undo runs as a background job, like the import: the request only moves the job to
# UNDOING and queues `run_undo`, which works in batches of UNDO_BATCH contacts. Each batch
# locks the job row, reads where the last committed batch left off, does its work and moves
# that position on in one transaction, so a worker that dies is resumed by the next run
# without doing or counting anything twice.

UNDO_BATCH = 2000
UNDO_EDITED_LISTED = 500
UNDOABLE = (ImportJob.Status.DONE, ImportJob.Status.CANCELLED, ImportJob.Status.FAILED)
# What a batch changes on the job (with the heartbeat that keeps other workers off it).
UNDO_PROGRESS_FIELDS = [
    "undo_phase",
    "undo_after_record",
    "undo_part",
    "undo_part_position",
    "undo_done",
    "undo_total",
    "undo_result",
    "heartbeat_at",
    "takeovers",
]

_UNDO_CASTS = {
    "smallint": "::smallint",
    "bigint": "::bigint",
    "timestamptz": "::timestamptz",
    "boolean": "::boolean",
    "text": "",
}


def import_undo(*, job: ImportJob, actor: Actor, policy) -> ImportJob:
    """Start undoing the import in the background: delete what it created and restore what
    it changed, except records edited since (those are kept and listed).

    Undo deletes and restores contacts, so it is for a member who could do that by hand to
    every one of them: with the right to delete contacts, and a scope that covers each
    contact it would touch. Otherwise nothing is undone and the member is told why."""
    require_import_rights(policy)
    if not policy.can("contacts", "delete"):
        raise PermissionDenied("Undoing an import deletes contacts; your role may not.")
    require_import_in_scope(job, policy)
    with transaction.atomic():
        outside = selectors.undo_outside_scope(job, policy)
        if outside:
            raise ValidationError(undo_scope_refusal(outside))
        # One conditional UPDATE decides, so two clicks (or two tabs) start one undo.
        started = (
            ImportJob.objects.for_org(job.org_id)
            .filter(pk=job.pk, status__in=UNDOABLE, undone_at__isnull=True)
            .update(
                status=ImportJob.Status.UNDOING,
                status_before_undo=F("status"),
                undo_by=actor.user,
                undo_by_type=actor.type,
                undo_by_label=actor.label[:200],
                undo_by_ip=actor.ip,
                kind=JOB_KIND,
                # The import's last worker must not hold the undo's worker off.
                claimed_by="",
                heartbeat_at=None,
                takeovers=0,
            )
        )
        job.refresh_from_db()
        if not started:
            raise ValidationError(_undo_refusal(job))
        if "failure" in job.undo_result:
            # Starting again after an undo stopped on an error carries on where it stopped.
            del job.undo_result["failure"]
            job.save(update_fields=["undo_result"])
        audit(
            org=job.org,
            actor=actor,
            verb="import.undo_started",
            obj=job,
            changes={"status": [job.status_before_undo, job.status]},
        )
        jobs.enqueue(job)
    return job


def undo_scope_refusal(outside: int) -> str:
    contacts = "1 contact" if outside == 1 else f"{outside} contacts"
    return (
        f"You can't undo this import: {contacts} it created or changed "
        f"{'is' if outside == 1 else 'are'} outside the records your role may delete. "
        "Ask a member whose role covers them."
    )


def _undo_refusal(job: ImportJob) -> str:
    if job.status == ImportJob.Status.UNDOING:
        return "This import is already being undone."
    if job.status == ImportJob.Status.UNDONE or job.undone_at:
        return "This import was already undone."
    return "Only a finished import can be undone."


def _undo_gave_up(job: ImportJob, _message: str) -> None:
    job = ImportJob.objects.for_org(job.org_id).select_related("org", "undo_by").get(pk=job.pk)
    reason = GAVE_UP.format(times=job.takeovers + 1)
    log.error("undo of import %s stopped: %s", job.pk, reason)
    _undo_failed(job, job.org, _undo_actor(job), reason)


@jobs.runner(
    JOB_KIND,
    model="contacts.ImportJob",
    waiting=("undoing",),
    running="undoing",
    give_up=_undo_gave_up,
)
def run_claimed_undo(job: ImportJob) -> ImportJob:
    """The undo's work, batch by batch, from where the last committed batch left off."""
    job = ImportJob.objects.for_org(job.org_id).select_related("org", "undo_by").get(pk=job.pk)
    org, actor = job.org, _undo_actor(job)
    started = time.monotonic()
    try:
        while not _undo_step(job, org, actor):
            pass
    except OperationalError:
        # The database went away: hand the undo back so the retried task claims it at once
        # (if the database is still unreachable, the sweep sends it again later).
        with contextlib.suppress(DatabaseError):
            jobs.release(job)
        raise
    except Exception as exc:
        log.exception("undo of import %s failed", job.pk)
        _undo_failed(job, org, actor, exc)
    else:
        log.info("undo of import %s done in %.1fs", job.pk, time.monotonic() - started)
    job.org = org
    return job


def run_undo(*, org_id: int, job_id: int) -> ImportJob | None:
    """Claim and run an undo here, in this process (tests, the command line); None when it
    is not ours to run."""
    return jobs.run_inline(JOB_KIND, org_id, job_id)


def _undo_actor(job: ImportJob) -> Actor:
    """The person who asked for the undo, as the worker audits and notifies them."""
    return Actor(
        type=job.undo_by_type or AuditEvent.ActorType.SYSTEM,
        user=job.undo_by,
        label=job.undo_by_label or "import undo",
        ip=job.undo_by_ip,
    )


def _undo_step(job: ImportJob, org, actor: Actor) -> bool:
    """One batch in its own transaction; True once there is nothing left for this worker."""
    with transaction.atomic():
        # Read afresh under the lock: should a worker presumed dead wake up, the two take
        # turns batch by batch instead of doing one twice.
        job.refresh_from_db(from_queryset=ImportJob.objects.for_org(job.org_id).select_for_update())
        if job.status != ImportJob.Status.UNDOING:
            return True
        if not job.undo_phase:
            _undo_begin(job)
        elif job.undo_phase == ImportJob.UndoPhase.RESTORE:
            if not _restore_batch(job, actor):
                job.undo_phase = ImportJob.UndoPhase.DELETE
        elif not _delete_batch(job, actor):
            _undo_finish(job, org, actor)
            return True
        job.heartbeat_at = timezone.now()
        job.takeovers = 0
        job.save(update_fields=UNDO_PROGRESS_FIELDS)
    return False


def _undo_begin(job: ImportJob) -> None:
    job.undo_total = selectors.undo_total(job)
    job.undo_done = 0
    job.undo_phase = ImportJob.UndoPhase.RESTORE
    job.undo_after_record = job.undo_part = job.undo_part_position = 0
    job.undo_result = {"deleted": 0, "restored": 0, "kept_edited": 0, "edited_contact_ids": []}


def _tally(job: ImportJob, *, deleted: int = 0, restored: int = 0, edited=()) -> None:
    result = job.undo_result
    result["deleted"] = result.get("deleted", 0) + deleted
    result["restored"] = result.get("restored", 0) + restored
    result["kept_edited"] = result.get("kept_edited", 0) + len(edited)
    listed = {*result.get("edited_contact_ids", []), *edited}
    result["edited_contact_ids"] = sorted(listed)[:UNDO_EDITED_LISTED]


def _lock_contacts(org_id: int, ids: list[int]) -> dict:
    """{id: updated_at} of those of `ids` that still exist, locked (in id order, as every
    batch locks them) so no edit slips in between the check and the undo."""
    return dict(
        Contact.objects.for_org(org_id)
        .filter(pk__in=ids)
        .order_by("pk")
        .select_for_update()
        .values_list("pk", "updated_at")
    )


def _restore_batch(job: ImportJob, actor: Actor) -> bool:
    """Phase 1: put back the values of the next batch of contacts the import updated."""
    records = selectors.updated_after(job, job.undo_after_record, UNDO_BATCH)
    if not records:
        return False
    current = _lock_contacts(job.org_id, [contact_id for _, contact_id, _ in records])
    edited, restore = [], []
    for record_id, contact_id, written_at in records:
        if contact_id not in current:
            continue  # deleted since: nothing to put back
        if current[contact_id] > written_at:
            edited.append(contact_id)
        else:
            restore.append(record_id)
    with connection.cursor() as cur:
        restored = _restore_updated(cur, job, restore, actor)
    _tally(job, restored=restored, edited=edited)
    job.undo_after_record = records[-1][0]
    job.undo_done += len(records)
    return True


def _delete_batch(job: ImportJob, actor: Actor) -> bool:
    """Phase 2: delete the next batch of contacts the import created."""
    batch = selectors.created_after(job, job.undo_part, job.undo_part_position, UNDO_BATCH)
    if not batch.contacts:
        return False
    current = _lock_contacts(job.org_id, [contact_id for contact_id, _ in batch.contacts])
    edited: list[int] = []
    doomed: list[int] = []
    for contact_id, written_at in batch.contacts:
        if contact_id in current:
            (edited if current[contact_id] > written_at else doomed).append(contact_id)
    deleted = _delete_created(job, doomed, actor)
    _tally(job, deleted=deleted, edited=edited)
    job.undo_part, job.undo_part_position = batch.next_part, batch.next_position
    job.undo_done += len(batch.contacts)
    return True


def _undo_finish(job: ImportJob, org, actor: Actor) -> None:
    tally = job.undo_result
    result = {
        "deleted": tally.get("deleted", 0),
        "restored": tally.get("restored", 0),
        "kept_edited": tally.get("kept_edited", 0),
        "edited_contact_ids": tally.get("edited_contact_ids", []),
    }
    now = timezone.now()
    job.status = ImportJob.Status.UNDONE
    job.undone_at = now
    job.undo_result = result
    job.heartbeat_at = now
    job.claimed_by = ""
    job.save(update_fields=["status", "undone_at", "claimed_by", *UNDO_PROGRESS_FIELDS])
    audit(
        org=org,
        actor=actor,
        verb="import.undone",
        obj=job,
        changes={k: [None, v] for k, v in result.items() if k != "edited_contact_ids"},
    )
    emit_event(
        org=org,
        event_type="contacts.import_undone",
        payload={"import": str(job.public_id), **result},
    )
    _notify_undo(
        job, org, title=f"Undo of {job.file_name} finished", body=_undo_counts_text(result)
    )


def _undo_failed(job: ImportJob, org, actor: Actor, exc: Exception | str) -> None:
    """Give the job back its finished status, keep what was undone, and say so."""
    message = (
        f"The undo stopped: {exc}. Contacts it already deleted or restored stay that way; "
        "undo the import again to finish the rest."
    )
    with transaction.atomic():
        job.refresh_from_db(from_queryset=ImportJob.objects.for_org(job.org_id).select_for_update())
        if job.status != ImportJob.Status.UNDOING:
            return
        job.status = job.status_before_undo or ImportJob.Status.DONE
        job.undo_result = {**job.undo_result, "failure": message}
        job.heartbeat_at = None
        job.claimed_by = ""
        job.save(update_fields=["status", "undo_result", "heartbeat_at", "claimed_by"])
        audit(
            org=org,
            actor=actor,
            verb="import.undo_failed",
            obj=job,
            changes={"failure": [None, message]},
        )
        body = f"{message}\nSo far: {_undo_counts_text(job.undo_result)}"
        _notify_undo(job, org, title=f"Undo of {job.file_name} stopped", body=body, level="error")


def _undo_counts_text(result: dict) -> str:
    deleted, restored = result.get("deleted", 0), result.get("restored", 0)
    kept = result.get("kept_edited", 0)
    text = (
        f"{deleted} contact{'' if deleted == 1 else 's'} deleted, "
        f"{restored} restored to their values before the import"
    )
    if kept:
        verb = "was" if kept == 1 else "were"
        text += f", {kept} kept because {'it' if kept == 1 else 'they'} {verb} edited since"
    return text + "."


def _notify_undo(job: ImportJob, org, *, title: str, body: str, level: str = "success") -> None:
    if job.undo_by is None:
        return  # the member who asked has left
    url = reverse("contacts:import_detail", args=[job.public_id])
    notify(
        org=org,
        user=job.undo_by,
        title=title,
        body=body,
        url=url,
        level=level,
        email=True,
        absolute_url=settings.SITE_URL + url,
    )


def _undo_audit_params(job: ImportJob, actor: Actor) -> list:
    """The parameters Undo's audit rows start with: org, who (type, user, label), the file
    named in their changes, and the ip."""
    user_id = getattr(actor.user, "id", None)
    return [job.org_id, actor.type, user_id, actor.label, job.file_name, actor.ip]


def _delete_created(job: ImportJob, ids: list[int], actor: Actor) -> int:
    """Audit and delete these contacts the import created, through the ORM: the database's
    foreign keys do not cascade (Django does), so a plain DELETE would fail on the timeline,
    notes, tags and anything else that hangs off a contact."""
    if not ids:
        return 0
    with connection.cursor() as cur:
        cur.execute(
            """
            INSERT INTO crm_auditevent (org_id, public_id, created_at, actor_type, actor_user_id,
                                        actor_label, verb, object_type, object_id, object_repr,
                                        changes, ip_address)
            SELECT %s, gen_random_uuid(), now(), %s, %s, %s, 'contact.deleted', 'contact',
                   c.public_id::text, left(btrim(c.first_name || ' ' || c.last_name || ' '
                   || c.email), 200), jsonb_build_object('undo_import', %s::text), %s
              FROM contacts_contact c
             WHERE c.org_id = %s AND c.id = ANY(%s)
            """,
            [*_undo_audit_params(job, actor), job.org_id, ids],
        )
    # Their consent ledger goes with them: the undo takes the import back as though it had
    # never happened (the audit rows above keep that it did).
    with erasure_mode():
        _, per_model = Contact.objects.for_org(job.org_id).filter(pk__in=ids).delete()
    return per_model.get(Contact._meta.label, 0)


def _restore_updated(cur, job: ImportJob, record_ids: list[int], actor: Actor) -> int:
    """Put back the values these records of the import replaced; the number restored."""
    if not record_ids:
        return 0
    sets = []
    for col, sql_type in CONTACT_COLUMNS.items():
        name = col.removesuffix("_id") if col == "owner_id" else col
        cast = _UNDO_CASTS[sql_type]
        value = f"(r.changes->'{name}'->>0){cast}"
        if sql_type == "text":
            value = f"coalesce(r.changes->'{name}'->>0, '')"
        sets.append(f"{col} = CASE WHEN r.changes ? '{name}' THEN {value} ELSE c.{col} END")
    sets.append(
        "company_id = CASE WHEN r.changes ? 'company' "
        "THEN (r.changes->'company'->>0)::bigint ELSE c.company_id END"
    )
    sets.append(
        "custom = CASE WHEN r.changes ? 'custom' THEN r.changes->'custom'->0 ELSE c.custom END"
    )
    sets.append(
        "other_emails = CASE WHEN r.changes ? 'other_emails' "
        "THEN r.changes->'other_emails'->0 ELSE c.other_emails END"
    )
    cur.execute(
        """
        INSERT INTO crm_auditevent (org_id, public_id, created_at, actor_type, actor_user_id,
                                    actor_label, verb, object_type, object_id, object_repr,
                                    changes, ip_address)
        SELECT %s, gen_random_uuid(), now(), %s, %s, %s, 'contact.updated', 'contact',
               c.public_id::text, left(btrim(c.first_name || ' ' || c.last_name), 200),
               (SELECT jsonb_object_agg(key, jsonb_build_array(value->1, value->0))
                  FROM jsonb_each(r.changes)) || jsonb_build_object('undo_import', %s::text), %s
          FROM contacts_importrecord r JOIN contacts_contact c ON c.id = r.contact_id
         WHERE r.job_id = %s AND r.action = 'updated' AND r.id = ANY(%s) AND c.org_id = %s
        """,
        [*_undo_audit_params(job, actor), job.id, record_ids, job.org_id],
    )
    # Tags the import added come off again (it never removes tags, so there is nothing
    # to put back).
    cur.execute(
        """
        DELETE FROM contacts_contact_tags ct
         USING contacts_importrecord r, contacts_tag t
         WHERE r.job_id = %s AND r.action = 'updated' AND r.id = ANY(%s) AND r.changes ? 'tags'
           AND ct.contact_id = r.contact_id AND t.id = ct.tag_id AND t.org_id = %s
           AND lower(t.name) IN (SELECT lower(x)
                                   FROM jsonb_array_elements_text(r.changes->'tags'->1) x)
        """,
        [job.id, record_ids, job.org_id],
    )
    via = ConsentVia.from_actor(actor, source=f"Undo of the import of {job.file_name}"[:200])
    with consent_context(replace(via, kind="import", evidence=job.timeline_data)):
        _restore_values(cur, job, record_ids, sets)
    return cur.rowcount


def _restore_values(cur, job: ImportJob, record_ids: list[int], sets: list[str]) -> None:
    cur.execute(
        f"""
        UPDATE contacts_contact c SET {", ".join(sets)}, updated_at = now()
          FROM contacts_importrecord r
         WHERE r.job_id = %s AND r.action = 'updated' AND r.id = ANY(%s)
           AND c.id = r.contact_id AND c.org_id = %s
        """,  # noqa: S608 -- column names come from the engine's constant list
        [job.id, record_ids, job.org_id],
    )
