"""What an import run is, fixed before its first row: the plan of one job (which contact
columns it writes, their defaults and tags, the staging table's columns and types), the
owners whose contacts its author may change, and how the file is cut into work: chunks of
CHUNK_ROWS records (a small first one), each split into one Part per merge lane.

Everything here is read-only: the pipeline (pipeline.py) converts the chunks and the merge
(match.py, merge.py) writes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.core.exceptions import ValidationError

from crm.models import Membership

from ...models import Contact, CustomFieldDefinition
from ..convert import COMPANY_TARGETS
from ..mapper import COMBINED_TARGETS, CUSTOM
from ..models import ImportJob
from ..selectors import owners_for_rows
from ..spread import plan_spread
from ..values import RowConverter

CHUNK_ROWS = 20_000
FIRST_CHUNK_ROWS = 2_000

# Staging columns that map 1:1 onto contact columns, with their SQL types.
CONTACT_COLUMNS: dict[str, str] = {
    "first_name": "text",
    "last_name": "text",
    "email": "text",
    "phone": "text",
    "mobile": "text",
    "job_title": "text",
    "department": "text",
    "deal_role": "text",
    "status": "text",
    "lifecycle_stage": "text",
    "lead_score": "smallint",
    "source": "text",
    "owner_id": "bigint",
    "street": "text",
    "city": "text",
    "region": "text",
    "postal_code": "text",
    "country": "text",
    "language": "text",
    "timezone": "text",
    "linkedin_url": "text",
    "twitter_handle": "text",
    "consent_status": "text",
    "consent_type": "text",
    "consent_date": "timestamptz",
    "consent_source": "text",
    "gdpr_basis": "text",
    "consent_email": "boolean",
    "consent_sms": "boolean",
    "consent_phone": "boolean",
    "consent_whatsapp": "boolean",
    "consent_data_processing": "boolean",
    # A number kept as typed (see convert.py) is flagged; the flag follows its number.
    "phone_unverified": "boolean",
    "mobile_unverified": "boolean",
}
NULLABLE = {
    "owner_id",
    "consent_date",
    "consent_email",
    "consent_sms",
    "consent_phone",
    "consent_whatsapp",
    "consent_data_processing",
}
# Staged whatever the mapping: the keys rows are matched on (a phone number kept as typed
# is never one: its flag says so).
MATCH_COLUMNS = ("email", "phone", "mobile", "phone_unverified", "mobile_unverified")


def field_for_column(column: str) -> str:
    return column[:-3] if column.endswith("_id") else column


@dataclass
class Plan:
    """What this job writes, fixed before the first row."""

    converter: RowConverter
    mapped: set[str]
    defaults: dict
    default_tags: list[str]
    custom_keys: list[str] = field(default_factory=list)
    # The staging table's columns after row_number, with their SQL types: the mapped
    # contact columns, the match keys, and what the mapping feeds besides.
    stage_types: dict[str, str] = field(default_factory=dict)

    def staged(self, column: str) -> bool:
        return column in self.stage_types


def _stage_types(converter: RowConverter, mapped: set[str], default_tags: list) -> dict:
    targets = converter.mapped_fields
    types = {c: t for c, t in CONTACT_COLUMNS.items() if c in mapped or c in MATCH_COLUMNS}
    types["external_id"] = "text"
    if any(t.startswith("custom.") for t in targets):
        types["custom"] = "jsonb"
    if "email" in targets or "other_emails" in targets:
        types["other_emails"] = "jsonb"
    if "tags" in targets or default_tags:
        types["tags"] = "text[]"
    if COMPANY_TARGETS & targets or "company_department" in targets:
        types.update(company_name="text", company_domain="text", company_key="text")
    if "note" in targets:
        types["note"] = "text"
    return types


def model_default(name: str):
    value = Contact._meta.get_field(field_for_column(name)).get_default()
    return "" if value is None and name not in NULLABLE else value


def build_plan(job: ImportJob) -> Plan:
    org = job.org
    # An owner column may name only the members the import's creator may give contacts to.
    members = dict(owners_for_rows(job).values_list("user__email", "user_id"))
    custom_for_columns = {}
    for header, target in job.mapping.items():
        if target == CUSTOM:
            custom_for_columns[header] = _custom_key_for(job, header)
    converter = RowConverter(
        org=org,
        headers=job.headers,
        mapping=job.mapping,
        members_by_email=members,
        custom_keys_for_columns=custom_for_columns,
        value_map=job.value_map,
        default_owner_id=int(job.defaults["owner"]) if (job.defaults or {}).get("owner") else None,
    )
    mapped = {("owner_id" if t == "owner" else t) for t in converter.mapped_fields}
    if "full_name" in mapped:
        mapped |= {"first_name", "last_name"}
    for target, fields in COMBINED_TARGETS.items():
        if target in mapped:
            mapped |= set(fields)
    if plan_spread(job.headers, converter.plan).phone_types:
        mapped |= {"phone", "mobile"}  # a typed column's row says which of the two
    mapped |= {f"{t}_unverified" for t in ("phone", "mobile") if t in mapped}
    defaults = {}
    d = job.defaults or {}
    if d.get("owner"):
        defaults["owner_id"] = int(d["owner"])
    for key in ("source", "consent_status", "consent_type"):
        if d.get(key):
            defaults[key] = d[key]
    defaults.setdefault("consent_type", Contact.ConsentType.IMPORTED)
    defaults.setdefault("lifecycle_stage", Contact.Stage.STAGE)
    default_tags = [t.strip()[:60] for t in (d.get("tags") or []) if t.strip()]
    return Plan(
        converter=converter,
        mapped=mapped,
        defaults=defaults,
        default_tags=default_tags,
        custom_keys=sorted(
            t[len("custom.") :] for t in converter.mapped_fields if t.startswith("custom.")
        ),
        stage_types=_stage_types(converter, mapped, default_tags),
    )


def writable_owner_ids(job: ImportJob) -> list[int] | None:
    """The owners whose contacts the job's author may change: None for all (scope "all", or
    no author, as for a system import), else their own id and, for a team scope, their
    teammates'. Mirrors Policy.owns_in_scope, set-based."""
    from crm.permissions import Policy

    if job.created_by_id is None:
        return None
    membership = (
        Membership.objects.for_org(job.org)
        .active()
        .filter(user_id=job.created_by_id)
        .select_related("role")
        .first()
    )
    policy = Policy(membership)
    scope = policy.scope("contacts") if policy.can_access("contacts") else "own"
    if scope == "all" and membership is not None:
        return None
    ids = {job.created_by_id}
    if scope == "team" and membership is not None and membership.team_id:
        ids.update(
            Membership.objects.for_org(job.org_id)
            .filter(team_id=membership.team_id)
            .values_list("user_id", flat=True)
        )
    return sorted(ids)


