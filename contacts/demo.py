"""Demo contacts for `manage.py seed_demo` (and the rows `bench_contacts` measures on).

Acme gets a few hundred realistic contacts with companies, tags, lists, notes, tasks, timeline
entries, custom fields and scoring rules; Globex a few dozen of its own. `--contacts N` tops
Acme up to N contacts. Rows are generated in Python and loaded with COPY (psycopg 3), never
one ORM save at a time, so a million contacts load in well under two minutes; for a big load
the secondary indexes and foreign keys are dropped and rebuilt around the COPY, inside the same
transaction (a failure leaves the table as it was).

Idempotent: an org that already has demo companies keeps its realistic data, and a top-up
only adds the contacts that are missing.
"""

from __future__ import annotations

import datetime as dt
import random
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.utils import timezone

from crm import demo
from crm.models import Membership, Organization

from .models import (
    Activity,
    Company,
    Contact,
    ContactList,
    CustomFieldDefinition,
    Note,
    ScoringRule,
    Tag,
    Task,
)
from .scoring import has_active_rules

demo.argument(
    "--contacts",
    type=int,
    default=0,
    metavar="N",
    help="Top Acme up to N contacts (bulk-loaded with COPY; 1000000 works).",
)

ACME_CONTACTS = 320
ACME_COMPANIES = 60
GLOBEX_CONTACTS = 40
GLOBEX_COMPANIES = 12
COPY_BATCH = 20_000
# Loads at least this big rebuild the indexes once instead of updating them row by row.
BIG_LOAD = 100_000


def _words(text: str) -> list[str]:
    return text.split()


# Pools ------------------------------------------------------------------------------------------

FIRST_NAMES = _words(
    "Olivia Liam Emma Noah Amelia Oliver Sophia Elijah Isabella Lucas Mia Mateo Charlotte Levi "
    "Ava Ethan Harper James Luna Aiden Camila Benjamin Gianna Leo Aria Henry Ella Jack Nora "
    "Sebastian Hazel Daniel Zoe Michael Riley Owen Layla Samuel Lily Wyatt Aurora Julian Ellie "
    "Hudson Violet Grayson Nova Ezra Emilia Theo Willow Asher Stella Jayden Maya Isaac Paisley "
    "Aaliyah Omar Fatima Yusuf Priya Arjun Ananya Rohan Mei Wei Hiroshi Yuki Sakura Kenji Ji-woo "
    "Min-jun Seo-yeon Chloé Léa Louis Hugo Jules Manon Lukas Lena Jonas Mia Finn Emma Sven Ingrid "
    "Søren Astrid Mateus Beatriz João Ana Sofía Diego Valentina Santiago Lucía Alejandro Chiara "
    "Giulia Marco Francesca Ahmed Leila Tariq Nadia Kwame Ama Chinedu Ngozi Thabo Zanele Sipho "
    "Aleksander Zofia Piotr Katarzyna Dmitri Anastasia Ivan Olga Tomás Aoife Ciarán Siobhán "
    "Rafael Gabriela Pedro Camille Noémie Eleanor Margaret Thomas William Catherine Patrick"
)
LAST_NAMES = _words(
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez "
    "Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris "
    "Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill "
    "Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Müller Schmidt "
    "Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann Dubois Martin Bernard Thomas "
    "Robert Richard Petit Durand Leroy Moreau Rossi Russo Ferrari Esposito Bianchi Romano Colombo "
    "Silva Santos Oliveira Souza Pereira Costa Almeida Kowalski Nowak Wiśniewski Jensen Nielsen "
    "Hansen Andersson Johansson Karlsson Nilsson Sato Suzuki Takahashi Tanaka Watanabe Kim Park "
    "Choi Chen Wang Zhang Liu Patel Shah Singh Kumar Sharma Gupta Khan Ali Hussain Okafor Mensah "
    "Adeyemi Nkosi Dlamini O'Brien O'Connor Murphy Kelly Byrne Walsh Lindqvist Haddad Jansen"
)
# (title, department, weight)
TITLES = [
    ("VP Sales", "Sales", 6),
    ("VP Marketing", "Marketing", 5),
    ("VP Engineering", "Engineering", 4),
    ("CTO", "Engineering", 4),
    ("CEO", "Executive", 4),
    ("CFO", "Finance", 3),
    ("COO", "Operations", 2),
    ("Founder", "Executive", 2),
    ("Head of Ops", "Operations", 5),
    ("Head of Growth", "Marketing", 4),
    ("Head of Procurement", "Procurement", 3),
    ("Director of Engineering", "Engineering", 4),
    ("Director of Sales", "Sales", 4),
    ("Sales Manager", "Sales", 7),
    ("Account Executive", "Sales", 7),
    ("Marketing Manager", "Marketing", 6),
    ("Product Manager", "Product", 6),
    ("Software Engineer", "Engineering", 8),
    ("Data Analyst", "Finance", 4),
    ("Operations Analyst", "Operations", 4),
    ("Customer Success Manager", "Customer Success", 5),
    ("IT Manager", "IT", 4),
    ("Office Manager", "Operations", 3),
    ("HR Business Partner", "People", 3),
    ("Procurement Lead", "Procurement", 3),
]
SOURCES = [
    ("Website", 20),
    ("Referral", 12),
    ("LinkedIn", 12),
    ("Webinar", 8),
    ("Trade show", 6),
    ("Cold outreach", 10),
    ("Partner", 6),
    ("Google Ads", 8),
    ("Newsletter", 6),
    ("Import", 12),
]
STAGES = [
    ("stage", 8),
    ("lead", 34),
    ("qualified", 20),
    ("opportunity", 12),
    ("customer", 15),
    ("advocate", 4),
    ("churned", 7),
]
STATUSES = [("active", 86), ("inactive", 6), ("unsubscribed", 5), ("bounced", 3)]
CONSENT = [("opted_in", 42), ("opted_out", 8), ("pending", 12), ("unknown", 38)]
DEAL_ROLES = [
    ("", 40),
    ("decision_maker", 14),
    ("influencer", 14),
    ("champion", 10),
    ("blocker", 4),
    ("end_user", 14),
    ("other", 4),
]
INDUSTRY_FIT = [("Strong", 30), ("Medium", 40), ("Weak", 20), (None, 10)]


