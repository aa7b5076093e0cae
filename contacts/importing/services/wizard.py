"""The import wizard's writes: upload, detection, mapping, matching values, defaults and the
preview, up to the moment the member starts the import."""

from __future__ import annotations

import hashlib
import logging
import os
import re

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils.text import slugify

from crm.services.audit import Actor, audit

from ...custom_fields import RESERVED_KEYS
from ...fields import CUSTOM_PREFIX, contact_field_catalog
from ...models import Contact, CustomFieldDefinition
from ...services import customfield_create
from .. import matching, selectors
from ..ai_mapping import refine_with_llm
from ..detect import DELIMITERS, ENCODING_LABELS
from ..engine import CONTACT_COLUMNS, Importer
from ..mapper import (
    COMBINED_TARGETS,
    CUSTOM,
    CUSTOM_TYPES,
    EXTRA_TARGETS,
    SKIP,
    custom_type_for,
    suggest_mapping,
)
from ..models import ImportJob, SavedMapping
from ..reader import sniff_file
from .access import (
    ALLOWED_EXTENSIONS,
    max_upload_bytes,
    owner_refusal,
    require_import_in_scope,
    require_import_rights,
)

log = logging.getLogger(__name__)


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
        overrides: dict[str, object] = {"header_row": job.header_row}
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
        SavedMapping.objects.for_org(job.org_id).update_or_create(
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
        SavedMapping.objects.for_org(job.org_id).update_or_create(
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
    rows: list[tuple[int, list]] = []
    more = False
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
    shown: list[dict] = []
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
