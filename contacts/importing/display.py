"""How an import's data reads on its pages: what detection found, suggestion confidence,
staged and recorded values as text (owner and company ids as names, choices as labels),
progress figures, and what Undo would do. Reads only; the views render what these return."""

from __future__ import annotations

import datetime as dt
import json

from django.utils import timezone
from django.utils.formats import date_format

from crm.models import User

from ..fields import CUSTOM_PREFIX, catalog_by_key, contact_field_catalog
from ..models import Contact
from ..normalize import format_phone
from .convert import COMPANY_TARGETS
from .detect import DELIMITER_NAMES, ENCODING_LABELS
from .forms import CUSTOM_LABEL, SKIP_LABEL
from .mapper import COMBINED_TARGETS, CUSTOM, EXTRA_TARGETS, SKIP
from .models import ImportJob

SAMPLES_PER_COLUMN = 3


CONFIDENCE_LEVELS = ((0.85, "high", "High"), (0.6, "medium", "Medium"), (0.0, "low", "Low"))


def confidence_level(value: float) -> tuple[str, str]:
    for floor, key, label in CONFIDENCE_LEVELS:
        if value >= floor:
            return key, label
    return "low", "Low"


def target_labels(targets) -> dict[str, str]:
    labels = {key: label for key, label, _ in targets}
    labels.update({key: label for key, label, _ in EXTRA_TARGETS})
    labels[SKIP] = SKIP_LABEL
    labels[CUSTOM] = CUSTOM_LABEL
    return labels


def column_samples(rows: list[list[str]], index: int) -> list[str]:
    found: list[str] = []
    for row in rows:
        value = row[index].strip() if index < len(row) else ""
        if value and value not in found:
            found.append(value if len(value) <= 60 else value[:57] + "…")
            if len(found) == SAMPLES_PER_COLUMN:
                break
    return found


def detection_summary(job: ImportJob, detection) -> dict:
    """What detection found, in words a person who has never heard of "encodings" can check."""
    undecoded = any("\ufffd" in cell for row in detection.sample_rows for cell in row)
    notes = list(detection.notes)
    if undecoded and not any("decoded" in note for note in notes):
        notes.append(
            "Some characters could not be read with this encoding (they show as �); "
            "try another encoding below."
        )
    return {
        "kind": "Excel workbook" if job.file_kind == "xlsx" else "Text file",
        "encoding": ENCODING_LABELS.get(job.encoding, job.encoding),
        "delimiter": DELIMITER_NAMES.get(job.delimiter, job.delimiter),
        "header_row": job.header_row + 1,
        "columns": len(job.headers),
        "sample_rows": len(detection.sample_rows),
        "notes": notes,
        "undecoded": undecoded,
    }


PREVIEW_LABELS = {
    "company_name": "Company",
    "company_domain": "Company domain",
    "custom": "Custom fields",
    "other_emails": "Other emails",
    "note": "Note",
    "external_id": "External ID",
    "owner_id": "Owner",
}


def preview_field(key: str) -> str:
    """The contact field a preview column shows ("owner_id": owner, "company_name": company)."""
    if key == "owner_id":
        return "owner"
    if key in ("company_name", "company_domain"):
        return "company"
    return key


def visible_custom(value, can_see) -> dict:
    """The staged custom values (a dict, or its JSON) the reader may see."""
    if isinstance(value, str):
        value = json.loads(value)
    return {k: v for k, v in (value or {}).items() if can_see(CUSTOM_PREFIX + k)}


CHOICE_KEYS = {
    "status",
    "lifecycle_stage",
    "deal_role",
    "consent_status",
    "consent_type",
    "gdpr_basis",
}


def choice_label(field_name: str, value) -> str:
    if value in (None, ""):
        return ""
    field = Contact._meta.get_field(field_name)
    return str(dict(field.choices or []).get(value, value))


def display_value(key: str, value, *, users: dict, custom_labels: dict) -> str:
    """One staged or recorded value as text for a person."""
    if value is None or value == "" or value == [] or value == {}:
        return ""
    if key in ("owner_id", "owner"):
        return users.get(value, f"member #{value}")
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, str) and key in ("custom", "other_emails"):
        value = json.loads(value)
    if key == "custom" and isinstance(value, dict):
        return "; ".join(
            f"{custom_labels.get(k, k)}: {v}" for k, v in value.items() if v not in (None, "")
        )
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dt.datetime):
        return date_format(timezone.localtime(value), "DATETIME_FORMAT")
    if key in CHOICE_KEYS:
        return choice_label(key, value)
    if key in ("phone", "mobile"):
        return format_phone(value)  # stored as +442079460958, read as +44 20 7946 0958
    return str(value)


def member_names(org, ids) -> dict:
    ids = {i for i in ids if isinstance(i, int)}
    if not ids:
        return {}
    return {u.pk: u.display_name for u in User.objects.filter(pk__in=ids, memberships__org=org)}