def _digits(rng: random.Random, n: int) -> str:
    low = 10 ** (n - 1)
    return str(low + int(rng.random() * 9 * low))


def _nxx(rng: random.Random) -> str:
    """A North American local number: the exchange never starts with 0 or 1."""
    return f"{200 + int(rng.random() * 800)}{int(rng.random() * 10000):04d}"


_ASCII = str.maketrans({"ø": "o", "Ø": "O", "ß": "ss", "æ": "ae", "ł": "l", "đ": "d"})


def _ascii(text: str) -> str:
    """Text for an email address: accents dropped ("Lucía" → "lucia")."""
    folded = unicodedata.normalize("NFKD", text.translate(_ASCII))
    return folded.encode("ascii", "ignore").decode()


@dataclass(frozen=True)
class Country:
    code: str
    language: str
    timezone: str
    cities: tuple  # (city, region, postal code prefix)
    phone: Callable[[random.Random], str]
    weight: int


COUNTRIES = [
    Country(
        "US",
        "en",
        "America/New_York",
        (
            ("New York", "NY", "100"),
            ("Boston", "MA", "021"),
            ("Austin", "TX", "787"),
            ("San Francisco", "CA", "941"),
            ("Chicago", "IL", "606"),
            ("Seattle", "WA", "981"),
        ),
        lambda r: f"+1{r.choice(['212', '617', '512', '415', '312', '206'])}{_nxx(r)}",
        40,
    ),
    Country(
        "CA",
        "en",
        "America/Toronto",
        (("Toronto", "ON", "M5V"), ("Vancouver", "BC", "V6B"), ("Montréal", "QC", "H2Y")),
        lambda r: f"+1{r.choice(['416', '604', '514'])}{_nxx(r)}",
        6,
    ),
    Country(
        "GB",
        "en",
        "Europe/London",
        (
            ("London", "England", "EC1"),
            ("Manchester", "England", "M1"),
            ("Edinburgh", "Scotland", "EH1"),
        ),
        lambda r: f"+44207{_digits(r, 7)}",
        12,
    ),
    Country(
        "DE",
        "de",
        "Europe/Berlin",
        (("Berlin", "Berlin", "101"), ("München", "Bayern", "803"), ("Hamburg", "Hamburg", "203")),
        lambda r: f"+4930{_digits(r, 8)}",
        10,
    ),
    Country(
        "FR",
        "fr",
        "Europe/Paris",
        (("Paris", "Île-de-France", "750"), ("Lyon", "Auvergne-Rhône-Alpes", "690")),
        lambda r: f"+331{_digits(r, 8)}",
        7,
    ),
    Country(
        "NL",
        "nl",
        "Europe/Amsterdam",
        (("Amsterdam", "Noord-Holland", "101"), ("Rotterdam", "Zuid-Holland", "301")),
        lambda r: f"+3120{_digits(r, 7)}",
        4,
    ),
    Country(
        "ES",
        "es",
        "Europe/Madrid",
        (("Madrid", "Madrid", "280"), ("Barcelona", "Cataluña", "080")),
        lambda r: f"+3491{_digits(r, 7)}",
        4,
    ),
    Country(
        "SE",
        "sv",
        "Europe/Stockholm",
        (("Stockholm", "Stockholm", "111"), ("Göteborg", "Västra Götaland", "411")),
        lambda r: f"+468{_digits(r, 7)}",
        3,
    ),
    Country(
        "AU",
        "en",
        "Australia/Sydney",
        (("Sydney", "NSW", "200"), ("Melbourne", "VIC", "300")),
        lambda r: f"+6129{_digits(r, 7)}",
        4,
    ),
    Country(
        "IN",
        "en",
        "Asia/Kolkata",
        (("Mumbai", "Maharashtra", "400"), ("Bengaluru", "Karnataka", "560")),
        lambda r: f"+91222{_digits(r, 7)}",
        4,
    ),
    Country(
        "BR",
        "pt",
        "America/Sao_Paulo",
        (("São Paulo", "SP", "010"), ("Rio de Janeiro", "RJ", "200")),
        lambda r: f"+55113{_digits(r, 7)}",
        3,
    ),
    Country(
        "JP",
        "ja",
        "Asia/Tokyo",
        (("Tokyo", "Tokyo", "100"), ("Osaka", "Osaka", "530")),
        lambda r: f"+813{_digits(r, 8)}",
        3,
    ),
]
STREETS = (
    "Main Street",
    "Market Street",
    "High Street",
    "Park Avenue",
    "Oak Lane",
    "Harbor Road",
    "King Street",
    "Station Road",
    "Elm Street",
    "Mill Lane",
    "Church Road",
    "River Drive",
)
COMPANY_FIRST = _words(
    "Northwind Blue Harbor Summit Pioneer Evergreen Silverline Redwood Bright Atlas Cobalt "
    "Granite Lumen Nimbus Orbit Quantum Riverstone Sterling Vertex Willow Aurora Beacon Cedar "
    "Delta Ember Falcon Golden Horizon Ironwood Juniper Keystone Lakeside Meridian Nova Oakridge"
)
COMPANY_SECOND = _words(
    "Logistics Analytics Robotics Foods Health Capital Software Energy Labs Media Partners "
    "Systems Retail Motors Biotech Consulting Networks Apparel Studios Security"
)
COMPANY_SUFFIX = ("Inc", "Ltd", "GmbH", "Group", "Co", "LLC", "SA", "BV")
INDUSTRIES = {
    "Logistics": "Transportation",
    "Analytics": "Software",
    "Robotics": "Manufacturing",
    "Foods": "Food & Beverage",
    "Health": "Healthcare",
    "Capital": "Financial Services",
    "Software": "Software",
    "Energy": "Energy",
    "Labs": "Research",
    "Media": "Media",
    "Partners": "Professional Services",
    "Systems": "IT Services",
    "Retail": "Retail",
    "Motors": "Automotive",
    "Biotech": "Biotechnology",
    "Consulting": "Professional Services",
    "Networks": "Telecommunications",
    "Apparel": "Apparel",
    "Studios": "Media",
    "Security": "Cybersecurity",
}
TAG_NAMES = [
    ("vip", "#e5484d"),
    ("newsletter", "#3e9b4f"),
    ("event-2026", "#6d8cff"),
    ("partner", "#a66bd3"),
    ("trial", "#f5a524"),
    ("enterprise", "#0091ff"),
    ("churn-risk", "#d6409f"),
    ("decision-maker", "#12a594"),
]
NOTE_BODIES = (
    "Intro call went well. They are evaluating two other vendors; decision expected next quarter.",
    "Asked for a security questionnaire and our SOC 2 report. Sent both.",
    "Budget approved for a pilot with one team. Follow up after their planning week.",
    "Prefers email over calls. Out of office until the 20th.",
    "Met at the trade show booth; interested in the reporting add-on.",
    "Champion inside the account. Introduced us to the head of procurement.",
    "Renewal conversation started. Wants a multi-year discount.",
    "Raised concerns about onboarding time. Share the migration guide.",
    "Pricing feedback: per-seat model is hard for their seasonal staff.",
    "Signed the NDA. Next step: technical deep dive with their architects.",
)
TASK_TITLES = (
    "Send the proposal",
    "Follow up on the pilot",
    "Book a demo with the team",
    "Prepare the renewal quote",
    "Call back about pricing",
    "Share the case study",
    "Check in after onboarding",
    "Confirm the meeting agenda",
    "Send the contract for signature",
    "Introduce the solutions engineer",
)
MEETING_SUBJECTS = ("Discovery call", "Product demo", "Pricing review", "Quarterly review")
EMAIL_SUBJECTS = ("Following up", "Your trial", "Proposal attached", "Quick question")

