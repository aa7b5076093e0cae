"""Demo custom objects for `manage.py seed_demo` (registered through pipeline/demo.py, after
the demo deals and orders).

Acme gets the custom objects module turned on and an object type "Course" (Acme Academy's
training catalogue): named by its Name field (the primary field every type starts with),
with a code (a text field with a pattern), a level (list), a start date, seats, a price in
Acme's base currency and whether it runs online. Twelve courses, owned by the members who
sell and lead, starting between three months ago and four months from now. Sixty contacts
are linked to them with the day they enrolled: students, within each course's seats (a few
also in a follow-up course), and eight guardians, each linked to a youth camp with their
child. A few deals are linked to upcoming courses as "Team training".

The type, its fields, the records and the links go through the services with a system actor,
so every value is checked exactly as the app checks it (and audited, with its outbox event).
Deterministic (seeded random, dates relative to the organization's today) and added once: an
organization that has a "course" type keeps it as it is.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from contacts.models import Contact
from crm import demo
from crm.models import Membership, Organization
from crm.selectors import org_timezone
from crm.services import Actor

from .models import Deal, ObjectType
from .services.object_fields import object_field_create
from .services.object_links import associate
from .services.object_records import record_create
from .services.object_types import object_type_create

ACTOR = Actor.system("demo")
SEED = 16
MODULE = "custom_objects"
TYPE_KEY = "course"
STUDENTS = 52
GUARDIANS = 8
SECOND_COURSES = 6
DEAL_LINKS = 5
STUDENT = "student"
GUARDIAN = "guardian"
TEAM_TRAINING = "Team training"
# Who runs Acme's courses (built-in role keys), and how often each owns one.
OWNER_WEIGHTS = {"team": 4, "director": 3, "executive": 2, "admin": 2, "owner": 1}

COURSE_TYPE = {
    "name": "Course",
    "plural": "Courses",
    "key": TYPE_KEY,
    "icon": "calendar",
    "description": "Acme Academy's training courses, with their students and guardians.",
    # The type's first field: text, required, and the one that names each course.
    "primary_label": "Name",
}
LEVELS = ["Beginner", "Intermediate", "Advanced"]
COURSE_FIELDS: list[dict] = [
    {
        "label": "Code",
        "key": "code",
        "field_type": "text",
        "required": True,
        "regex": r"^[A-Z]{3}-[0-9]{3}$",
        "regex_message": "Use three capital letters, a dash and three digits, e.g. CRM-101.",
        "help_text": "The catalogue code, e.g. CRM-101.",
    },
    {"label": "Level", "key": "level", "field_type": "list", "choices": LEVELS},
    {"label": "Start date", "key": "start_date", "field_type": "date"},
    {"label": "Seats", "key": "seats", "field_type": "number"},
    # No currency given: the organization's base currency.
    {"label": "Price", "key": "price", "field_type": "currency"},
    {"label": "Online", "key": "online", "field_type": "checkbox"},
]


@dataclass(frozen=True)
class Course:
    code: str
    name: str
    level: str
    starts_in: int  # days from today (negative: already started)
    seats: int
    price: str
    online: bool
    youth: bool = False  # a camp for minors: their guardians are linked too


COURSES = [
    Course("CRM-101", "CRM Fundamentals", "Beginner", -84, 30, "0.00", True),
    Course("SAL-120", "Consultative Selling", "Beginner", -61, 20, "650.00", False),
    Course("DAT-110", "Data Hygiene and Imports", "Beginner", -40, 24, "295.00", True),
    Course("CRM-201", "Pipeline Management in Practice", "Intermediate", -19, 20, "495.00", True),
    Course("YTH-105", "Junior Coding Camp (ages 12-15)", "Beginner", -5, 16, "380.00", False, True),
    Course("SAL-240", "Negotiation Workshop", "Intermediate", 9, 14, "890.00", False),
    Course("API-220", "Integrations and Webhooks", "Intermediate", 23, 18, "750.00", True),
    Course("MKT-130", "Email Campaigns That Convert", "Beginner", 37, 25, "245.00", True),
    Course("YTH-115", "Teen Entrepreneurship Camp", "Beginner", 51, 16, "420.00", False, True),
    Course("DAT-310", "Advanced Reporting and Forecasting", "Advanced", 68, 12, "1150.00", True),
    Course("API-330", "Building on the API", "Advanced", 92, 12, "1290.00", True),
    Course("LED-350", "Leading a Sales Team", "Advanced", 118, 10, "1450.00", False),
]
# A student of the first course may take the second one next.
FOLLOW_UPS = {
    "CRM-101": "CRM-201",
    "DAT-110": "DAT-310",
    "API-220": "API-330",
    "SAL-120": "SAL-240",
}


class Seeded(NamedTuple):
    courses: int = 0
    contact_links: int = 0
    deal_links: int = 0


def turn_on(org) -> None:
    """The custom objects module on, whatever else the organization has on."""
    if MODULE not in (org.enabled_modules or []):
        org.enabled_modules = [*(org.enabled_modules or []), MODULE]
        Organization.objects.filter(pk=org.pk).update(enabled_modules=org.enabled_modules)


def _owners(org) -> list:
    """The members who own courses, each as often as their role's weight; anyone active
    when none of those roles is there."""
    memberships = list(
        Membership.objects.for_org(org).active().select_related("user", "role").order_by("user_id")
    )
    weighted = [m.user for m in memberships for _ in range(OWNER_WEIGHTS.get(m.role.key, 0))]
    return weighted or [m.user for m in memberships]


def _course_type(org) -> ObjectType:
    object_type = object_type_create(org=org, actor=ACTOR, data=COURSE_TYPE)
    for data in COURSE_FIELDS:
        object_field_create(object_type=object_type, actor=ACTOR, data=data)
    return object_type


def _enrolled_on(start: dt.date, today: dt.date, rng: random.Random) -> dt.date:
    """A day before the course starts, never after today."""
    latest = min(start - dt.timedelta(days=1), today)
    return latest - dt.timedelta(days=rng.randrange(0, 40))


def _open_seat(taken: dict, rng: random.Random) -> Course | None:
    """A course with a free seat, the more free seats the likelier (the big introductory
    courses fill up first)."""
    free = [course for course in COURSES if taken[course.code] < course.seats]
    if not free:
        return None
    return rng.choices(free, weights=[c.seats - taken[c.code] for c in free])[0]


def _plan_links(people: list[int], rng: random.Random) -> list[tuple[Course, int, str]]:
    """(course, contact id, label) for about sixty of `people`: one in seven is a guardian,
    linked to a youth camp with their child (a student of the same camp); the others are
    students of a course with a free seat, a few of them also of its follow-up course."""
    chosen = rng.sample(people, min(STUDENTS + GUARDIANS, len(people)))
    guardians = min(GUARDIANS, len(chosen) // 7)
    taken = dict.fromkeys((course.code for course in COURSES), 0)
    links: list[tuple[Course, int, str]] = []
    camps = [course for course in COURSES if course.youth]
    for guardian, child in zip(chosen[:guardians], chosen[guardians : 2 * guardians], strict=True):
        camp = rng.choice(camps)
        taken[camp.code] += 1
        links += [(camp, child, STUDENT), (camp, guardian, GUARDIAN)]
    for contact_id in chosen[2 * guardians :]:
        course = _open_seat(taken, rng)
        if course is None:
            break
        taken[course.code] += 1
        links.append((course, contact_id, STUDENT))
    by_code = {course.code: course for course in COURSES}
    firsts = [(c, pk) for c, pk, label in links if label == STUDENT and c.code in FOLLOW_UPS]
    for course, contact_id in rng.sample(firsts, min(SECOND_COURSES, len(firsts))):
        follow_up = by_code[FOLLOW_UPS[course.code]]
        if taken[follow_up.code] < follow_up.seats:
            taken[follow_up.code] += 1
            links.append((follow_up, contact_id, STUDENT))
    return links


def _course_values(course: Course, start: dt.date) -> dict:
    return {
        "name": course.name,
        "code": course.code,
        "level": course.level,
        "start_date": start,
        "seats": course.seats,
        "price": Decimal(course.price),
        "online": course.online,
    }


def seed_objects(org, *, rng: random.Random, now=None) -> Seeded:
    """The org's demo courses and their links (see the module docstring); what was added."""
    turn_on(org)
    existing = ObjectType.objects.for_org(org).filter(Q(key=TYPE_KEY) | Q(name__iexact="Course"))
    if existing.exists():
        return Seeded()
    now = now or timezone.now()
    today = now.astimezone(org_timezone(org)).date()
    object_type = _course_type(org)
    owners = _owners(org)
    records = {}
    starts = {}
    for n, course in enumerate(COURSES):
        starts[course.code] = today + dt.timedelta(days=course.starts_in)
        data: dict = {
            "values": _course_values(course, starts[course.code]),
            "external_id": f"academy-{2401 + n}",
        }
        if owners:
            data["owner"] = rng.choice(owners)
        records[course.code] = record_create(
            org=org, object_type=object_type, actor=ACTOR, data=data
        )

    people = list(
        Contact.objects.for_org(org)
        .filter(is_archived=False)
        .order_by("id")
        .values_list("pk", flat=True)[:400]
    )
    links = _plan_links(people, rng)
    contacts = Contact.objects.for_org(org).in_bulk([pk for _c, pk, _label in links])
    for course, contact_id, label in links:
        associate(
            org=org,
            actor=ACTOR,
            policy=None,
            record=records[course.code],
            contact=contacts[contact_id],
            label=label,
            associated_on=_enrolled_on(starts[course.code], today, rng),
        )

    # A few customers buy a course for their team: their deals are linked to it.
    deals = list(
        Deal.objects.for_org(org)
        .filter(status__in=[Deal.Status.OPEN, Deal.Status.WON])
        .order_by("id")[:60]
    )
    trainings = [course for course in COURSES if not course.youth and course.starts_in > 0]
    picked = rng.sample(deals, min(DEAL_LINKS, len(deals)))
    for deal in picked:
        associate(
            org=org,
            actor=ACTOR,
            policy=None,
            record=records[rng.choice(trainings).code],
            deal=deal,
            label=TEAM_TRAINING,
            associated_on=today - dt.timedelta(days=rng.randrange(0, 30)),
        )
    return Seeded(len(records), len(links), len(picked))


@demo.register
def seed_object_demo(command, orgs, options) -> None:
    """Acme's courses, linked to students, guardians and deals; custom objects on."""
    acme = orgs[0]
    with transaction.atomic():
        added = seed_objects(acme, rng=random.Random(SEED))
    if added.courses:
        command.stdout.write(
            f"Acme: {added.courses} courses with {added.contact_links} contact and "
            f"{added.deal_links} deal associations (custom objects on)"
        )
