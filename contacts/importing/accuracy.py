"""How right the import is for real exports of other CRMs: each file of the corpus in
tests/fixtures/exports/ is imported into a fresh organization with the automatic mapping
and the default "upsert" policy, through the same services as the wizard, and every
contact is compared field by field with what its expected.json says a careful person wants.

Shared by tests/contacts/test_import_corpus.py (which holds each system to the floor in
floors.json) and `manage.py bench_import --accuracy` (which prints the table).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.files import File

from crm.models import Membership, Organization, User
from crm.permissions import Policy
from crm.services import Actor
from crm.services.orgs import ensure_builtin_roles

from ..fields import CUSTOM_PREFIX
from ..models import Contact, Note
from . import services
from .convert import COMPANY_TARGETS, data_records, header_key
from .engine.plan import build_plan
from .mapper import COMBINED_TARGETS
from .models import ImportJob
from .reader import job_records
from .values import DEFAULT_OWNER, tag_names

CORPUS = Path(settings.BASE_DIR) / "tests" / "fixtures" / "exports"
FLOORS = CORPUS / "floors.json"
# The member every corpus import runs as; the files name them as the owner of some rows.
MEMBER_EMAIL = "corpus-owner@corpus.test"
MEMBER_NAME = ("Corra", "Owner")
LOST = "<not imported>"


@dataclass
class Mismatch:
    person: str
    field: str
    expected: object
    actual: object


@dataclass
class SystemResult:
    system: str
    rows: int = 0  # data rows the import counted in the file
    people: int = 0  # people the file holds (expected.json)
    arrived: int = 0
    lost: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)  # contacts no expected person accounts for
    compared: int = 0
    matched: int = 0
    row_errors: int = 0  # rows the import flagged (an error or a warning)
    status: str = ""
    failure: str = ""
    mismatches: list[Mismatch] = field(default_factory=list)
    error_messages: list[str] = field(default_factory=list)
    # Cells of mapped columns that reached no field and that no report line names.
    dropped: list[str] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return self.matched / self.compared if self.compared else 0.0


def systems() -> list[str]:
    return sorted(p.parent.name for p in CORPUS.glob("*/expected.json"))


def expected_for(system: str) -> dict:
    return json.loads((CORPUS / system / "expected.json").read_text(encoding="utf-8"))


def floors() -> dict:
    return json.loads(FLOORS.read_text(encoding="utf-8")) if FLOORS.exists() else {}


def raise_floors(results: list[SystemResult]) -> dict:
    """Record today's figures in floors.json where they are better than the recorded ones
    (a ratchet: a floor only ever goes up). Accuracy is rounded down to two places."""
    recorded = floors()
    for r in results:
        old = recorded.get(r.system, {"accuracy": 0.0, "max_lost": r.people, "max_extra": 99})
        recorded[r.system] = {
            "accuracy": max(old["accuracy"], math.floor(r.accuracy * 100) / 100),
            "max_lost": min(old["max_lost"], len(r.lost)),
            "max_extra": min(old.get("max_extra", 0), len(r.extra)),
        }
    FLOORS.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return recorded


def make_org(slug: str, name: str) -> Membership:
    """A fresh organization whose owner is the corpus member."""
    org = Organization.objects.create(name=name, slug=slug)
    roles = ensure_builtin_roles(org)
    user = User.objects.filter(email__iexact=MEMBER_EMAIL).first()
    if user is None:
        user = User.objects.create_user(
            email=MEMBER_EMAIL, first_name=MEMBER_NAME[0], last_name=MEMBER_NAME[1]
        )
    return Membership.objects.for_org(org).create(org=org, user=user, role=roles["owner"])


def import_export(system: str, membership: Membership) -> ImportJob:
    """Import the system's file as a new user would: upload, keep the suggested mapping,
    upsert, run (in this process, as `manage.py import_contacts` does)."""
    doc = expected_for(system)
    path = CORPUS / system / doc["file"]
    org, policy = membership.org, Policy(membership)
    actor = Actor.for_user(membership.user)
    with open(path, "rb") as fh:
        upload = File(fh, name=os.path.basename(path))
        upload.size = os.path.getsize(path)
        job = services.import_create(org=org, actor=actor, policy=policy, upload=upload)
    job = services.import_set_mapping(
        job=job,
        actor=actor,
        policy=policy,
        mapping=dict(job.mapping),
        defaults={},
        import_policy=ImportJob.Policy.UPSERT,
        blank_policy=ImportJob.BlankPolicy.KEEP,
    )
    ImportJob.objects.for_org(job.org_id).filter(pk=job.pk).update(status=ImportJob.Status.QUEUED)
    services.run_import(org_id=org.pk, job_id=job.pk)
    job.refresh_from_db()
    return job


def _actual(contact: Contact, name: str):
    if name == "company":
        return contact.company.name if contact.company_id else ""
    if name == "tags":
        return sorted(t.name for t in contact.tags.all())
    if name == "owner":
        return contact.owner.email.lower() if contact.owner_id else ""
    if name == "other_emails":
        return sorted(e.lower() for e in contact.other_emails or [])
    return getattr(contact, name)


def _same(expected, actual) -> bool:
    if isinstance(expected, list):
        return sorted(expected) == sorted(actual or [])
    if isinstance(expected, str):
        return expected.strip() == ("" if actual is None else str(actual).strip())
    return expected == actual


def _describe(key: dict) -> str:
    kind, value = next(iter(key.items()))
    return f"{value}" if kind == "email" else f"{kind}: {value}"


class _Finder:
    """The contacts of an organization, looked up by email, name or phone; each contact is
    claimed by one expected person at most."""

    def __init__(self, org):
        self.contacts = list(
            Contact.objects.for_org(org)
            .select_related("company", "owner")
            .prefetch_related("tags")
            .order_by("pk")
        )
        self.claimed: set[int] = set()

    def find(self, key: dict) -> Contact | None:
        kind, value = next(iter(key.items()))
        value = (value or "").strip().lower()
        for c in self.contacts:
            if c.pk in self.claimed:
                continue
            if kind == "email":
                hit = c.email.lower() == value or value in [e.lower() for e in c.other_emails]
            elif kind == "name":
                hit = f"{c.first_name} {c.last_name}".strip().lower() == value
            else:
                hit = value in (c.phone.lower(), c.mobile.lower())
            if hit:
                self.claimed.add(c.pk)
                return c
        return None

    def unclaimed(self) -> list[Contact]:
        return [c for c in self.contacts if c.pk not in self.claimed]


def compare(system: str, job: ImportJob) -> SystemResult:
    doc = expected_for(system)
    result = SystemResult(system=system, people=len(doc["people"]))
    result.status, result.failure = job.status, job.error or ""
    result.rows = job.total
    result.row_errors = job.error_count + job.warning_count
    result.error_messages = [
        f"row {n}: {m}"
        for n, m in job.row_errors.order_by("row_number").values_list("row_number", "message")
    ]
    finder = _Finder(job.org)
    for person in doc["people"]:
        who = _describe(person["key"])
        contact = finder.find(person["key"])
        if contact is None:
            result.lost.append(who)
        else:
            result.arrived += 1
        for name, expected in person["fields"].items():
            result.compared += 1
            actual = LOST if contact is None else _actual(contact, name)
            if contact is not None and _same(expected, actual):
                result.matched += 1
            elif contact is not None:
                result.mismatches.append(Mismatch(who, name, expected, actual))
    result.extra = [
        " ".join(x for x in (c.first_name, c.last_name, c.email, c.phone) if x) or f"#{c.pk}"
        for c in finder.unclaimed()
    ]
    return result


def _stored(contact: Contact, target: str, note_ids: set[int], cell: str) -> bool:
    """Whether the contact holds something for a mapped column's target."""
    if target.startswith(CUSTOM_PREFIX):
        return (contact.custom or {}).get(target[len(CUSTOM_PREFIX) :]) not in (None, "", [])
    if target == "full_name":
        return bool(contact.first_name or contact.last_name)
    if target in COMPANY_TARGETS:
        person = f"{contact.first_name} {contact.last_name}".strip().casefold()
        return contact.company_id is not None or cell.casefold() == person
    if target == "external_id":
        return bool((contact.custom or {}).get("external_id"))
    if target in COMBINED_TARGETS:
        return any(_stored(contact, name, note_ids, cell) for name in COMBINED_TARGETS[target])
    if target == "owner":
        return contact.owner_id is not None
    if target == "tags":  # Google's "* myContacts" is on everyone and names no tag
        return bool(list(contact.tags.all())) or not tag_names(cell)
    if target == "note":
        return contact.pk in note_ids
    value = getattr(contact, target, None)
    return value not in (None, "", [], {})