SALES_ROLES = ("owner", "admin", "director", "executive", "team", "partner")


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
        Company.objects.bulk_create(
            _company_rows(org, count - len(existing), owner_ids, rng, taken), batch_size=5000
        )
        existing = list(Company.objects.for_org(org).values_list("id", "domain"))
    return existing


# Contacts through COPY -------------------------------------------------------------------------

COLUMNS = _words(
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
    tag_names: dict = field(default_factory=dict)  # id -> name, for scoring tag rules
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
    scorer: RowScorer | None = None,
) -> Iterator[tuple[int, str, list]]:
    """(contact id, COPY line, tag ids) for `count` realistic contacts; `seq_start` numbers
    them for unique emails. With `scorer` the lead score follows the org's rules, else it is
    random. Written for speed (a million rows in seconds): weighted picks are index look-ups
    into expanded pools, times are assembled from pre-formatted day strings."""
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
            local = _ascii(f"{first}.{last}".lower()).replace(" ", "").replace("'", "")
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
        if scorer is not None:
            row = dict(zip(COLUMNS, values, strict=True))
            row["custom"] = custom
            row["tags"] = [plan.tag_names.get(tag_id, "") for tag_id in tags]
            values[_SCORE_COLUMN] = str(scorer(row))
        yield contact_id, "\t".join(values) + "\n", tags


