"""The relations a contact merge moves, found by introspection, and how they move back.

Every foreign key (and one-to-one) to Contact, hidden ones included, moves with one
`UPDATE ... RETURNING id` per relation, unless MERGE_EXCLUDED names it with its reason.
Where a relation is unique per contact (a tag, a list, a deal, an object record) and both
contacts have the same link, the secondary's row is deleted and kept as values in the
MergeRecord, so undo can insert it again exactly (same id, same public id).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from django.apps import apps
from django.db import connection, models
from django.db.models import F, Q
from django.utils.dateparse import parse_datetime

from ..dedup.models import DuplicateDismissal, DuplicatePair, MergeRecord
from ..models import Contact

# Foreign keys to Contact that a merge leaves where they are, with the reason. Every other
# one moves (tests/contacts/test_merge.py fails for a relation in neither set).
MERGE_EXCLUDED: dict[str, str] = {
    "contacts.Contact.merged_into": (
        "The merge trail itself: contacts merged into the secondary earlier keep pointing "
        "at it (follow the chain); the secondary's own pointer is set by the merge."
    ),
    "contacts.DuplicatePair.contact_a": (
        "Scores of a pair describe those two records; pairs with the secondary are deleted "
        "(kept in the MergeRecord and put back by undo), the next scan scores the primary."
    ),
    "contacts.DuplicatePair.contact_b": "As contact_a.",
    "contacts.DuplicateDismissal.contact_a": (
        '"Not a duplicate" was said of the secondary and a third contact; it stays with the '
        "archived secondary and holds again when the merge is undone (repointing it could "
        "hide a real pair). One between the two merged contacts is deleted, kept for undo."
    ),
    "contacts.DuplicateDismissal.contact_b": "As contact_a.",
    "contacts.MergeRecord.primary": (
        "The merge history: records of earlier merges stay as they were."
    ),
    "contacts.MergeRecord.secondary": "As primary.",
    "compliance.ConsentRecord.contact": (
        "The consent ledger is append-only: each row stays with the record the consent was "
        "given on. What the merge changes in the primary's consents is ledgered as the merge's."
    ),
    "compliance.Suppression.contact": (
        "A suppression holds for its address, whichever contact carries it; the link only "
        "says which contact it was made from."
    ),
    "pipeline.OrderRollup.contact": (
        "Kept by database triggers on pipeline_order: moving the orders moves their totals."
    ),
}


def relation_key(field: models.Field) -> str:
    return f"{field.model._meta.label}.{field.name}"


def contact_relations() -> list[models.ForeignKey]:
    """Every foreign key (and one-to-one) to Contact, hidden ones (related_name="+") and the
    tables Django makes for many-to-many relations included."""
    out = []
    for rel in Contact._meta.get_fields(include_hidden=True):
        if not isinstance(rel, models.ForeignObjectRel) or rel.many_to_many:
            continue  # a many-to-many moves through its table's foreign key, listed too
        out.append(cast(models.ForeignKey, rel.field))
    return out


def relations_to_move() -> list[models.ForeignKey]:
    return [f for f in contact_relations() if relation_key(f) not in MERGE_EXCLUDED]


def _has_org(model) -> bool:
    return any(f.name == "org" for f in model._meta.concrete_fields)


def rows_of(model, org):
    """`model`'s rows of `org`; tables without an org column (many-to-many links) are
    reached through their contact, which is already the org's."""
    manager = model._default_manager
    return manager.for_org(org) if _has_org(model) else manager.all()


def _unique_sets(field: models.ForeignKey) -> list[tuple[list[str], Q | None]]:
    """The unique keys of `field`'s model that include `field`: (the other fields, the
    constraint's condition). A key of `field` alone means one row per contact."""
    model = field.model
    sets: list[tuple[list[str], Q | None]] = []
    if field.unique:
        sets.append(([], None))
    for together in model._meta.unique_together:
        if field.name in together:
            sets.append(([n for n in together if n != field.name], None))
    for constraint in model._meta.constraints:
        if not isinstance(constraint, models.UniqueConstraint):
            continue
        names = list(constraint.fields)
        if not names and constraint.expressions:
            if not all(isinstance(e, F) for e in constraint.expressions):
                continue  # an expression key (lower(...)) cannot hold a contact id
            names = [cast(Any, e).name for e in constraint.expressions]
        if field.name in names or field.attname in names:
            others = [n for n in names if n not in (field.name, field.attname)]
            sets.append((others, constraint.condition))
    return sets


