"""What each demo organization gets, and the seed_demo hook: Acme a few hundred realistic
contacts with companies, tags, lists, notes, tasks, timeline entries, custom fields and
scoring rules; Globex a few dozen; `--contacts N` tops Acme up to N contacts.

Idempotent: an org that already has demo companies keeps its realistic data, and a top-up
only adds the contacts that are missing.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from django.db import connection, transaction

from crm import demo
from crm.models import Membership

from ..models import Company, Contact, ContactList, CustomFieldDefinition, ScoringRule, Tag
from ..scoring import rescore_contacts
from .history import add_history
from .loader import copy_contacts
from .people import ContactPlan, ensure_companies
from .pools import SALES_ROLES, TAG_NAMES

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


def _custom_fields(org, *, acme: bool) -> set[str]:
    CustomFieldDefinition.objects.for_org(org).get_or_create(
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
        CustomFieldDefinition.objects.for_org(org).get_or_create(
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
        ScoringRule.objects.for_org(org).get_or_create(
            org=org,
            name=name,
            defaults={"condition": condition, "points": points, "position": position},
        )


def _member_ids(org) -> dict:
    return dict(Membership.objects.for_org(org).active().values_list("role__key", "user_id"))


def _tags(org) -> list[int]:
    for name, color in TAG_NAMES:
        if not Tag.objects.for_org(org).filter(name__iexact=name).exists():
            Tag.objects.for_org(org).create(org=org, name=name, color=color)
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
        contact_list, _ = ContactList.objects.for_org(org).get_or_create(
            org=org, name=name, defaults={"created_by_id": members.get("owner")}
        )
        contact_list.contacts.add(*rng.sample(contact_ids, k=int(len(contact_ids) * share)))
    add_history(org, contact_ids, members, rng)
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