_SCORE_COLUMN = COLUMNS.index("lead_score")


# Scoring generated rows in Python ---------------------------------------------------------------
# A million-row load cannot afford an UPDATE of every row afterwards (it doubles the table
# before the indexes are built), so rules are evaluated on each generated row with the
# semantics of contacts.filters. A rule this evaluator does not know makes the load fall back
# to the SQL rescore; test_demo checks both give the same scores.

_TEXT_TYPES = {"text", "email", "phone", "url"}
_EXACT_TYPES = {"choice", "country"}
_TIME_FIELDS = {"created_at", "updated_at", "last_activity_at", "last_contacted_at", "consent_date"}


def _moment(value):
    if value in (None, NULL, ""):
        return None
    return dt.datetime.fromisoformat(value)


def _text_test(get, op, value, exact: bool):
    """Tests for a text value: `get(row)` gives "" or None for "not set"."""

    def norm(text):
        return text if exact else text.lower()

    if op == "is_empty":
        return lambda row: not get(row)
    if op == "is_not_empty":
        return lambda row: bool(get(row))
    if op == "any_of":
        wanted = {norm(str(v)) for v in value}
        return lambda row: bool(get(row)) and norm(str(get(row))) in wanted
    wanted = norm(str(value))
    if op == "eq":
        return lambda row: get(row) is not None and norm(str(get(row))) == wanted
    if op == "neq":
        return lambda row: get(row) is None or norm(str(get(row))) != wanted
    if op == "contains":
        return lambda row: get(row) is not None and wanted in norm(str(get(row)))
    if op == "starts_with":
        return lambda row: get(row) is not None and norm(str(get(row))).startswith(wanted)
    return None


def _time_test(key, op, value, tz, now):
    if op == "is_empty":
        return lambda row: _moment(row[key]) is None
    if op == "is_not_empty":
        return lambda row: _moment(row[key]) is not None
    if op == "in_last_days":
        since = now - dt.timedelta(days=value)
        return lambda row: (m := _moment(row[key])) is not None and since <= m <= now
    day = dt.date.fromisoformat(value)
    start = dt.datetime.combine(day, dt.time.min, tzinfo=tz)
    end = start + dt.timedelta(days=1)
    if op == "before":
        return lambda row: (m := _moment(row[key])) is not None and m < start
    if op == "after":
        return lambda row: (m := _moment(row[key])) is not None and m >= end
    if op == "eq":
        return lambda row: (m := _moment(row[key])) is not None and start <= m < end
    return None


