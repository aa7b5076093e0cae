"""The "match values" step: the values an export uses for owners and choices, and what each
becomes here.

Owners in an export are people of the old system, and its choice columns use the old
system's words. After the mapping, every column mapped to the owner, to a choice field
(RowConverter.CHOICE_FIELDS) or to a List custom field gets its distinct values counted
(one bounded pass over the file, cached on the job as `value_counts`), and each value gets
a suggested target. The member confirms or changes the top values; the choices go to
`job.value_map` ({column: {value as in the file: what to store}}) and to the saved mapping,
so the next file from the same system needs no clicks. The import applies them in
RowConverter.cell_value before its own rules.

What is stored for a value: a choice's value ("active"), a member's user id as text (owner
columns), "" to leave the field empty, or DEFAULT_OWNER for the import's default owner.

Everything here but `members_for_matching` and `count_values` (which read the database and
the file) is a pure function of its arguments.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass

from ..fields import CUSTOM_PREFIX
from ..models import Contact, CustomFieldDefinition
from . import selectors
from .convert import header_key, repeats_header
from .mapper import _is_sfid
from .mapper_data import LEAD_STATUSES
from .models import ImportJob
from .reader import is_data_row, job_records
from .values import CHOICE_ALIASES, DEFAULT_OWNER, RowConverter

__all__ = [
    "DEFAULT_OWNER",
    "LEAVE_EMPTY",
    "TOP_VALUES",
    "Member",
    "count_values",
    "fold",
    "members_for_matching",
    "suggest_choice",
    "suggest_owner",
    "suggest_value_map",
    "value_columns",
]

LEAVE_EMPTY = ""
# The values shown per column, by count; the rest follow their suggestion.
TOP_VALUES = 50
# Bounds of the counting pass (ARCHITECTURE rule 5): the rows read, the distinct values
# kept per column, and the length of a value worth matching (a longer cell is no owner
# and no choice: it is counted, not kept).
COUNT_ROWS = 100_000
MAX_DISTINCT = 20_000
MAX_VALUE_CHARS = 200

OWNER = "owner"
CHOICE = "choice"
LIST = "list"

# Contact statuses are Active/Inactive/Unsubscribed/Bounced; a sales process's lead statuses
# (HubSpot's NEW, OPEN, IN_PROGRESS, ...) say where a lead stands and are none of them.
_REAL_STATUS_WORDS = {"active", "inactive", "unsubscribed", "bounced", "cleaned"}


def fold(text: str) -> str:
    """Lower-case words without accents or punctuation: "IN_PROGRESS" -> "in progress",
    "Müller, José" -> "muller jose"."""
    text = unicodedata.normalize("NFKD", str(text).replace("ß", "ss"))
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()
    return " ".join(re.sub(r"[\W_]+", " ", text).split())


# What columns need the step --------------------------------------------------------------


def value_kind(target: str, definitions: dict[str, CustomFieldDefinition]) -> str | None:
    """OWNER, CHOICE or LIST for a target whose values need matching, else None.
    `definitions` are the org's active contact custom fields by key."""
    if target == "owner":
        return OWNER
    if target in RowConverter.CHOICE_FIELDS:
        return CHOICE
    if target.startswith(CUSTOM_PREFIX):
        definition = definitions.get(target[len(CUSTOM_PREFIX) :])
        if definition is not None and definition.field_type == CustomFieldDefinition.FieldType.LIST:
            return LIST
    return None


def list_definitions(org) -> dict[str, CustomFieldDefinition]:
    return {
        d.key: d
        for d in CustomFieldDefinition.objects.for_org(org).filter(
            entity=CustomFieldDefinition.Entity.CONTACT,
            is_active=True,
            field_type=CustomFieldDefinition.FieldType.LIST,
        )
    }


def value_columns(job: ImportJob, definitions=None) -> dict[str, str]:
    """{header: target} of the job's mapped columns whose values need matching, in the
    file's order."""
    if definitions is None:
        definitions = list_definitions(job.org)
    out = {}
    for header in job.headers:
        target = (job.mapping or {}).get(header, "")
        if target and value_kind(target, definitions):
            out[header] = target
    return out


# Choices ---------------------------------------------------------------------------------


def choice_options(target: str, definitions: dict) -> list[tuple[str, str]]:
    """(stored value, label) of each choice a value of `target` may become."""
    if target.startswith(CUSTOM_PREFIX):
        definition = definitions[target[len(CUSTOM_PREFIX) :]]
        return [(c, c) for c in definition.choices or ()]
    return [(value, str(label)) for value, label in Contact._meta.get_field(target).choices]