def silently_dropped(job: ImportJob) -> list[str]:
    """Every non-blank cell of a mapped column must have reached its field, or be named in
    the import's report (a refused row, or a warning on that column), or have been matched
    to "leave empty" on the match-values step. Anything else was lost without a word."""
    plan = build_plan(job).converter.plan
    contact_of: dict[int, int] = {}
    for part in job.parts.all():
        contact_of.update(zip(part.created_rows, part.created_ids, strict=True))
    contact_of.update(job.records.values_list("row_number", "contact_id"))
    refused, warned = set(), set()
    for row, is_warning, cells in job.row_errors.values_list("row_number", "is_warning", "fields"):
        if not is_warning:
            refused.add(row)
        for cell in cells or ():
            warned.add((row, cell.get("column")))
    contacts = (
        Contact.objects.for_org(job.org).prefetch_related("tags").in_bulk(set(contact_of.values()))
    )
    note_ids = set(
        Note.objects.for_org(job.org)
        .filter(contact_id__in=contacts)
        .values_list("contact_id", flat=True)
    )
    chosen_empty = {
        (header, value)
        for header, values in (job.value_map or {}).items()
        for value, stored in values.items()
        if stored in ("", DEFAULT_OWNER)
    }
    out = []
    width = len(job.headers)
    with job.file.open("rb") as fh:
        records = job_records(job, fh)
        people = data_records(
            enumerate(records, start=job.header_row + 2), header_key(job.headers), width
        )
        for number, cells in people:
            if number in refused:
                continue
            contact = contacts.get(contact_of.get(number))
            for index, target, header in plan:
                cell = cells[index].strip() if index < len(cells) else ""
                if not cell or (number, header) in warned or (header, cell) in chosen_empty:
                    continue
                if contact is None or not _stored(contact, target, note_ids, cell):
                    out.append(f"row {number}, {header}: “{cell[:60]}”")
    return out