def _condition_test(condition: dict, spec, tz, now):
    """A Python test for one parsed condition, or None when this evaluator cannot mirror it."""
    op, value, key = condition["op"], condition["value"], spec.key
    if spec.is_custom:
        name = key.split(".", 1)[1]
        if spec.type in ("text", "url", "choice"):
            exact = spec.type == "choice"

            def get(row):
                found = row["custom"].get(name)
                return None if found in (None, "") else found

            return _text_test(get, op, value, exact)
        return None
    if spec.type == "tags":
        if any(
            _looks_like_uuid(v)
            for v in (value if isinstance(value, list) else [value])
            if v is not None
        ):
            return None
        if op in ("eq", "any_of"):
            wanted = {v.lower() for v in (value if op == "any_of" else [value])}
            return lambda row: any(name.lower() in wanted for name in row["tags"])
        if op == "neq":
            return lambda row: all(name.lower() != value.lower() for name in row["tags"])
        if op == "is_empty":
            return lambda row: not row["tags"]
        return lambda row: bool(row["tags"])
    if key in _TIME_FIELDS:
        return _time_test(key, op, value, tz, now)
    if key in COLUMNS and (spec.type in _TEXT_TYPES or spec.type in _EXACT_TYPES):
        return _text_test(lambda row: row[key] or "", op, value, spec.type in _EXACT_TYPES)
    return None


def _looks_like_uuid(text) -> bool:
    try:
        uuid.UUID(str(text))
    except ValueError:
        return False
    return True


@dataclass
class RowScorer:
    tests: list  # (test, points)

    def __call__(self, row: dict) -> int:
        total = sum(points for test, points in self.tests if test(row))
        return max(0, min(100, total))


def row_scorer(org) -> RowScorer | None:
    """A Python scorer for generated rows of `org`, or None when a rule needs SQL."""
    from crm.selectors import org_timezone

    from .filters import FilterError, parse_condition
    from .scoring import active_rules, rules_catalog

    rules = active_rules(org)
    catalog = rules_catalog(org, rules)
    tz, now = org_timezone(org), timezone.now()
    tests = []
    for rule in rules:
        try:
            condition = parse_condition(rule.condition, catalog)
        except FilterError:
            continue  # a rule that no longer compiles scores nothing, in SQL too
        test = _condition_test(condition, catalog[condition["field"]], tz, now)
        if test is None:
            return None
        tests.append((test, rule.points))
    return RowScorer(tests)


LOAD_TABLES = ("contacts_contact", "contacts_contact_tags")


def _drop_for_load(cursor, tables) -> list[str]:
    """Drop the tables' secondary indexes, unique constraints and foreign keys; returns the
    statements that put them back. Rebuilding an index once, and checking a foreign key with
    one join, is far cheaper than maintaining them row by row through a million-row COPY."""
    restore_indexes, restore_unique, restore_keys = [], [], []
    for table in tables:
        cursor.execute(
            """
            SELECT i.relname, pg_get_indexdef(i.oid)
              FROM pg_index x
              JOIN pg_class i ON i.oid = x.indexrelid
              LEFT JOIN pg_constraint c ON c.conindid = x.indexrelid
             WHERE x.indrelid = %s::regclass AND c.oid IS NULL
            """,
            [table],
        )
        for name, statement in cursor.fetchall():
            cursor.execute(f'DROP INDEX "{name}"')
            restore_indexes.append(statement)
        # Unique constraints (random UUIDs are the costliest index to grow row by row) come
        # back before the foreign keys, which may rely on them.
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid), contype FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype IN ('u', 'f') ORDER BY contype DESC",
            [table],
        )
        for name, definition, kind in cursor.fetchall():
            cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
            statement = f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'
            (restore_unique if kind == "u" else restore_keys).append(statement)
    return restore_indexes + restore_unique + restore_keys


def _copy(cursor, table: str, columns: list[str], lines: Iterator[str]) -> None:
    with cursor.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        batch: list[str] = []
        for line in lines:
            batch.append(line)
            if len(batch) >= COPY_BATCH:
                copy.write("".join(batch))
                batch.clear()
        if batch:
            copy.write("".join(batch))