def conflicting_ids(field, org, primary_id: int, secondary_id: int) -> set[int]:
    """Ids of the secondary's rows that cannot move: the primary has a row with the same
    unique key already."""
    found: set[int] = set()
    rows = rows_of(field.model, org)
    for others, condition in _unique_sets(field):
        base = rows.filter(condition) if condition is not None else rows
        secondary_rows = base.filter(**{field.attname: secondary_id})
        if not others:
            if base.filter(**{field.attname: primary_id}).exists():
                found.update(secondary_rows.values_list("pk", flat=True))
            continue
        attnames = [cast(models.Field, field.model._meta.get_field(n)).attname for n in others]
        taken = set(base.filter(**{field.attname: primary_id}).values_list(*attnames))
        if not taken:
            continue
        for row in secondary_rows.values_list("pk", *attnames):
            if tuple(row[1:]) in taken:
                found.add(row[0])
    return found


def dump_value(value):
    """A stored value as JSON."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, (int, float, str, bool, list, dict)) or value is None:
        return value
    return str(value)


def load_value(field: models.Field, value):
    if value is None:
        return None
    if isinstance(field, models.DateTimeField):
        return parse_datetime(value)
    if isinstance(field, models.DateField):
        return dt.date.fromisoformat(value)
    return field.to_python(value) if not isinstance(field, models.JSONField) else value


def _row_values(row: models.Model) -> dict:
    return {
        f.attname: dump_value(getattr(row, f.attname))
        for f in type(row)._meta.concrete_fields
        if not getattr(f, "generated", False)
    }


def repoint(field, org, *, from_id: int, to_id: int, ids: list[int] | None = None) -> list[int]:
    """Point the rows of `field` that point at `from_id` (and are among `ids`, when given)
    at `to_id`: one UPDATE ... RETURNING, the ids in one array parameter. Returns the ids
    of the rows it moved."""
    model = field.model
    quote = connection.ops.quote_name
    table, column = quote(model._meta.db_table), quote(field.column)
    pk = quote(model._meta.pk.column)
    # Only names from the models, quoted; every value is a parameter.
    sql = f"UPDATE {table} SET {column} = %s WHERE {column} = %s"  # noqa: S608
    params: list = [to_id, from_id]
    if _has_org(model):
        sql += f" AND {quote(model._meta.get_field('org').column)} = %s"
        params.append(org.pk)
    if ids is not None:
        sql += f" AND {pk} = ANY(%s::bigint[])"
        params.append(list(ids))
    with connection.cursor() as cursor:
        cursor.execute(f"{sql} RETURNING {pk}", params)
        return [row[0] for row in cursor.fetchall()]


def move_relations(org, primary: Contact, secondary: Contact) -> dict:
    """Point every related row of the secondary at the primary; returns
    {relation: [moved ids]} and, under "dropped", the rows deleted as duplicate links.
    The contacts are locked, so no row can be linked to either of them meanwhile."""
    moved: dict = {}
    dropped: dict = {}
    for field in relations_to_move():
        key = relation_key(field)
        conflicts = conflicting_ids(field, org, primary.pk, secondary.pk)
        if conflicts:
            doomed = rows_of(field.model, org).filter(pk__in=conflicts)
            dropped[key] = [_row_values(row) for row in doomed]
            doomed.delete()
        ids = repoint(field, org, from_id=secondary.pk, to_id=primary.pk)
        if ids:
            moved[key] = sorted(ids)
    # Pairs a scan found with the secondary describe a record that is gone: deleted, kept for
    # undo. The primary's pairs with others stay; the next scan scores the merged record.
    pairs = DuplicatePair.objects.for_org(org).filter(
        Q(contact_a=secondary.pk) | Q(contact_b=secondary.pk)
    )
    pair_rows = list(pairs)
    if pair_rows:
        dropped[relation_key(cast(models.Field, DuplicatePair._meta.get_field("contact_a")))] = [
            _row_values(row) for row in pair_rows
        ]
        pairs.delete()
    dismissals = DuplicateDismissal.objects.for_org(org).filter(
        contact_a=min(primary.pk, secondary.pk), contact_b=max(primary.pk, secondary.pk)
    )
    dismissal_rows = list(dismissals)
    if dismissal_rows:
        # Someone said these two are not duplicates, then merged them anyway: the merge wins.
        dropped[
            relation_key(cast(models.Field, DuplicateDismissal._meta.get_field("contact_a")))
        ] = [_row_values(row) for row in dismissal_rows]
        dismissals.delete()
    if dropped:
        moved["dropped"] = dropped
    return moved


def _row_names(model, ids: list[int], org, limit: int = 3) -> str:
    rows = list(rows_of(model, org).filter(pk__in=ids[:limit]))
    names = [f"“{row}”" for row in rows]
    more = len(ids) - len(names)
    text = ", ".join(names)
    if more > 0:
        text = f"{text} and {more} more" if text else f"{more}"
    return text


def _model_noun(model, count: int) -> str:
    meta = model._meta
    return str(meta.verbose_name if count == 1 else meta.verbose_name_plural)


def _field_by_key(key: str) -> models.ForeignKey | None:
    for field in contact_relations():
        if relation_key(field) == key:
            return field
    return None


def _missing_rows_problems(field, org, missing: list[int], primary: Contact) -> list[str]:
    """Why moved rows did not move back: deleted since, or linked to someone else."""
    model = field.model
    existing = set(rows_of(model, org).filter(pk__in=missing).values_list("pk", flat=True))
    gone = [pk for pk in missing if pk not in existing]
    elsewhere = [pk for pk in missing if pk in existing]
    problems = []
    if gone:
        noun = _model_noun(model, len(gone))
        verb = "was" if len(gone) == 1 else "were"
        problems.append(f"{len(gone)} {noun} moved by the merge {verb} deleted since.")
    if elsewhere:
        noun = _model_noun(model, len(elsewhere))
        names = _row_names(model, elsewhere, org)
        verb = "is" if len(elsewhere) == 1 else "are"
        problems.append(
            f"The {noun} {names} moved by the merge {verb} no longer linked to {primary.full_name}."
        )
    return problems


def move_back(record: MergeRecord, primary: Contact, secondary: Contact) -> list[str]:
    """Point the moved rows at the secondary again; returns the problems with rows that
    could not move back (the caller then refuses, which rolls the moves back too)."""
    problems: list[str] = []
    for key, ids in record.moved.items():
        if key == "dropped":
            continue
        field = _field_by_key(key)
        if field is None:
            problems.append(f"The relation {key} no longer exists, so its rows cannot move back.")
            continue
        back = set(repoint(field, record.org, from_id=primary.pk, to_id=secondary.pk, ids=ids))
        missing = [pk for pk in ids if pk not in back]
        if missing:
            problems.extend(_missing_rows_problems(field, record.org, missing, primary))
    return problems


def dropped_problems(record: MergeRecord, primary: Contact, secondary: Contact) -> list[str]:
    """The rows a merge deleted as duplicate links come back only if what they link to still
    exists."""
    problems = []
    for key, rows in (record.moved.get("dropped") or {}).items():
        model = _model_of_key(key)
        if model is None:
            problems.append(f"The relation {key} no longer exists, so its links cannot return.")
            continue
        if model in _SCAN_RESULTS:
            continue  # best effort, see _still_valid_scan_rows
        for f in model._meta.concrete_fields:
            if not f.many_to_one or f.related_model is Contact or f.name == "org":
                continue
            wanted = {row.get(f.attname) for row in rows} - {None}
            if not wanted:
                continue
            related = f.related_model._default_manager
            related_rows = (
                related.for_org(record.org_id) if _has_org(f.related_model) else related.all()
            )
            found = set(related_rows.filter(pk__in=wanted).values_list("pk", flat=True))
            missing = wanted - found
            if missing:
                noun = _model_noun(f.related_model, len(missing))
                problems.append(
                    f"{len(missing)} {noun} linked to {secondary.full_name} before the merge "
                    "no longer exist."
                )
    return problems


def _model_of_key(key: str):
    app_label, model_name, _field = key.split(".", 2)
    try:
        return apps.get_model(app_label, model_name)
    except LookupError:
        return None


_SCAN_RESULTS = (DuplicatePair, DuplicateDismissal)


def _still_valid_scan_rows(org, rows: list[dict]) -> list[dict]:
    """Pairs and dismissals come back where both contacts still exist; they are a scan's
    findings, so one that cannot come back is simply found again by the next scan."""
    ids = {row["contact_a_id"] for row in rows} | {row["contact_b_id"] for row in rows}
    alive = set(Contact.objects.for_org(org).filter(pk__in=ids).values_list("pk", flat=True))
    return [row for row in rows if row["contact_a_id"] in alive and row["contact_b_id"] in alive]


def restore_dropped(record: MergeRecord) -> None:
    """Insert the links the merge deleted again, with their ids and values."""
    for key, rows in (record.moved.get("dropped") or {}).items():
        model = _model_of_key(key)
        if model is None:
            continue  # dropped_problems() refused the undo already
        if model in _SCAN_RESULTS:
            rows = _still_valid_scan_rows(record.org, rows)
        fields = {
            f.attname: f for f in model._meta.concrete_fields if not getattr(f, "generated", False)
        }
        objs = [
            model(
                **{
                    name: load_value(fields[name], value)
                    for name, value in row.items()
                    if name in fields
                }
            )
            for row in rows
        ]
        # A scan may have found the same pair again since: that row wins.
        ignore = model in _SCAN_RESULTS
        model._default_manager.bulk_create(objs, ignore_conflicts=ignore)