def measure(system: str, membership: Membership) -> SystemResult:
    job = import_export(system, membership)
    result = compare(system, job)
    result.dropped = silently_dropped(job)
    return result


def summary_table(results: list[SystemResult]) -> str:
    lines = [
        f"{'system':<24}{'rows':>6}{'people':>8}{'arrived':>9}{'lost':>6}{'extra':>7}"
        f"{'flagged':>8}{'fields':>8}{'accuracy':>10}"
    ]
    for r in results:
        lines.append(
            f"{r.system:<24}{r.rows:>6}{r.people:>8}{r.arrived:>9}{len(r.lost):>6}"
            f"{len(r.extra):>7}{r.row_errors:>8}{r.compared:>8}{r.accuracy:>10.3f}"
        )
    if len(results) == 1:
        return "\n".join(lines)
    compared = sum(r.compared for r in results)
    matched = sum(r.matched for r in results)
    overall = matched / compared if compared else 0.0
    lines.append(
        f"{'overall':<24}{sum(r.rows for r in results):>6}{sum(r.people for r in results):>8}"
        f"{sum(r.arrived for r in results):>9}{sum(len(r.lost) for r in results):>6}"
        f"{sum(len(r.extra) for r in results):>7}{sum(r.row_errors for r in results):>8}"
        f"{compared:>8}{overall:>10.3f}"
    )
    return "\n".join(lines)


def mismatch_table(result: SystemResult, limit: int = 60) -> str:
    """What went wrong for one system, for a person to read: lost people, then wrong
    fields grouped by field."""
    lines = [f"{result.system}: accuracy {result.accuracy:.3f}, status {result.status}"]
    if result.failure:
        lines.append(f"  import failed: {result.failure}")
    if result.lost:
        lines.append(f"  lost ({len(result.lost)}): " + ", ".join(result.lost[:limit]))
    if result.extra:
        lines.append(f"  extra contacts ({len(result.extra)}): " + ", ".join(result.extra[:10]))
    by_field: dict[str, list[Mismatch]] = {}
    for m in result.mismatches:
        by_field.setdefault(m.field, []).append(m)
    for name, items in sorted(by_field.items(), key=lambda kv: -len(kv[1])):
        lines.append(f"  {name}: {len(items)} wrong")
        for m in items[:5]:
            lines.append(f"      {m.person:<44} expected {m.expected!r:<34} got {m.actual!r}")
    if result.dropped:
        lines.append(f"  dropped without a word ({len(result.dropped)}):")
        lines.extend(f"      {d}" for d in result.dropped[:10])
    for message in result.error_messages[:5]:
        lines.append(f"  {message[:160]}")
    return "\n".join(lines)