def copy_contacts(
    plan: ContactPlan,
    count: int,
    rng: random.Random,
    *,
    score: bool,
    log: Callable[[str], None] = lambda text: None,
) -> tuple[int, int]:
    """Load `count` generated contacts of `plan.org` (and their tag links) with COPY.
    Returns the (first, last) contact id. Must run inside a transaction."""
    if count <= 0:
        return (0, -1)
    started = time.perf_counter()

    def step(text: str) -> None:
        log(f"  {text} ({time.perf_counter() - started:.1f}s)")

    with connection.cursor() as cursor:
        # Reserve an id range: nobody else may insert contacts until this transaction ends.
        cursor.execute("LOCK TABLE contacts_contact IN SHARE ROW EXCLUSIVE MODE")
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('contacts_contact', 'id'), "
            "GREATEST((SELECT COALESCE(MAX(id), 0) FROM contacts_contact), "
            "nextval(pg_get_serial_sequence('contacts_contact', 'id'))) + %s)",
            [count],
        )
        last_id = cursor.fetchone()[0]
        first_id = last_id - count + 1
        existing = Contact.objects.for_org(plan.org).count()
        rebuild = count >= BIG_LOAD
        restore: list[str] = []
        if rebuild:
            # Foreign keys are deferred: settle what earlier writes of this transaction left
            # pending, or Postgres refuses to alter the tables.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
            restore = _drop_for_load(cursor, LOAD_TABLES)
            step(f"dropped {len(restore)} indexes and foreign keys for the load")
        # Scores follow the org's rules: computed on each generated row when the rules allow
        # it, else by one UPDATE before the indexes come back (cheap without them).
        scorer = None
        if score and has_active_rules(plan.org):
            scorer = row_scorer(plan.org)
            if scorer is not None and not plan.tag_names:
                plan.tag_names = dict(Tag.objects.for_org(plan.org).values_list("id", "name"))
        tag_links: list[str] = []

        def lines():
            for contact_id, line, tags in generate_contacts(
                plan, first_id, count, existing + 1, rng, scorer
            ):
                tag_links.extend(f"{contact_id}\t{tag_id}\n" for tag_id in tags)
                yield line

        _copy(cursor, "contacts_contact", COLUMNS, lines())
        step(f"copied {count:,} contacts" + (" (scored by the org's rules)" if scorer else ""))
        if tag_links:
            _copy(cursor, "contacts_contact_tags", ["contact_id", "tag_id"], iter(tag_links))
            step(f"copied {len(tag_links):,} tag links")
        if score and scorer is None and has_active_rules(plan.org):
            from .scoring import compile_rules, score_expression

            Contact.objects.filter(org=plan.org, pk__gte=first_id, pk__lte=last_id).update(
                lead_score=score_expression(compile_rules(plan.org))
            )
            step("scored them with the org's rules in SQL")
        for statement in restore:
            began = time.perf_counter()
            cursor.execute(statement)
            if time.perf_counter() - began > 1:
                step(f"slow: {statement[:90]}")
        if restore:
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
            step(f"rebuilt {len(restore)} indexes and foreign keys")
    return first_id, last_id


# Realistic history: lists, notes, tasks, timeline -----------------------------------------------


