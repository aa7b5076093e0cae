"""The import's writes: upload, mapping, start, cancel, run, undo."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import logging
import os
import re
import time

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import DatabaseError, OperationalError, connection, transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify

from crm.models import AuditEvent
from crm.services.audit import Actor, audit, emit_event
from crm.services.notifications import notify

from ..custom_fields import RESERVED_KEYS
from ..fields import CUSTOM_PREFIX, contact_field_catalog
from ..models import Contact, CustomFieldDefinition
from ..services import customfield_create
from . import matching, selectors
from .ai_mapping import refine_with_llm
from .detect import DELIMITERS, ENCODING_LABELS
from .engine import CONTACT_COLUMNS, ImportCancelled, Importer
from .mapper import (
    COMBINED_TARGETS,
    CUSTOM,
    CUSTOM_TYPES,
    EXTRA_TARGETS,
    SKIP,
    custom_type_for,
    suggest_mapping,
)
from .models import ImportJob, SavedMapping
from .reader import record_count, sniff_file

log = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = getattr(settings, "IMPORT_MAX_UPLOAD_MB", 200) * 1024 * 1024
ALLOWED_EXTENSIONS = (".csv", ".tsv", ".txt", ".xlsx")
STALE_AFTER_SECONDS = 120
# A queued job no worker has taken for this long gets its task sent again (see
# `resend_stalled_jobs`); the wait keeps a busy queue from filling with extra messages.
RESEND_WAITING_AFTER_SECONDS = 600
# A job whose worker went quiet is taken over at most this many times in a row (without a
# committed chunk or batch in between); the next time, it fails.
MAX_TAKEOVERS = 2
GAVE_UP = (
    "its worker stopped answering {times} times in a row without finishing a {unit} "
    "(a file that makes it run out of memory can do that)"
)


def max_upload_bytes() -> int:
    """The upload limit, read when asked so a changed setting applies without a restart."""
    return getattr(settings, "IMPORT_MAX_UPLOAD_MB", 200) * 1024 * 1024


def require_import_rights(policy) -> None:
    if not (policy.can("contacts", "create") or policy.can("contacts", "edit")):
        raise PermissionDenied("Your role may not import contacts.")


def require_import_in_scope(job: ImportJob, policy) -> None:
    """An import is its creator's: only they, and members whose contacts scope covers them,
    may change, start, cancel or undo it (the views answer 404 before this is reached)."""
    require_import_rights(policy)
    if not policy.owns_in_scope("contacts", job.created_by_id):
        raise PermissionDenied("This import belongs to someone outside your records.")


def owner_refusal(policy) -> str:
    """What a member is told when they name an owner they may not give contacts to."""
    scope = policy.scope("contacts")
    if scope == "all":
        return "Choose an active member as owner."
    if scope == "team" and policy.membership is not None and policy.membership.team_id:
        return "You may give imported contacts only to yourself or a member of your team."
    return "You may give imported contacts only to yourself."


def headers_signature(headers: list[str]) -> str:
    norm = "\x1f".join(h.strip().lower() for h in headers)
    return hashlib.sha256(norm.encode()).hexdigest()


def import_targets(org, policy) -> list[tuple[str, str, str]]:
    """(key, label, group) of every target a column may go to, for this member."""
    targets = []
    for spec in contact_field_catalog(org):
        if not spec.editable:
            continue
        if not policy.can_edit_field(spec.key):
            continue
        targets.append((spec.key, spec.label, spec.group))
    editable = {k for k, _, _ in targets}
    for key, label, group in EXTRA_TARGETS:
        if key == "full_name" and not {"first_name", "last_name"} & editable:
            continue
        if key.startswith("company") and "company" not in editable:
            continue
        if not set(COMBINED_TARGETS.get(key, ())) <= editable:
            continue  # a combined cell fills every one of its fields
        targets.append((key, label, group))
    return targets


# Upload -------------------------------------------------------------------------------


# Not atomic as a whole: the suggestions may ask the AI provider (seconds), and no
# transaction may be open while they do. The writes below are one transaction.
def import_create(*, org, actor: Actor, policy, upload) -> ImportJob:
    require_import_rights(policy)
    name = os.path.basename(upload.name or "upload.csv")
    if not name.lower().endswith(ALLOWED_EXTENSIONS):
        raise ValidationError({"file": "Upload a .csv, .tsv, .txt or .xlsx file."})
    if upload.size == 0:
        raise ValidationError({"file": "The file is empty."})
    if upload.size > max_upload_bytes():
        limit = max_upload_bytes() // (1024 * 1024)
        raise ValidationError({"file": f"The file is larger than the {limit} MB limit."})
    try:
        kind, found = sniff_file(upload, name)
    except ValidationError as exc:  # over a bound (limits.FileRefused): it says which
        raise ValidationError({"file": exc.messages}) from None
    except Exception as exc:  # a broken workbook or binary junk
        raise ValidationError({"file": f"This file can't be read: {exc}"}) from None
    if not found.headers or len(found.headers) < 1:
        raise ValidationError({"file": "No header row was found in this file."})
    job = ImportJob(
        org=org,
        created_by=actor.user,
        file_name=name[:255],
        file_size=upload.size,
        file_kind=kind,
        encoding=found.encoding,
        delimiter=found.delimiter,
        header_row=found.header_row,
        headers=found.headers,
    )
    _suggest(job, found.sample_rows, policy)
    with transaction.atomic():
        upload.seek(0)
        job.file.save(f"{org.public_id}/{slugify(name)[:80] or 'import'}", upload, save=False)
        job.save()
        audit(
            org=org,
            actor=actor,
            verb="import.uploaded",
            obj=job,
            changes={"file": [None, name], "size": [None, upload.size]},
        )
    return job


def _suggest(job: ImportJob, sample_rows, policy) -> None:
    """Fill the job's suggestions and mapping. Call it outside a transaction: it may ask
    the AI provider."""
    targets = import_targets(job.org, policy)
    custom_labels = {
        spec.key: spec.label for spec in contact_field_catalog(job.org) if spec.is_custom
    }
    suggestions = suggest_mapping(
        job.headers,
        sample_rows,
        allowed_targets={k for k, _, _ in targets},
        custom_labels=custom_labels,
    )
    suggestions, ai_note = refine_with_llm(
        suggestions, sample_rows, job.headers, targets, org=job.org, policy=policy
    )
    # Why the AI did not help, for the mapping page (like "saved_mapping" below).
    job.defaults = {**(job.defaults or {}), "ai_note": ai_note}
    if not policy.can("settings", "edit"):
        # Only admins create custom fields; others skip what they can't store.
        for s in suggestions:
            if s.target == CUSTOM:
                s.target = SKIP
    job.suggestions = [
        {
            "column": s.column,
            "target": s.target,
            "confidence": round(s.confidence, 2),
            "reason": s.reason,
            # The kind of field "Store as custom field" creates unless the member changes it.
            "custom_type": custom_type_for([r[i] for r in sample_rows or [] if i < len(r)]),
        }
        for i, s in enumerate(suggestions)
    ]
    saved = (
        SavedMapping.objects.for_org(job.org)
        .filter(headers_signature=headers_signature(job.headers))
        .first()
    )
    if saved is not None:
        job.mapping = {h: saved.mapping.get(h, SKIP) for h in job.headers}
        # Its matched values too: the next file from the same system needs no clicks.
        job.value_map = {h: v for h, v in (saved.value_map or {}).items() if h in job.headers}
        job.defaults = {**(job.defaults or {}), "saved_mapping": saved.name}
    else:
        job.mapping = {s["column"]: s["target"] for s in job.suggestions}


def import_redetect(
    *, job: ImportJob, actor: Actor, policy, encoding=None, delimiter=None, header_row=None
) -> ImportJob:
    """Apply the user's correction of what detection found. Not atomic as a whole, like
    import_create: the suggestions may ask the AI provider first."""
    require_import_in_scope(job, policy)
    _editable(job)
    if encoding and encoding not in ENCODING_LABELS and encoding not in {"utf-16-le", "utf-16-be"}:
        raise ValidationError({"encoding": "Choose one of the listed encodings."})
    if delimiter and delimiter not in DELIMITERS:
        raise ValidationError({"delimiter": "Choose comma, semicolon, tab or pipe."})
    if header_row is not None and not 0 <= header_row <= 100:
        raise ValidationError({"header_row": "The header must be within the first 100 lines."})
    with job.file.open("rb") as fh:
        overrides = {"header_row": header_row}
        if job.file_kind == "csv":
            overrides.update(
                encoding=encoding or job.encoding, delimiter=delimiter or job.delimiter
            )
        _, found = sniff_file(fh, job.file_name, **overrides)
    job.encoding, job.delimiter = found.encoding, found.delimiter
    job.header_row, job.headers = found.header_row, found.headers
    _suggest(job, found.sample_rows, policy)
    with transaction.atomic():
        # The import may have been started while the suggestions were made.
        _editable(ImportJob.objects.for_org(job.org).select_for_update().get(pk=job.pk))
        job.status = ImportJob.Status.UPLOADED
        job.save()
    return job


def import_detection(job: ImportJob):
    """Detection re-run with the job's (possibly corrected) settings: its sample rows and
    notes for the mapping page."""
    with job.file.open("rb") as fh:
        overrides = {"header_row": job.header_row}
        if job.file_kind == "csv":
            overrides.update(encoding=job.encoding, delimiter=job.delimiter)
        _, found = sniff_file(fh, job.file_name, **overrides)
    return found


def _editable(job: ImportJob) -> None:
    if job.status not in (ImportJob.Status.UPLOADED, ImportJob.Status.MAPPED):
        raise ValidationError("This import has already started; its settings can't change.")


# Mapping ------------------------------------------------------------------------------

DEFAULT_KEYS = {"owner", "source", "tags", "consent_status", "consent_type"}


@transaction.atomic
def import_set_mapping(
    *,
    job: ImportJob,
    actor: Actor,
    policy,
    mapping: dict,
    defaults: dict,
    import_policy: str,
    blank_policy: str,
    save_as: str = "",
    custom_types: dict | None = None,
) -> ImportJob:
    """Save the column mapping, defaults and policies. Columns stored as custom fields reuse
    the org's field of the same label, or get a new one of the kind `custom_types` names
    for them (text when it names none)."""
    _editable(job)
    require_import_in_scope(job, policy)
    allowed = {k for k, _, _ in import_targets(job.org, policy)}
    errors: dict[str, str] = {}
    clean: dict[str, str] = {}
    used: dict[str, str] = {}
    multi = {"other_emails", "tags", "note"}
    kinds = dict(CUSTOM_TYPES)
    for header in job.headers:
        target = mapping.get(header, SKIP) or SKIP
        if target not in allowed | {SKIP, CUSTOM}:
            errors[header] = f"“{header}” can't be mapped to that field."
            continue
        if target == CUSTOM and not policy.can("settings", "edit"):
            errors[header] = "Only admins can create custom fields; choose a field or Skip."
            continue
        if target == CUSTOM and (custom_types or {}).get(header, "text") not in kinds:
            errors[header] = "Choose the kind of custom field: " + ", ".join(kinds.values()) + "."
            continue
        if target not in (SKIP, CUSTOM) and target not in multi and target in used:
            errors[header] = f"“{used[target]}” is already mapped to this field."
            continue
        used.setdefault(target, header)
        clean[header] = target
    if not any(t not in (SKIP,) for t in clean.values()) and not errors:
        errors["__all__"] = "Map at least one column."
    if "email" not in clean.values() and not {
        "first_name",
        "last_name",
        "full_name",
        "phone",
        "mobile",
    } & set(clean.values()):
        errors.setdefault(
            "__all__", "Map an email, a name or a phone column so contacts can be told apart."
        )
    if import_policy not in ImportJob.Policy.values:
        errors["policy"] = "Choose what to do with existing contacts."
    if blank_policy not in ImportJob.BlankPolicy.values:
        errors["blank_policy"] = "Choose what empty cells do."
    clean_defaults = _clean_defaults(job.org, policy, defaults, errors)
    if errors:
        raise ValidationError(errors)
    # Columns stored as custom fields get (or reuse) a definition now.
    custom_keys, types = {}, {}
    for header, target in clean.items():
        if target == CUSTOM:
            types[header] = (custom_types or {}).get(header, "text")
            custom_keys[header] = _custom_field_for(
                job.org, actor, policy, header, types[header]
            ).key
    clean_defaults["custom_keys"] = custom_keys
    clean_defaults["custom_types"] = types
    job.mapping = clean
    job.defaults = clean_defaults
    job.policy = import_policy
    job.blank_policy = blank_policy
    job.status = ImportJob.Status.MAPPED
    _prepare_value_step(job, policy)
    job.save()
    if save_as.strip():
        SavedMapping.objects.update_or_create(
            org=job.org,
            name=save_as.strip()[:120],
            defaults={
                "headers": job.headers,
                "mapping": clean,
                "value_map": job.value_map,
                "headers_signature": headers_signature(job.headers),
                "created_by": actor.user,
            },
        )
    audit(
        org=job.org,
        actor=actor,
        verb="import.mapped",
        obj=job,
        changes={"mapping": [None, clean], "policy": [None, import_policy]},
    )
    return job


# Matching values ----------------------------------------------------------------------

CHOICE_REFUSAL = "Choose one of the listed values."


def _prepare_value_step(job: ImportJob, policy) -> None:
    """Count the values of the columns the match-values step asks about (one bounded pass
    over the file, kept in job.value_counts for the page) and start their value map from
    the suggestions, with the earlier choices (the saved mapping's, the member's) on top.
    Leaves saving to the caller."""
    definitions = matching.list_definitions(job.org)
    columns = matching.value_columns(job, definitions)
    if not columns:
        job.value_map, job.value_counts = {}, {}
        return
    counted = matching.count_values(job, columns)
    suggester = matching.Suggester(matching.members_for_matching(job, policy), definitions)
    earlier = job.value_map or {}
    suggested = matching.suggestions_for(columns, counted, suggester)
    job.value_map = matching.merged_value_map(columns, suggested, earlier, suggester)
    # Values a saved mapping (or the member, on this job) confirmed need no second look.
    saved = (
        SavedMapping.objects.for_org(job.org)
        .filter(headers_signature=headers_signature(job.headers))
        .first()
    )
    confirmed = dict(saved.value_map or {}) if saved is not None else {}
    if (job.value_counts or {}).get("reviewed"):
        for header, values in earlier.items():
            confirmed[header] = {**(confirmed.get(header) or {}), **values}
    pending = matching.pending_values(counted, confirmed)
    job.value_counts = {
        **matching.counts_cache(columns, counted, pending),
        "reviewed": pending == 0,
    }


def import_refresh_value_counts(*, job: ImportJob, policy) -> ImportJob:
    """Count the values again when the cache no longer fits the mapping (a List field
    added or removed since, or a job mapped before the step existed)."""
    require_import_in_scope(job, policy)
    _editable(job)
    _prepare_value_step(job, policy)
    job.save(update_fields=["value_map", "value_counts"])
    return job


@transaction.atomic
def import_set_value_map(
    *, job: ImportJob, actor: Actor, policy, choices: dict, save_as: str = ""
) -> ImportJob:
    """Keep what the member matched each shown value to ({header: {value: stored}}), on the
    job and on the saved mappings of files with these columns (or a new one named
    `save_as`). Every choice must be a choice of the column's field, a member the member may
    give contacts to, "" (leave empty) or DEFAULT_OWNER; otherwise nothing is saved and the
    ValidationError names each wrong value (keys from matching.error_key)."""
    require_import_in_scope(job, policy)
    _editable(job)
    if job.status != ImportJob.Status.MAPPED:
        raise ValidationError("Map the columns first.")
    definitions = matching.list_definitions(job.org)
    columns = matching.value_columns(job, definitions)
    suggester = matching.Suggester(matching.members_for_matching(job, policy), definitions)
    errors: dict[str, str] = {}
    for header, values in choices.items():
        target = columns.get(header)
        if target is None or not isinstance(values, dict):
            errors["__all__"] = "The columns have changed; map them again."
            continue
        for value, stored in values.items():
            if not isinstance(value, str) or len(value) > matching.MAX_VALUE_CHARS:
                errors["__all__"] = "The values have changed; open this step again."
            elif not suggester.valid(target, stored):
                refusal = owner_refusal(policy) if target == "owner" else CHOICE_REFUSAL
                errors[matching.error_key(header, value)] = refusal
    if errors:
        raise ValidationError(errors)
    value_map = {h: dict(m) for h, m in (job.value_map or {}).items() if h in columns}
    for header, values in choices.items():
        value_map.setdefault(header, {}).update(values)
    job.value_map = value_map
    job.value_counts = {**(job.value_counts or {}), "pending": 0, "reviewed": True}
    job.save(update_fields=["value_map", "value_counts"])
    signature = headers_signature(job.headers)
    saved_mappings = (
        SavedMapping.objects.for_org(job.org)
        .filter(headers_signature=signature)
        .select_for_update()
    )
    for saved in saved_mappings:
        merged = dict(saved.value_map or {})
        for header, values in value_map.items():
            merged[header] = {**(merged.get(header) or {}), **values}
        saved.value_map = merged
        saved.save(update_fields=["value_map"])
    if save_as.strip():
        SavedMapping.objects.update_or_create(
            org=job.org,
            name=save_as.strip()[:120],
            defaults={
                "headers": job.headers,
                "mapping": job.mapping,
                "value_map": value_map,
                "headers_signature": signature,
                "created_by": actor.user,
            },
        )
    audit(
        org=job.org,
        actor=actor,
        verb="import.values_matched",
        obj=job,
        changes={"values": [None, {h: len(v) for h, v in choices.items()}]},
    )
    return job


def _clean_defaults(org, policy, defaults: dict, errors: dict) -> dict:
    out = {}
    owner = (
        (defaults.get("owner") or "").strip()
        if isinstance(defaults.get("owner"), str)
        else (defaults.get("owner"))
    )
    if owner:
        # Only a member the importer may give contacts to (the select offers no one else);
        # a value that is not an id at all is refused the same way.
        try:
            member = selectors.assignable_owners(org, policy).filter(user__public_id=owner).first()
        except ValidationError:
            member = None
        if member is None:
            errors["default_owner"] = owner_refusal(policy)
        else:
            out["owner"] = member.user_id
            out["owner_public_id"] = str(owner)
    source = (defaults.get("source") or "").strip()
    if source:
        out["source"] = source[:120]
    tags = defaults.get("tags") or []
    if isinstance(tags, str):
        tags = [t.strip() for t in re.split(r"[,;]", tags)]
    out["tags"] = [t[:60] for t in tags if t]
    status = defaults.get("consent_status") or ""
    if status:
        if status not in Contact.ConsentStatus.values:
            errors["default_consent_status"] = "Choose a consent status."
        else:
            out["consent_status"] = status
    ctype = defaults.get("consent_type") or Contact.ConsentType.IMPORTED
    if ctype not in Contact.ConsentType.values:
        errors["default_consent_type"] = "Choose a consent type."
    else:
        out["consent_type"] = ctype
    return out


def _custom_field_for(
    org, actor, policy, header: str, field_type: str = "text"
) -> CustomFieldDefinition:
    base = slugify(header).replace("-", "_").strip("_")[:50] or "imported"
    if not base[0].isalpha():
        base = f"f_{base}"
    existing = CustomFieldDefinition.objects.for_org(org).filter(entity="contact")
    found = existing.filter(label__iexact=header.strip()).first()
    if found is not None:
        return found
    key, n = base, 2
    while key in RESERVED_KEYS or existing.filter(key=key).exists():
        key = f"{base}_{n}"
        n += 1
    return customfield_create(
        org=org,
        actor=actor,
        policy=policy,
        data={
            "entity": "contact",
            "key": key,
            "label": header.strip()[:120],
            "field_type": field_type,
        },
    )


# Preview ------------------------------------------------------------------------------

PREVIEW_ROWS = 20_000


def import_preview(job: ImportJob, *, show: int = 50) -> dict:
    """The first rows as they will land and the totals, computed by running the real
    pipeline on up to PREVIEW_ROWS rows inside a transaction that is rolled back."""
    importer = Importer(job)
    rows, more = [], False
    with job.file.open("rb") as fh:
        for number, cells in importer.records(fh):
            if len(rows) >= PREVIEW_ROWS:
                more = True
                break
            rows.append((number, cells))
    sid = transaction.savepoint() if connection.in_atomic_block else None
    try:
        with transaction.atomic():
            converted, result = importer.dry_run(rows)
            problems = dict(importer.preview_errors)
            raise _Rollback
    except _Rollback:
        pass
    if sid:
        transaction.savepoint_commit(sid)
    data_rows = len(converted.numbers) + len(converted.bad)
    shown = []
    staged = {number: i for i, number in enumerate(converted.numbers)}
    for number, cells in rows[: show * 2]:
        if len(shown) >= show:
            break
        if not any(c.strip() for c in cells):
            continue
        index = staged.get(number)
        problem = problems.get(number, "")
        shown.append(
            {
                "row": number,
                "values": converted.row(index) if index is not None else {},
                "cells": cells,
                "problem": problem,
                "warnings": importer.preview_warnings.get(number, []),
                "action": _preview_action(job, problem, number, importer),
            }
        )
    return {
        "rows": shown,
        "columns": _preview_columns(importer),
        "created": result.created,
        "updated": result.updated,
        "skipped": result.skipped,
        "errors": result.errors,
        "warnings": result.warnings,
        "warning_counts": result.warning_counts,
        "counted_rows": data_rows,
        "estimated": more,
    }


def _preview_action(job: ImportJob, problem: str, number: int, importer) -> str:
    """What the import will do with one row: create, update, skip or error."""
    if problem and number not in importer.preview_kept:  # kept rows only lost some cells
        return "error"
    if number in importer.preview_matched:
        return "update"
    if number in importer.preview_unmatched:
        return "skip" if job.policy == ImportJob.Policy.UPDATE else "create"
    return "skip"  # matched but unchanged, or an existing contact under "create only"


class _Rollback(Exception):
    pass


_PREVIEW_FIELDS = [
    *(c for c in CONTACT_COLUMNS if not c.endswith("_unverified")),  # warnings say it
    "custom",
    "other_emails",
    "tags",
    "company_name",
    "company_domain",
    "note",
    "external_id",
]


def _preview_columns(importer) -> list[str]:
    mapped = importer.plan.mapped | importer.plan.converter.mapped_fields
    cols = [c for c in _PREVIEW_FIELDS if c in mapped or c.removesuffix("_id") in mapped]
    if {"company", "company_domain", "company_website"} & mapped:
        cols += [c for c in ("company_name", "company_domain") if c not in cols]
    if any(t.startswith(CUSTOM_PREFIX) for t in mapped):
        cols.append("custom")
    return cols


# Running ------------------------------------------------------------------------------


@transaction.atomic
def import_start(*, job: ImportJob, actor: Actor, policy) -> ImportJob:
    require_import_in_scope(job, policy)
    if job.status != ImportJob.Status.MAPPED:
        raise ValidationError("Map the columns before starting the import.")
    job.status = ImportJob.Status.QUEUED
    job.sent_at = timezone.now()
    job.save(update_fields=["status", "sent_at"])
    audit(org=job.org, actor=actor, verb="import.started", obj=job)
    from .tasks import run_import

    transaction.on_commit(lambda: run_import.delay(job.org_id, job.id))
    return job


def claim(job_id: int, org_id: int) -> bool:
    """Take the job for this worker: a queued job, or a running one whose worker went quiet
    (unless that happened too often in a row: the job then fails instead)."""
    now = timezone.now()
    job = ImportJob.objects.filter(pk=job_id, org_id=org_id)
    taken = job.filter(status=ImportJob.Status.QUEUED).update(
        status=ImportJob.Status.RUNNING, heartbeat_at=now
    )
    if taken:
        job.filter(started_at__isnull=True).update(started_at=now)
        return True
    quiet = job.filter(status=ImportJob.Status.RUNNING, heartbeat_at__lt=_stale(now))
    taken = _take_over(quiet, now)
    if taken is False:
        failed = job.select_related("org", "created_by").get()
        reason = GAVE_UP.format(times=MAX_TAKEOVERS + 1, unit="chunk")
        log.error("import %s failed: %s", job_id, reason)
        _end(failed, ImportJob.Status.FAILED, f"The import stopped: {reason}.")
    return bool(taken)


def _stale(now):
    """Heartbeats older than this mean the worker went quiet."""
    return now - timezone.timedelta(seconds=STALE_AFTER_SECONDS)


def _take_over(quiet, now) -> bool | None:
    """Take over the job in `quiet` (an import or undo whose worker went quiet): True when
    taken, None when it is not there to take, False when its workers went quiet too often
    in a row and this caller must end it. Only the worker whose UPDATE moved the heartbeat
    on gets False, so the job is ended once."""
    if quiet.filter(takeovers__lt=MAX_TAKEOVERS).update(
        heartbeat_at=now, takeovers=F("takeovers") + 1
    ):
        return True
    return False if quiet.update(heartbeat_at=now) else None


def run_import(job_id: int, org_id: int, *, chunk_rows: int | None = None) -> ImportJob | None:
    if not claim(job_id, org_id):
        return None
    job = ImportJob.objects.select_related("org", "created_by").get(pk=job_id, org_id=org_id)
    importer = Importer(job, **({"chunk_rows": chunk_rows} if chunk_rows else {}))
    started = time.monotonic()
    try:
        with job.file.open("rb") as fh:
            if not job.total_rows:
                # One quick parsing pass gives the progress bar its end (~1 s per 1M rows).
                job.total_rows = record_count(
                    fh,
                    kind=job.file_kind,
                    encoding=job.encoding or "utf-8",
                    delimiter=job.delimiter or ",",
                    header_row=job.header_row,
                )
                ImportJob.objects.filter(pk=job.pk).update(total_rows=job.total_rows)
            importer.run(fh)
    except ImportCancelled:
        _end(job, ImportJob.Status.CANCELLED, "Import cancelled; rows already imported stay.")
        return job
    except OperationalError:
        # The database went away: hand the job back so the retried task resumes it.
        ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.QUEUED)
        raise
    except Exception as exc:
        log.exception("import %s failed", job.pk)
        _end(job, ImportJob.Status.FAILED, f"The import stopped: {exc}")
        return job
    _rescore(job)
    with transaction.atomic():
        importer.finish()
        _end(job, ImportJob.Status.DONE, "")
    log.info("import %s done in %.1fs", job.pk, time.monotonic() - started)
    return job


RESCORE_BATCH = 20_000


def _rescore(job: ImportJob) -> None:
    """Lead scores of what the import touched, set-based, without bumping updated_at. The
    heartbeat goes on between batches: a million contacts take a while, and a job that
    looks dead would be taken over."""
    from ..scoring import has_active_rules, rescore_contacts

    if not has_active_rules(job.org):
        return
    ids = selectors.touched_ids(job)
    while batch := list(itertools.islice(ids, RESCORE_BATCH)):
        rescore_contacts(job.org, ids=batch)
        ImportJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now())


def resend_stalled_jobs() -> int:
    """Send the task again for every import or undo that has stalled, and say how many.

    A job stalls when its task message is lost (the broker restarted, or the task used up
    its retries while the database was away) or when its worker died and the broker holds
    the unacknowledged message back (Redis returns it only after its visibility timeout, an
    hour). Beat runs this every minute. A job waiting in the queue gets one extra
    message per RESEND_WAITING_AFTER_SECONDS; a job whose worker went quiet, one per
    STALE_AFTER_SECONDS. The worker's claim decides who runs a job, so a message for a job
    that is in fact running, or that another message starts first, does nothing.
    """
    from .tasks import run_import as run_import_task
    from .tasks import run_undo as run_undo_task

    now = timezone.now()
    quiet = _stale(now)
    waited = now - timezone.timedelta(seconds=RESEND_WAITING_AFTER_SECONDS)
    status = ImportJob.Status
    not_taken = Q(status=status.QUEUED) | Q(status=status.UNDOING, heartbeat_at__isnull=True)
    went_quiet = Q(status__in=[status.RUNNING, status.UNDOING], heartbeat_at__lt=quiet)
    due = (not_taken & (Q(sent_at__isnull=True) | Q(sent_at__lt=waited))) | (
        went_quiet & (Q(sent_at__isnull=True) | Q(sent_at__lt=quiet))
    )
    with transaction.atomic():
        # A job a worker is writing a chunk of is locked; it is not stalled, so skip it.
        stalled = list(
            ImportJob.objects.filter(due)
            .select_for_update(skip_locked=True)
            .values_list("pk", "org_id", "status")
        )
        ImportJob.objects.filter(pk__in=[pk for pk, _, _ in stalled]).update(sent_at=now)
        for pk, org_id, job_status in stalled:
            task = run_undo_task if job_status == status.UNDOING else run_import_task
            transaction.on_commit(functools.partial(task.delay, org_id, pk))
            log.warning("import %s (%s) stalled; its task is sent again", pk, job_status)
    return len(stalled)


def _end(job: ImportJob, status: str, failure: str) -> None:
    now = timezone.now()
    ImportJob.objects.filter(pk=job.pk).update(
        status=status, finished_at=now, failure=failure, heartbeat_at=now
    )
    job.status, job.finished_at, job.failure = status, now, failure
    if job.created_by_id:
        url = reverse("contacts:import_detail", args=[job.public_id])
        title = {
            ImportJob.Status.DONE: f"Import of {job.file_name} finished",
            ImportJob.Status.FAILED: f"Import of {job.file_name} failed",
            ImportJob.Status.CANCELLED: f"Import of {job.file_name} was cancelled",
        }[status]
        errors = "1 error" if job.error_count == 1 else f"{job.error_count} errors"
        body = (
            f"{job.created_count} created, {job.updated_count} updated, "
            f"{job.skipped_count} skipped, {errors}."
        )
        if job.warning_count:
            rows = "1 row" if job.warning_count == 1 else f"{job.warning_count} rows"
            body += f" {rows} imported with warnings."
        if failure:
            body = f"{failure}\n{body}"
        notify(
            org=job.org,
            user=job.created_by,
            title=title,
            body=body,
            url=url,
            level={"done": "success", "failed": "error"}.get(status, "warning"),
            email=True,
            absolute_url=settings.SITE_URL + url,
        )


@transaction.atomic
def import_cancel(*, job: ImportJob, actor: Actor, policy) -> ImportJob:
    require_import_in_scope(job, policy)
    if job.status in (ImportJob.Status.UPLOADED, ImportJob.Status.MAPPED, ImportJob.Status.QUEUED):
        job.status = ImportJob.Status.CANCELLED
        job.finished_at = timezone.now()
        job.save(update_fields=["status", "finished_at"])
    elif job.status == ImportJob.Status.RUNNING:
        ImportJob.objects.filter(pk=job.pk).update(cancel_requested=True)
        job.cancel_requested = True
    else:
        raise ValidationError("This import has already ended.")
    audit(org=job.org, actor=actor, verb="import.cancelled", obj=job)
    return job


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
        started = ImportJob.objects.filter(
            pk=job.pk, org_id=job.org_id, status__in=UNDOABLE, undone_at__isnull=True
        ).update(
            status=ImportJob.Status.UNDOING,
            status_before_undo=F("status"),
            undo_by=actor.user,
            undo_by_type=actor.type,
            undo_by_label=actor.label[:200],
            undo_by_ip=actor.ip,
            # The import's last heartbeat must not hold the undo's worker off.
            heartbeat_at=None,
            sent_at=timezone.now(),
            takeovers=0,
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
        from .tasks import run_undo as run_undo_task

        transaction.on_commit(lambda: run_undo_task.delay(job.org_id, job.id))
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


def claim_undo(job_id: int, org_id: int) -> bool:
    """Take an undo for this worker, unless a live worker holds it: one no worker has
    started, or one whose worker went quiet (unless that happened too often in a row: the
    undo then stops as if on an error, keeping what it did)."""
    now = timezone.now()
    undo = ImportJob.objects.filter(pk=job_id, org_id=org_id, status=ImportJob.Status.UNDOING)
    if undo.filter(heartbeat_at__isnull=True).update(heartbeat_at=now):
        return True
    taken = _take_over(undo.filter(heartbeat_at__lt=_stale(now)), now)
    if taken is False:
        job = undo.select_related("org", "undo_by").get()
        reason = GAVE_UP.format(times=MAX_TAKEOVERS + 1, unit="batch")
        log.error("undo of import %s stopped: %s", job_id, reason)
        _undo_failed(job, job.org, _undo_actor(job), reason)
    return bool(taken)


def run_undo(job_id: int, org_id: int) -> ImportJob | None:
    """The undo's work, batch by batch, from where the last committed batch left off."""
    if not claim_undo(job_id, org_id):
        return None
    job = ImportJob.objects.select_related("org", "undo_by").get(pk=job_id, org_id=org_id)
    org, actor = job.org, _undo_actor(job)
    started = time.monotonic()
    try:
        while not _undo_step(job, org, actor):
            pass
    except OperationalError:
        # The database went away: let the retried task claim the job at once (if it is
        # still unreachable, the retry takes the job over once the heartbeat goes stale).
        with contextlib.suppress(DatabaseError):
            ImportJob.objects.filter(pk=job_id, status=ImportJob.Status.UNDOING).update(
                heartbeat_at=None
            )
        raise
    except Exception as exc:
        log.exception("undo of import %s failed", job_id)
        _undo_failed(job, org, actor, exc)
    else:
        log.info("undo of import %s done in %.1fs", job_id, time.monotonic() - started)
    job.org = org
    return job


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
        job.refresh_from_db(from_queryset=ImportJob.objects.select_for_update())
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
        Contact.objects.filter(org_id=org_id, pk__in=ids)
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
    edited, doomed = [], []
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
    job.save(update_fields=["status", "undone_at", *UNDO_PROGRESS_FIELDS])
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
        job.refresh_from_db(from_queryset=ImportJob.objects.select_for_update())
        if job.status != ImportJob.Status.UNDOING:
            return
        job.status = job.status_before_undo or ImportJob.Status.DONE
        job.undo_result = {**job.undo_result, "failure": message}
        job.heartbeat_at = None
        job.save(update_fields=["status", "undo_result", "heartbeat_at"])
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
    _, per_model = Contact.objects.filter(org_id=job.org_id, pk__in=ids).delete()
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
    cur.execute(
        f"""
        UPDATE contacts_contact c SET {", ".join(sets)}, updated_at = now()
          FROM contacts_importrecord r
         WHERE r.job_id = %s AND r.action = 'updated' AND r.id = ANY(%s)
           AND c.id = r.contact_id AND c.org_id = %s
        """,  # noqa: S608 -- column names come from the engine's constant list
        [job.id, record_ids, job.org_id],
    )
    return cur.rowcount