def _choice_table(target: str, definitions: dict) -> dict[str, str]:
    """Folded words -> stored value: the choices' labels and values, and what other
    products call them (values.CHOICE_ALIASES)."""
    table = {}
    for value, label in choice_options(target, definitions):
        table[fold(label)] = value
        table[fold(value)] = value
    for alias, value in CHOICE_ALIASES.get(target, {}).items():
        table.setdefault(fold(alias), value)
    return table


def suggest_choice(target: str, value: str, table: dict[str, str]) -> str:
    """The stored value suggested for a cell of a choice column, LEAVE_EMPTY when none fits.
    `table` comes from `_choice_table(target, ...)`."""
    words = fold(value)
    if target == "status" and words in LEAD_STATUSES and words not in _REAL_STATUS_WORDS:
        return LEAVE_EMPTY
    return table.get(words, LEAVE_EMPTY)


# Owners ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    user_id: int
    email: str
    first_name: str
    last_name: str

    @property
    def label(self) -> str:
        name = f"{self.first_name} {self.last_name}".strip()
        return f"{name} ({self.email})" if name else self.email


def members_for_matching(job: ImportJob, policy=None) -> list[Member]:
    """The members an owner value may become: those the import's creator may give contacts
    to (selectors.owners_for_rows) and, when `policy` is given, the acting member too."""
    members = selectors.owners_for_rows(job)
    if policy is not None:
        allowed = selectors.assignable_owners(job.org, policy).values("user_id")
        members = members.filter(user_id__in=allowed)
    rows = members.order_by("user__first_name", "user__last_name", "user__email").values_list(
        "user_id", "user__email", "user__first_name", "user__last_name"
    )
    return [Member(*row) for row in rows]


class OwnerIndex:
    """Members by folded email and by folded full name ("First Last"); a name two members
    share points at nobody, so it is never guessed."""

    def __init__(self, members: list[Member]):
        self.by_email = {m.email.casefold(): m.user_id for m in members if m.email}
        names: dict[str, set[int]] = {}
        for m in members:
            full = fold(f"{m.first_name} {m.last_name}")
            if full and " " in full:  # a first name alone names no one for sure
                names.setdefault(full, set()).add(m.user_id)
        self.by_name = {name: ids.pop() for name, ids in names.items() if len(ids) == 1}
        self.ids = {m.user_id for m in members}


def _name_forms(value: str) -> list[str]:
    text = " ".join(value.split())
    forms = [fold(text)]
    if text.count(",") == 1:  # "Last, First"
        last, first = (p.strip() for p in text.split(","))
        forms.append(fold(f"{first} {last}"))
    return forms


def suggest_owner(value: str, index: OwnerIndex) -> str:
    """A member's user id (as text) for an owner cell: the member whose email it is, else
    the member whose full name it is; DEFAULT_OWNER for anyone else, and for an id of the
    old system (a Salesforce user id 005..., a number) which names no one here."""
    text = value.strip()
    if not text or _is_sfid(text) or text.isdigit():
        return DEFAULT_OWNER
    found = index.by_email.get(text.casefold())
    if found is None and "@" not in text:
        found = next((index.by_name[f] for f in _name_forms(text) if f in index.by_name), None)
    return str(found) if found is not None else DEFAULT_OWNER


# Counting --------------------------------------------------------------------------------


def count_values(job: ImportJob, columns: dict[str, str]) -> dict[str, dict]:
    """{header: {"target", "rows", "distinct", "complete", "counts": Counter}} for the value
    columns, over the first COUNT_ROWS data rows of the file; at most MAX_DISTINCT values
    of up to MAX_VALUE_CHARS characters are kept per column (the others are counted in
    "distinct" as far as they are seen, not listed). Reads the file once."""
    indexes = {job.headers.index(h): h for h in columns}
    counts = {h: Counter() for h in columns}
    untracked: dict[str, set] = {h: set() for h in columns}
    rows, complete = 0, True
    width = len(job.headers)
    header_row = header_key(job.headers)
    with job.file.open("rb") as fh:
        records = job_records(job, fh)
        try:
            for cells in records:
                # The header written again (monday.com's groups) holds no value to match.
                if not is_data_row(cells, width) or repeats_header(cells, header_row):
                    continue
                if rows >= COUNT_ROWS:
                    complete = False
                    break
                rows += 1
                for i, header in indexes.items():
                    if i >= len(cells):
                        continue
                    value = cells[i].strip()
                    if not value:
                        continue
                    counter = counts[header]
                    if value in counter or (
                        len(value) <= MAX_VALUE_CHARS and len(counter) < MAX_DISTINCT
                    ):
                        counter[value] += 1
                    elif len(untracked[header]) < MAX_DISTINCT:
                        untracked[header].add(value[:MAX_VALUE_CHARS])
        finally:
            records.close()
    return {
        header: {
            "target": columns[header],
            "rows": rows,
            "distinct": len(counts[header]) + len(untracked[header]),
            "complete": complete and len(untracked[header]) < MAX_DISTINCT,
            "counts": counts[header],
        }
        for header in columns
    }