def _history(org, contact_ids: list[int], member_ids: dict, rng: random.Random) -> None:
    """Notes, tasks and timeline entries for the new contacts. Every date follows the
    record it belongs to: "added" is the contact's own created_at (the System panel shows
    the same moment), nothing happens before a contact exists, a note's entry is the
    note's time and a completed task has its "done" entry."""
    now = timezone.now()
    authors = [uid for uid in member_ids.values() if uid]
    owner_id = member_ids.get("owner")
    team_id = member_ids.get("team")
    created = dict(
        Contact.objects.for_org(org).filter(pk__in=contact_ids).values_list("pk", "created_at")
    )

    def since_created(contact_id: int, within: dt.timedelta) -> dt.datetime:
        """A moment in the last `within`, never before the contact was added."""
        span = min(within, max(now - created[contact_id], dt.timedelta(0)))
        return now - span * rng.random()

    notes, activities, tasks = [], [], []
    for contact_id in contact_ids:
        activities.append(
            Activity(
                org=org,
                type=Activity.Type.CREATED,
                contact_id=contact_id,
                actor_id=rng.choice(authors),
                subject="Contact added",
                occurred_at=created[contact_id],
            )
        )
        for _ in range(rng.choice((0, 1, 1, 2, 3))):
            kind = rng.choice(
                (
                    Activity.Type.CALL,
                    Activity.Type.MEETING,
                    Activity.Type.EMAIL_SENT,
                    Activity.Type.EMAIL_RECEIVED,
                    Activity.Type.EMAIL_OPENED,
                )
            )
            subject = {
                Activity.Type.CALL: "Call: checked in on the evaluation",
                Activity.Type.MEETING: rng.choice(MEETING_SUBJECTS),
            }.get(kind, rng.choice(EMAIL_SUBJECTS))
            activities.append(
                Activity(
                    org=org,
                    type=kind,
                    contact_id=contact_id,
                    actor_id=rng.choice(authors),
                    subject=subject,
                    occurred_at=since_created(contact_id, dt.timedelta(days=60)),
                )
            )
        if rng.random() < 0.4:
            notes.append(
                Note(
                    org=org,
                    contact_id=contact_id,
                    author_id=rng.choice(authors),
                    body=rng.choice(NOTE_BODIES),
                )
            )
    for index, contact_id in enumerate(rng.sample(contact_ids, k=min(len(contact_ids), 70))):
        assignee = (
            owner_id if index % 3 == 0 else (team_id if index % 3 == 1 else rng.choice(authors))
        )
        if index % 4 == 0:
            due, status, done_at = now - dt.timedelta(days=rng.randrange(1, 10)), "open", None
        elif index % 4 == 1:
            due, status, done_at = now + dt.timedelta(hours=rng.randrange(1, 30)), "open", None
        elif index % 4 == 2:
            due, status, done_at = now + dt.timedelta(days=rng.randrange(2, 21)), "open", None
        else:
            due = since_created(contact_id, dt.timedelta(days=30))
            status, done_at = "done", due
        tasks.append(
            Task(
                org=org,
                title=rng.choice(TASK_TITLES),
                due_at=due,
                priority=rng.choice(Task.Priority.values),
                status=status,
                completed_at=done_at,
                assignee_id=assignee,
                created_by_id=owner_id,
                contact_id=contact_id,
            )
        )
    Note.objects.bulk_create(notes, batch_size=2000)
    Task.objects.bulk_create(tasks, batch_size=2000)
    # What the services would have written with them: a note's entry, a completed task's.
    for note in notes:
        activities.append(
            Activity(
                org=org,
                type=Activity.Type.NOTE,
                contact_id=note.contact_id,
                actor_id=note.author_id,
                subject=note.body.strip().splitlines()[0][:120],
                body=note.body,
                data={"note": str(note.public_id)},
                occurred_at=note.created_at,
            )
        )
    for task in tasks:
        if task.status == "done":
            activities.append(
                Activity(
                    org=org,
                    type=Activity.Type.TASK_COMPLETED,
                    contact_id=task.contact_id,
                    actor_id=task.assignee_id,
                    subject=task.title,
                    data={"task": str(task.public_id)},
                    occurred_at=task.completed_at,
                )
            )
    Activity.objects.bulk_create(activities, batch_size=2000)
    # The contact's activity dates follow its timeline (bookkeeping entries do not count).
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE contacts_contact c
               SET last_activity_at = a.latest,
                   last_contacted_at = a.contacted
              FROM (SELECT contact_id, MAX(occurred_at) AS latest,
                           MAX(occurred_at) FILTER (WHERE type IN ('call', 'meeting', 'email_sent'))
                             AS contacted
                      FROM contacts_activity
                     WHERE org_id = %s AND type <> 'created'
                     GROUP BY contact_id) a
             WHERE c.id = a.contact_id AND c.org_id = %s
            """,
            [org.pk, org.pk],
        )


def _custom_fields(org, *, acme: bool) -> set[str]:
    CustomFieldDefinition.objects.get_or_create(
        org=org,
        entity=CustomFieldDefinition.Entity.CONTACT,
        key="industry_fit",
        defaults={
            "label": "Industry fit",
            "field_type": CustomFieldDefinition.FieldType.LIST,
            "choices": ["Strong", "Medium", "Weak"],
            "position": 0,
        },
    )
    keys = {"industry_fit"}
    if acme:
        CustomFieldDefinition.objects.get_or_create(
            org=org,
            entity=CustomFieldDefinition.Entity.CONTACT,
            key="annual_budget",
            defaults={
                "label": "Annual budget",
                "field_type": CustomFieldDefinition.FieldType.CURRENCY,
                "currency": org.base_currency or "USD",
                "position": 1,
            },
        )
        keys.add("annual_budget")
    return keys


SCORING_RULES = [
    ("Senior title", {"field": "job_title", "op": "contains", "value": "VP"}, 20),
    ("C-level", {"field": "job_title", "op": "any_of", "value": ["CEO", "CTO", "CFO", "COO"]}, 30),
    ("Strong industry fit", {"field": "custom.industry_fit", "op": "eq", "value": "Strong"}, 25),
    (
        "Active in the last 30 days",
        {"field": "last_activity_at", "op": "in_last_days", "value": 30},
        15,
    ),
    ("No email", {"field": "email", "op": "is_empty", "value": None}, -30),
    ("Opted out", {"field": "consent_status", "op": "eq", "value": "opted_out"}, -20),
]


def _scoring_rules(org, rules) -> None:
    for position, (name, condition, points) in enumerate(rules):
        ScoringRule.objects.get_or_create(
            org=org,
            name=name,
            defaults={"condition": condition, "points": points, "position": position},
        )


def _member_ids(org) -> dict:
    return dict(Membership.objects.for_org(org).active().values_list("role__key", "user_id"))


def _tags(org) -> list[int]:
    for name, color in TAG_NAMES:
        if not Tag.objects.for_org(org).filter(name__iexact=name).exists():
            Tag.objects.create(org=org, name=name, color=color)
    return list(Tag.objects.for_org(org).values_list("id", flat=True))


def seed_realistic(
    org,
    *,
    contacts: int,
    companies: int,
    acme: bool,
    rng: random.Random,
    log: Callable[[str], None],
) -> bool:
    """The org's demo data, unless it already has some. Returns whether it added any."""
    if Company.objects.for_org(org).exists():
        return False
    members = _member_ids(org)
    sales = [members[key] for key in SALES_ROLES if key in members]
    owner_pool = sales * 6 + [None] * max(1, len(sales))  # about one in seven unowned
    custom_keys = _custom_fields(org, acme=acme)
    tag_ids = _tags(org)
    company_rows = ensure_companies(org, companies, sales, rng)
    _scoring_rules(org, SCORING_RULES if acme else SCORING_RULES[1:2] + SCORING_RULES[4:5])
    plan = ContactPlan(org, owner_pool, company_rows, tag_ids, custom_keys)
    first, last = copy_contacts(plan, contacts, rng, score=False)
    contact_ids = list(range(first, last + 1))
    for name, share in (("Key accounts", 0.15), ("Webinar attendees", 0.25)):
        contact_list, _ = ContactList.objects.get_or_create(
            org=org, name=name, defaults={"created_by_id": members.get("owner")}
        )
        contact_list.contacts.add(*rng.sample(contact_ids, k=int(len(contact_ids) * share)))
    _history(org, contact_ids, members, rng)
    from .scoring import rescore_contacts

    rescore_contacts(org)
    log(f"{org.name}: {contacts} contacts, {len(company_rows)} companies, tags, notes, tasks")
    return True


