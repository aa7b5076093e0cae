"""What every step of a scan shares: the block size and batch settings, the contact fields the
engine reads, an organization's thresholds (`org_rules`, `band_for`), what a scan returns
(`FoundPair`, `ScanResult`), and how a progress callback stops it (`ScanStopped`).

A module of its own so the steps below it (keys, workers, index, pairs, the drivers) can all
import it without importing each other."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..model import Model, default_model
from ..models import DedupSettings, DuplicatePair
from ..records import EmailRules

# The largest block compared all with all. A larger one (a common name, a big company's
# domain) is split by the given name: its key is refined into one key per code of the
# contact's names ("smith, j" into "smith, j, JN" and "smith, j, jon"...), and a refined
# block still too large is left to the contacts' other keys. Without this, a million
# contacts put a few hundred "John Smith"-like contacts in one block and the pairs grow
# with the square of the organization's size.
MAX_BLOCK = 50
BUCKETS = 64  # key partitions: one bucket's blocks are in memory at a time
WRITE_BATCH = 5000

Progress = Callable[[str, int, int], object]

# The contact fields the engine compares (a change to one is worth a new comparison: the
# incremental scan, the contact form's warning), and what a scan reads of each contact.
IDENTITY_FIELDS = (
    "first_name",
    "last_name",
    "email",
    "other_emails",
    "phone",
    "mobile",
    "street",
    "postal_code",
    "city",
    "company",
)
CONTACT_COLUMNS = ("id", *IDENTITY_FIELDS[:-1], "company__name")


class ScanStopped(Exception):
    """The progress callback said stop (the job was cancelled or taken over)."""


def _report(progress: Progress | None, stage: str, done: int, total: int) -> None:
    if progress is not None and progress(stage, done, total) is False:
        raise ScanStopped(stage)


# Rules -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrgRules:
    probable: float
    possible: float
    email: EmailRules


def org_rules(org, *, model: Model | None = None) -> OrgRules:
    """The organization's thresholds and email rules; the model's thresholds where it set
    none. "possible" never lies above "probable"."""
    model = model or default_model()
    found = DedupSettings.objects.for_org(org).first()
    if found is None:
        return OrgRules(model.probable, model.possible, EmailRules())
    probable = found.probable_threshold if found.probable_threshold is not None else model.probable
    possible = found.possible_threshold if found.possible_threshold is not None else model.possible
    return OrgRules(
        probable=probable,
        possible=min(possible, probable),
        email=EmailRules(plus_addressing=found.plus_addressing, gmail_dots=found.gmail_dots),
    )


def band_for(score: float, rules: OrgRules) -> str | None:
    if score >= rules.probable:
        return DuplicatePair.Band.PROBABLE
    if score >= rules.possible:
        return DuplicatePair.Band.POSSIBLE
    return None


# Results ---------------------------------------------------------------------------------


@dataclass
class FoundPair:
    a: int  # the lower contact id
    b: int
    score: float
    band: str
    reasons: list[str]


@dataclass
class ScanResult:
    org_id: int
    full: bool
    contacts: int = 0  # contacts scanned (a full scan: all active; incremental: changed)
    compared: int = 0  # candidate pairs compared
    keys: int = 0  # blocking keys written
    blocks: int = 0  # blocks of 2 or more contacts
    oversized_blocks: int = 0  # blocks too large to compare (left to the other keys)
    pairs: list[FoundPair] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def candidates_per_record(self) -> float:
        return round(2 * self.compared / self.contacts, 1) if self.contacts else 0.0

    def summary(self) -> str:
        kind = "Full" if self.full else "Incremental"
        probable = sum(1 for p in self.pairs if p.band == DuplicatePair.Band.PROBABLE)
        return (
            f"{kind} duplicate scan: {self.contacts:,} contacts, {self.compared:,} pairs "
            f"compared, {probable:,} probable and {len(self.pairs) - probable:,} possible "
            "duplicates."
        )