def top_values(counter: Counter, limit: int | None = None) -> list[list]:
    """[[value, count], ...] of the most frequent values (TOP_VALUES of them), ties in
    alphabetical order."""
    ranked = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))
    return [[v, c] for v, c in ranked[: limit or TOP_VALUES]]


# Suggestions -----------------------------------------------------------------------------


class Suggester:
    """Suggestions for the values of one job's columns; built once, asked per value."""

    def __init__(self, members: list[Member], definitions: dict):
        self.owners = OwnerIndex(members)
        self.definitions = definitions
        self._tables: dict[str, dict] = {}

    def suggest(self, target: str, value: str) -> str:
        if target == "owner":
            return suggest_owner(value, self.owners)
        table = self._tables.get(target)
        if table is None:
            table = self._tables[target] = _choice_table(target, self.definitions)
        return suggest_choice(target, value, table)

    def valid(self, target: str, stored) -> bool:
        """Whether `stored` may be chosen for a value of `target`."""
        if not isinstance(stored, str):
            return False
        if target == "owner":
            return stored in (DEFAULT_OWNER, LEAVE_EMPTY) or (
                stored.isdigit() and int(stored) in self.owners.ids
            )
        if stored == LEAVE_EMPTY:
            return True
        return stored in {v for v, _ in choice_options(target, self.definitions)}


def suggestions_for(
    columns: dict[str, str], counted: dict[str, dict], suggester: Suggester
) -> dict[str, dict[str, str]]:
    """The automatic value map: every shown (top) value with its suggestion, and the other
    counted values whose suggestion names a member or a choice (values whose suggestion is
    to leave them out are not listed: the import's own rules report them as warnings, so
    nothing unseen is dropped without a word)."""
    out: dict[str, dict[str, str]] = {}
    for header, target in columns.items():
        column = counted.get(header) or {}
        counter = column.get("counts") or Counter()
        shown = {v for v, _ in top_values(counter)}
        chosen = {}
        for value in counter:
            stored = suggester.suggest(target, value)
            if value in shown or stored not in (LEAVE_EMPTY, DEFAULT_OWNER):
                chosen[value] = stored
        out[header] = chosen
    return out


def suggest_value_map(job: ImportJob, *, policy=None) -> dict[str, dict[str, str]]:
    """The automatic value map of `job` as its mapping stands: {header: {value: stored}}
    for each column mapped to the owner, a choice field or a List custom field (reads the
    file once, bounded). Values a saved mapping or the member already matched are not
    merged in: see services.import_set_mapping for that."""
    definitions = list_definitions(job.org)
    columns = value_columns(job, definitions)
    if not columns:
        return {}
    suggester = Suggester(members_for_matching(job, policy), definitions)
    return suggestions_for(columns, count_values(job, columns), suggester)


def merged_value_map(
    columns: dict[str, str],
    suggested: dict[str, dict[str, str]],
    earlier: dict,
    suggester: Suggester,
) -> dict[str, dict[str, str]]:
    """The suggestions with the earlier choices (a saved mapping's, or the member's before
    the mapping changed) on top, where they are still valid for the column's target."""
    out = {}
    for header, target in columns.items():
        column = dict(suggested.get(header) or {})
        for value, stored in ((earlier or {}).get(header) or {}).items():
            if isinstance(value, str) and suggester.valid(target, stored):
                column[value] = stored
        out[header] = column
    return out


def counts_cache(columns: dict[str, str], counted: dict[str, dict], pending: int) -> dict:
    """What job.value_counts keeps for the page: per column its target, the rows read, the
    number of distinct values and the top ones with their counts; and how many shown
    values no earlier choice covers (0: the step can be skipped)."""
    return {
        "columns": {
            header: {
                "target": target,
                "rows": counted[header]["rows"],
                "distinct": counted[header]["distinct"],
                "complete": counted[header]["complete"],
                "top": top_values(counted[header]["counts"]),
            }
            for header, target in columns.items()
        },
        "pending": pending,
    }


def pending_values(counted: dict[str, dict], earlier: dict) -> int:
    """How many shown values no earlier choice covers."""
    pending = 0
    for header, column in counted.items():
        known = (earlier or {}).get(header) or {}
        pending += sum(1 for v, _ in top_values(column["counts"]) if v not in known)
    return pending


def cache_is_current(job: ImportJob, columns: dict[str, str]) -> bool:
    cached = (job.value_counts or {}).get("columns") or {}
    return {h: c.get("target") for h, c in cached.items()} == columns


def error_key(header: str, value: str) -> str:
    """How import_set_value_map names a refused choice in its ValidationError."""
    return json.dumps([header, value], ensure_ascii=False)