def custom_field_labels(org) -> dict:
    return {
        spec.key[len(CUSTOM_PREFIX) :]: spec.label
        for spec in contact_field_catalog(org)
        if spec.is_custom
    }


def job_duration(job: ImportJob) -> dt.timedelta | None:
    if job.started_at and job.finished_at:
        return job.finished_at - job.started_at
    return None


def duration_text(job: ImportJob) -> str:
    duration = job_duration(job)
    return humanize_seconds(duration.total_seconds()) if duration else ""


def humanize_seconds(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 1:
        return "under a second"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def progress_figures(job: ImportJob, now: dt.datetime | None = None) -> dict:
    """Rows done of the total, the rate since the job started and the time left at it."""
    now = now or timezone.now()
    total, done = job.total, job.progress
    percent = min(100, int(done * 100 / total)) if total else 0
    if job.status == ImportJob.Status.DONE:
        percent = 100
    elapsed = (now - job.started_at).total_seconds() if job.started_at else 0
    rate = done / elapsed if elapsed > 0 and done else 0.0
    eta = (total - done) / rate if rate and total > done else None
    return {
        "total": total,
        "done": done,
        "percent": percent,
        "rate": round(rate),
        "eta": humanize_seconds(eta) if eta is not None else "",
        "elapsed": humanize_seconds(elapsed) if elapsed else "",
    }


def undo_progress(job: ImportJob) -> dict:
    """Contacts the undo has handled of all it will, and what it did with them so far."""
    total, done = job.undo_total, job.undo_done
    tally = job.undo_result or {}
    return {
        "started": bool(job.undo_phase),
        "total": total,
        "done": done,
        "percent": min(100, int(done * 100 / total)) if total else 0,
        "deleted": tally.get("deleted", 0),
        "restored": tally.get("restored", 0),
        "kept": tally.get("kept_edited", 0),
    }


def mapping_rows(job: ImportJob, org) -> list[dict]:
    catalog = catalog_by_key(contact_field_catalog(org))
    extra = {key: label for key, label, _ in EXTRA_TARGETS}
    custom_keys = (job.defaults or {}).get("custom_keys", {})
    rows = []
    for header in job.headers:
        target = (job.mapping or {}).get(header, SKIP)
        if target == SKIP:
            label = "Skipped"
        elif target == CUSTOM:
            key = custom_keys.get(header, "")
            spec = catalog.get(CUSTOM_PREFIX + key)
            label = f"Custom field “{spec.label if spec else key}”"
        else:
            spec = catalog.get(target)
            label = extra.get(target) or (spec.label if spec else target)
        rows.append({"header": header, "target": label, "skipped": target == SKIP})
    return rows


def contact_label(contact: Contact | None, can_see=None) -> str:
    """The contact's name, else its email or phone; `can_see(field_key)` leaves out the
    fields hidden from the reader, so a hidden email never stands in for a name."""
    if contact is None:
        return ""
    can_see = can_see or (lambda key: True)
    shown = [getattr(contact, key) for key in ("first_name", "last_name") if can_see(key)]
    name = " ".join(part for part in shown if part).strip()
    if name:
        return name
    for key in ("email", "phone", "mobile"):
        if can_see(key) and getattr(contact, key):
            return getattr(contact, key)
    return "(no name)"


# What of the file a reader sees -------------------------------------------------------------


def fields_of_target(job: ImportJob, header: str, target: str) -> list[str]:
    """The contact fields a column mapped to `target` fills (none for a skipped column)."""
    if target == SKIP:
        return []
    if target == CUSTOM:
        key = (job.defaults or {}).get("custom_keys", {}).get(header, "")
        return [CUSTOM_PREFIX + key]
    if target == "full_name":
        return ["first_name", "last_name"]
    if target in COMBINED_TARGETS:
        return list(COMBINED_TARGETS[target])
    if target in COMPANY_TARGETS:
        return ["company"]
    return [target]


def hidden_columns(job: ImportJob, policy, reader_id) -> set[int]:
    """The file's columns whose cells this reader may not see (on the mapping page, the
    preview and the error report): those that fill a field hidden from them, and, for a
    reader with field rules, the skipped ones too, since a column nobody mapped may hold
    anything. The member who uploaded the file sees all of it: it is theirs."""
    if reader_id is not None and reader_id == job.created_by_id:
        return set()
    has_rules = bool(policy.hidden_fields(spec.key for spec in contact_field_catalog(job.org)))
    hidden = set()
    for index, header in enumerate(job.headers):
        target = (job.mapping or {}).get(header, SKIP)
        fields = fields_of_target(job, header, target)
        if (not fields and has_rules) or not all(policy.can_see_field(f) for f in fields):
            hidden.add(index)
    return hidden


def without_columns(cells: list, hidden: set[int]) -> list:
    """`cells` with the hidden columns blanked."""
    return ["" if i in hidden else cell for i, cell in enumerate(cells)]


def safe_error(message: str, headers: list[str], hidden: set[int]) -> str:
    """A row's error, unless it is about a hidden column ("Email: ..." may quote the value):
    then only that the column's value was refused."""
    # Anywhere in the message: a refused row lists what it left out after why. Everything
    # from the first hidden column on goes.
    found = []
    for index in hidden:
        header = headers[index] if index < len(headers) else ""
        at = message.find(f"{header}: ") if header else -1
        if at >= 0:
            found.append((at, header))
    if found:
        at, header = min(found)
        return f"{message[:at]}{header}: this value could not be imported."
    return message


def field_label(key: str, catalog: dict, custom_labels: dict) -> str:
    if key == "company":
        return "Company"
    spec = catalog.get(key)
    return spec.label if spec else key.replace("_", " ").capitalize()


def change_rows(
    changes: dict, *, catalog, custom_labels, users, companies, can_see=None
) -> list[dict]:
    """{field: [before, after]} as rows a person can read: custom fields one per key, owner
    and company ids as names. `can_see(field_key)` drops fields hidden from the reader."""
    can_see = can_see or (lambda key: True)
    rows = []
    for key, pair in changes.items():
        if not isinstance(pair, list) or len(pair) != 2:
            continue
        before, after = pair
        if key == "custom":
            before, after = before or {}, after or {}
            for custom_key in sorted(set(before) | set(after)):
                if not can_see(CUSTOM_PREFIX + custom_key):
                    continue
                if before.get(custom_key) != after.get(custom_key):
                    rows.append(
                        {
                            "field": custom_labels.get(custom_key, custom_key),
                            "before": plain_text(before.get(custom_key)),
                            "after": plain_text(after.get(custom_key)),
                        }
                    )
            continue
        if not can_see(key):
            continue
        if key == "company":
            before, after = companies.get(before, before), companies.get(after, after)
        elif key == "owner":
            before, after = users.get(before, before), users.get(after, after)
        elif key == "consent_date":
            before, after = moment_text(before), moment_text(after)
        elif key in CHOICE_KEYS:
            before, after = choice_label(key, before), choice_label(key, after)
        rows.append(
            {
                "field": field_label(key, catalog, custom_labels),
                "before": plain_text(before),
                "after": plain_text(after),
            }
        )
    return rows


def moment_text(value):
    if not value:
        return value
    try:
        return date_format(timezone.localtime(dt.datetime.fromisoformat(value)), "DATETIME_FORMAT")
    except (TypeError, ValueError):
        return value


def plain_text(value) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def value_match_columns(
    job: ImportJob, shown: list[dict], form, *, suggester, members, definitions, targets, reset
) -> list[dict]:
    """The match-values page's columns: per shown value its count, its suggestion and a
    select of what it may become, with what the member (or a saved mapping) chose selected;
    `reset` selects the suggestions instead. Options are joined here, escaped, because a
    page may hold a hundred selects of every member."""
    from django.utils.html import format_html_join

    from .matching import DEFAULT_OWNER, choice_options

    default_owner = (job.defaults or {}).get("owner")
    default_name = member_names(job.org, [default_owner]).get(default_owner, "")
    out = []
    for ci, column in enumerate(shown):
        target = column["target"]
        if target == "owner":
            options = [
                (DEFAULT_OWNER, f"Default owner ({default_name or 'unassigned'})"),
                *((str(m.user_id), m.label) for m in members),
            ]
        else:
            options = [("", "Leave empty"), *choice_options(target, definitions)]
        labels = dict(options)
        current = (job.value_map or {}).get(column["header"]) or {}
        rows = []
        for ri, (value, count) in enumerate(column["top"]):
            name = form.value_field(ci, ri)
            suggested = suggester.suggest(target, value)
            if form.is_bound and name in form.data:
                chosen = form.data.get(name)
            elif reset:
                chosen = suggested
            else:
                chosen = current.get(value, suggested)
            if target == "owner" and chosen == "":
                chosen = DEFAULT_OWNER
            rows.append(
                {
                    "value": value,
                    "count": count,
                    "name": name,
                    "id": f"id_{name}",
                    "errors": form.errors.get(name, []),
                    "suggested": suggested,
                    "suggested_label": labels.get(suggested, suggested),
                    "options": format_html_join(
                        "",
                        '<option value="{}"{}>{}</option>',
                        ((v, " selected" if v == chosen else "", lbl) for v, lbl in options),
                    ),
                }
            )
        out.append(
            {
                "header": column["header"],
                "target_label": targets.get(target, target),
                "is_owner": target == "owner",
                "rows": rows,
                "distinct": column.get("distinct", len(rows)),
                "more": max(0, column.get("distinct", 0) - len(rows)),
                "counted_rows": column.get("rows", 0),
                "complete": column.get("complete", True),
            }
        )
    return out