def _custom_key_for(job: ImportJob, header: str) -> str:
    """The custom field a "Store as custom field" column goes to (created at mapping time)."""
    key = (job.defaults or {}).get("custom_keys", {}).get(header)
    if not key:
        raise ValidationError(f"Column “{header}” has no custom field yet; map it again.")
    if (
        not CustomFieldDefinition.objects.for_org(job.org)
        .filter(entity="contact", key=key, is_active=True)
        .exists()
    ):
        raise ValidationError(f"The custom field for “{header}” no longer exists.")
    return key


class ChunkCells:
    """The cells of a chunk's records by row number (a chunk's numbers are consecutive):
    what the error report shows of a row the merge refuses."""

    __slots__ = ("first", "records")

    def __init__(self, records: list):
        self.first = records[0][0] if records else 0
        self.records = records

    def __call__(self, number: int) -> list[str]:
        return self.records[number - self.first][1]


@dataclass
class Part:
    """One merge lane's share of one chunk, converted: the COPY text of its good rows; the
    rows refused while converting and the chunk's blank records (lane 0 takes those);
    how many of the chunk's records it accounts for; and the chunk's cells."""

    copy: bytes
    rows: int
    bad: list[tuple[int, str]]
    records: int
    cells: ChunkCells
    tags: set[str] = field(default_factory=set)  # its rows' tags, lower-cased
    number: int = -1  # chunk * lanes + lane, set when it is committed
    # (row number, [(column, kind, cell, message), ...]) of its rows with warnings
    warnings: list[tuple[int, list]] = field(default_factory=list)
