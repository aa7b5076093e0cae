"""Generated demo contacts and companies: realistic rows, fast. Contacts come out as COPY
lines for loader.py (a million in seconds); companies are created with bulk_create.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.utils import timezone

from crm.models import Organization

from ..models import Company
from .pools import (
    COMPANY_FIRST,
    COMPANY_SECOND,
    COMPANY_SUFFIX,
    CONSENT,
    COUNTRIES,
    DEAL_ROLES,
    FIRST_NAMES,
    INDUSTRIES,
    INDUSTRY_FIT,
    LAST_NAMES,
    SOURCES,
    STAGES,
    STATUSES,
    STREETS,
    TITLES,
    ascii_for_email,
    words,
)


def _company_rows(org, count: int, owner_ids: list, rng: random.Random, taken: set) -> list:
    rows = []
    attempt = 0
    while len(rows) < count:
        attempt += 1
        first = rng.choice(COMPANY_FIRST)
        second = rng.choice(COMPANY_SECOND)
        name = f"{first} {second}"
        if attempt > len(COMPANY_FIRST) * len(COMPANY_SECOND):
            name = f"{name} {attempt}"
        domain = name.lower().replace(" ", "") + ".example"
        if domain in taken:
            continue
        taken.add(domain)
        rows.append(
            Company(
                org=org,
                name=f"{name} {rng.choice(COMPANY_SUFFIX)}",
                domain=domain,
                website=f"https://www.{domain}",
                industry=INDUSTRIES.get(second, ""),
                size=rng.choice(Company.Size.values),
                description=f"{name} works in {INDUSTRIES.get(second, 'business').lower()}.",
                owner_id=rng.choice(owner_ids) if owner_ids else None,
            )
        )
    return rows


def ensure_companies(org, count: int, owner_ids: list, rng: random.Random) -> list[tuple]:
    """At least `count` companies for the org; returns (id, domain) of all of them."""
    existing = list(Company.objects.for_org(org).values_list("id", "domain"))
    if len(existing) < count:
        taken = {domain for _, domain in existing}
        Company.objects.for_org(org).bulk_create(
            _company_rows(org, count - len(existing), owner_ids, rng, taken), batch_size=5000
        )
        existing = list(Company.objects.for_org(org).values_list("id", "domain"))
    return existing


COLUMNS = words(
    "id public_id created_at updated_at org_id first_name last_name email other_emails phone "
    "mobile job_title department company_id deal_role status lifecycle_stage lead_score source "
    "owner_id street city region postal_code country language timezone linkedin_url "
    "twitter_handle consent_status consent_type consent_date consent_source gdpr_basis "
    "consent_email consent_sms consent_phone consent_whatsapp consent_data_processing custom "
    "is_archived archived_at last_contacted_at last_activity_at"
)
NULL = "\\N"


@dataclass
class ContactPlan:
    """What generated contacts point at: owners (None = unowned), companies, tags, and
    which custom fields to fill."""

    org: Organization
    owner_ids: list
    companies: list  # (id, domain)
    tag_ids: list
    custom_keys: set = field(default_factory=set)
    archived_share: float = 0.02
    tagged_share: float = 0.5


def _pool(pairs) -> list:
    """A list in which each value appears as often as its weight: one index picks it."""
    return [value for value, weight in pairs for _ in range(weight)]


# UUID version 4: version nibble 4, variant bits 10.
_UUID_CLEAR = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_UUID_SET = (0x4000 << 64) | (0x8000 << 48)


def generate_contacts(
    plan: ContactPlan,
    first_id: int,
    count: int,
    seq_start: int,
    rng: random.Random,
    *,
    random_scores: bool = True,
) -> Iterator[tuple[int, str, list]]:
    """(contact id, COPY line, tag ids) for `count` realistic contacts; `seq_start` numbers
    them for unique emails. The lead score is random, or 0 without `random_scores` (the
    loader then has the org's rules score the rows). Written for speed (a million rows in
    seconds): weighted picks are index look-ups into expanded pools, times are assembled
    from pre-formatted day strings."""
    now = timezone.now().replace(microsecond=0)
    r = rng.random
    titles = _pool([((t, d), w) for t, d, w in TITLES])
    sources = _pool(SOURCES)
    stages = _pool(STAGES)
    statuses = _pool(STATUSES)
    consents = _pool(CONSENT)
    deal_roles = _pool(DEAL_ROLES)
    fits = _pool(INDUSTRY_FIT)
    countries = _pool([(c, c.weight) for c in COUNTRIES])
    owners = plan.owner_ids or [None]
    companies = plan.companies
    tag_ids = plan.tag_ids
    free_mail = ("gmail.com", "outlook.com", "proton.me")
    days = [(now - dt.timedelta(days=n)).date().isoformat() for n in range(731)]
    clock = [f"{h:02d}:{m:02d}" for h in range(24) for m in range(60)]
    locals_cache: dict = {}
    want_fit = "industry_fit" in plan.custom_keys
    want_budget = "annual_budget" in plan.custom_keys
    org_id = str(plan.org.pk)
    # Public ids come from fresh randomness, never from the seeded generator: a re-run with
    # the same seed must not produce ids that already exist.
    uuid_bits = random.Random().getrandbits

    def stamp(day: int) -> str:
        return f"{days[day]} {clock[int(r() * 1440)]}:{int(r() * 60):02d}+00"

    for offset in range(count):
        contact_id = first_id + offset
        number = seq_start + offset
        first = FIRST_NAMES[int(r() * len(FIRST_NAMES))]
        last = LAST_NAMES[int(r() * len(LAST_NAMES))]
        local = locals_cache.get((first, last))
        if local is None:
            local = ascii_for_email(f"{first}.{last}".lower()).replace(" ", "").replace("'", "")
            locals_cache[(first, last)] = local
        job_title, department = titles[int(r() * len(titles))]
        country = countries[int(r() * len(countries))]
        city, region, postal = country.cities[int(r() * len(country.cities))]
        company = companies[int(r() * len(companies))] if companies and r() < 0.9 else None
        if r() < 0.05:
            email = ""
        else:
            domain = company[1] if company else free_mail[int(r() * 3)]
            email = f"{local}{number}@{domain}"
        created_day = int(r() * 730) + 1
        updated_day = int(r() * created_day)
        activity_day = int(r() * created_day) if r() < 0.7 else None
        activity = stamp(activity_day) if activity_day is not None else NULL
        contacted = activity if activity_day is not None and r() < 0.6 else NULL
        consent_status = consents[int(r() * len(consents))]
        opted_in = consent_status == "opted_in"
        custom: dict = {}
        if want_fit:
            fit = fits[int(r() * len(fits))]
            if fit:
                custom["industry_fit"] = fit
        if want_budget and r() < 0.6:
            custom["annual_budget"] = int(r() * 495 + 5) * 1000
        archived = r() < plan.archived_share
        owner = owners[int(r() * len(owners))]
        bits = (uuid_bits(128) & _UUID_CLEAR) | _UUID_SET
        created = stamp(created_day)
        updated = stamp(updated_day)
        consent_date = stamp(created_day - 1 if created_day > 1 else 0) if opted_in else NULL
        if opted_in:
            consent = ("explicit", consent_date, "Web form", "consent", "t")
            consent_flags = ("t" if r() < 0.5 else "f", "t" if r() < 0.4 else "f", NULL, "t")
        else:
            consent = (
                "imported" if consent_status != "unknown" else "",
                NULL,
                "",
                "legitimate_interest" if r() < 0.4 else "",
                "f" if consent_status == "opted_out" else NULL,
            )
            consent_flags = ("f", NULL, NULL, NULL)
        tags = []
        if tag_ids and r() < plan.tagged_share:
            tags = rng.sample(tag_ids, k=min(len(tag_ids), 1 + (r() < 0.3)))
        values = [
            str(contact_id),
            f"{bits:032x}",
            created,
            updated,
            org_id,
            first,
            last,
            email,
            "[]",
            country.phone(rng) if r() < 0.85 else "",
            country.phone(rng) if r() < 0.5 else "",
            job_title,
            department,
            str(company[0]) if company else NULL,
            deal_roles[int(r() * len(deal_roles))],
            statuses[int(r() * len(statuses))],
            stages[int(r() * len(stages))],
            str(int(r() * 101)),
            sources[int(r() * len(sources))],
            str(owner) if owner else NULL,
            f"{int(r() * 399) + 1} {STREETS[int(r() * len(STREETS))]}",
            city,
            region,
            f"{postal}{int(r() * 89) + 10}",
            country.code,
            country.language,
            country.timezone,
            f"https://www.linkedin.com/in/{local}-{number}" if r() < 0.6 else "",
            f"{local[:12]}{number % 1000}" if r() < 0.25 else "",
            consent_status,
            *consent,
            *consent_flags,
            # Only plain words and numbers go in: nothing to escape for JSON or COPY.
            "{"
            + ", ".join(
                f'"{k}": ' + (f'"{v}"' if isinstance(v, str) else str(v)) for k, v in custom.items()
            )
            + "}",
            "t" if archived else "f",
            updated if archived else NULL,
            contacted,
            activity,
        ]
        if not random_scores:
            # The loader has the org's rules score the rows once they are in; the random
            # draw above stays, so a seed gives the same contacts either way.
            values[_SCORE_COLUMN] = "0"
        yield contact_id, "\t".join(values) + "\n", tags


_SCORE_COLUMN = COLUMNS.index("lead_score")