def top_up(
    org,
    target: int,
    rng: random.Random,
    log: Callable[[str], None],
    *,
    score: bool = True,
    company_share: int = 100,
) -> int:
    """Add generated contacts until the org has `target`. Returns how many were added."""
    have = Contact.objects.for_org(org).count()
    missing = target - have
    if missing <= 0:
        return 0
    members = _member_ids(org)
    sales = [members[key] for key in SALES_ROLES if key in members] or list(members.values())
    companies = ensure_companies(org, max(ACME_COMPANIES, target // company_share), sales, rng)
    tag_ids = _tags(org)
    custom_keys = set(
        CustomFieldDefinition.objects.for_org(org)
        .filter(is_active=True)
        .values_list("key", flat=True)
    )
    plan = ContactPlan(
        org, sales * 6 + [None] * max(1, len(sales)), companies, tag_ids, custom_keys
    )
    log(f"{org.name}: adding {missing:,} contacts (has {have:,})")
    copy_contacts(plan, missing, rng, score=score, log=log)
    return missing


@demo.register
def seed_contacts(command, orgs, options) -> None:
    """Acme and Globex get their contacts; --contacts N tops Acme up to N."""
    rng = random.Random(20260501)

    def log(text: str) -> None:
        command.stdout.write(text)

    acme, globex = orgs[0], orgs[1]
    with transaction.atomic():
        seed_realistic(
            acme, contacts=ACME_CONTACTS, companies=ACME_COMPANIES, acme=True, rng=rng, log=log
        )
        seed_realistic(
            globex,
            contacts=GLOBEX_CONTACTS,
            companies=GLOBEX_COMPANIES,
            acme=False,
            rng=rng,
            log=log,
        )
    wanted = options.get("contacts") or 0
    if wanted:
        with transaction.atomic():
            top_up(acme, wanted, rng, log)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE contacts_contact")
