"""Admins' custom-field patterns run on RE2, in time linear in the value: a pattern that
makes Python's re backtrack for ever ((a+)+$ against "aaa…!") answers at once in the form
and in the import. The definition form refuses what RE2 cannot run, saying why, and a
pattern stored before that check is skipped (and flagged to the admin), never run on re."""

import contextlib
import logging
import signal
import time

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from contacts import services as contact_services
from contacts.custom_fields import clean_definition, coerce_custom_value
from contacts.importing.models import ImportRowError
from contacts.models import Contact, CustomFieldDefinition
from contacts.validators import pattern_matches, pattern_problem
from crm.services import Actor
from tests.factories import ContactFactory, CustomFieldDefinitionFactory

from .test_import_pipeline import import_file, rows_csv

pytestmark = pytest.mark.django_db

EVIL_PATTERN = r"(a+)+$"
EVIL_VALUE = "a" * 50 + "!"  # Python's re tries 2**50 ways before it says no
TIME_LIMIT = 2.0  # seconds; RE2 answers in microseconds


@contextlib.contextmanager
def deadline(seconds: float):
    """Fail (instead of hanging the suite) if the block runs longer than `seconds`: Python's
    re checks for signals while it backtracks, so the alarm interrupts it."""

    def expire(signum, frame):
        raise TimeoutError(f"still running after {seconds} s: the pattern ran on a backtracker")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    started = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert time.monotonic() - started < TIME_LIMIT


def evil_field(org, **kwargs) -> CustomFieldDefinition:
    return contact_services.customfield_create(
        org=org,
        actor=Actor.system("test"),
        data={
            "key": "code",
            "label": "Code",
            "field_type": "text",
            "regex": EVIL_PATTERN,
            "regex_message": "Only a's.",
            **kwargs,
        },
    )


# ReDoS ----------------------------------------------------------------------------------------


def test_a_backtracking_pattern_answers_at_once_in_the_contact_form(client_as, owner):
    evil_field(owner.org)
    contact = ContactFactory(org=owner.org, owner=owner.user)
    edit = reverse(
        "contacts:contact_field_edit", kwargs={"public_id": contact.public_id, "key": "custom.code"}
    )
    client = client_as(owner, htmx=True)

    with deadline(5):
        refused = client.post(edit, {"custom__code": EVIL_VALUE})
    client.post(edit, {"custom__code": "aaaa"})

    assert refused.status_code == 200
    assert "Only a&#x27;s." in refused.content.decode()
    contact.refresh_from_db()
    assert contact.custom == {"code": "aaaa"}


def test_a_backtracking_pattern_answers_at_once_in_the_import(owner):
    evil_field(owner.org)
    rows = [[f"p{n}@example.com", "a" * n + "!"] for n in range(40, 50)]
    rows.append(["ok@example.com", "aaaa"])
    content = rows_csv(["Email", "Code"], rows)

    with deadline(5):
        job = import_file(owner, content, mapping={"Email": "email", "Code": "custom.code"})

    # Each bad code is left out with a warning; every contact is imported.
    assert (job.status, job.created_count, job.error_count) == ("done", 11, 0)
    assert (job.warning_count, job.warning_counts) == (10, {"value_left_out": 10})
    assert Contact.objects.get(org=owner.org, email="p45@example.com").custom == {}
    assert Contact.objects.get(org=owner.org, email="ok@example.com").custom == {"code": "aaaa"}
    messages = ImportRowError.objects.filter(job=job).values_list("message", flat=True)
    assert all(m.startswith("Code: Only a's.") for m in messages)


def test_a_backtracking_pattern_answers_at_once_in_the_service():
    field = CustomFieldDefinition(key="code", label="Code", field_type="text", regex=EVIL_PATTERN)
    with deadline(5), pytest.raises(ValidationError):
        coerce_custom_value(field, EVIL_VALUE)


# The definition form --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        (r"(a)\1", "This pattern uses a backreference such as \\1, which is not supported."),
        (r"(?P<x>a)(?P=x)", "uses a named backreference"),
        (r"\d+(?=kg)", "uses a lookahead or lookbehind"),
        (r"(?<!-)\d+", "uses a lookahead or lookbehind"),
        (r"a++", "uses a possessive quantifier"),
        (r"(?>a+)b", "uses an atomic group"),
        (r"([a-z", "This pattern does not compile: missing ]"),
        (r"a{2000}", "does not compile"),
    ],
)
def test_the_definition_refuses_a_pattern_re2_cannot_run(org, pattern, message):
    with pytest.raises(ValidationError) as refused:
        clean_definition(
            org=org, entity="contact", key="code", label="Code", field_type="text", regex=pattern
        )
    assert message in refused.value.message_dict["regex"][0]


def test_the_definition_refuses_an_absurdly_long_pattern(org):
    with pytest.raises(ValidationError) as refused:
        clean_definition(
            org=org, entity="contact", key="code", label="Code", field_type="text", regex="a" * 301
        )
    assert "at most 300 characters" in refused.value.message_dict["regex"][0]


def test_the_custom_field_form_shows_why_a_backreference_is_refused(client_as, owner):
    response = client_as(owner).post(
        reverse("contacts:custom_field_create"),
        {
            "entity": "contact",
            "label": "Twice",
            "key": "twice",
            "field_type": "text",
            "regex": r"(\w+) \1",
        },
    )

    assert response.status_code == 200
    assert "This pattern uses a backreference" in response.content.decode()
    assert not CustomFieldDefinition.objects.for_org(owner.org).exists()


def test_the_custom_field_form_accepts_a_pattern_that_only_backtracks_on_re(client_as, owner):
    response = client_as(owner).post(
        reverse("contacts:custom_field_create"),
        {
            "entity": "contact",
            "label": "Code",
            "key": "code",
            "field_type": "text",
            "regex": "(a+)+$",
        },
    )

    assert response.status_code == 302
    assert CustomFieldDefinition.objects.for_org(owner.org).get().regex == "(a+)+$"


# Patterns written for Python's re -----------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "good", "bad"),
    [
        (r"[A-Z]{2}-\d{4}", "AB-1234", "ab-12345"),
        (r"\d+\Z", "123", "123abc"),  # RE2 spells \Z as \z: rewritten
        (r"(?i)acme-\w+", "ACME-x1", "acme-"),
        (r"(?P<area>\d{3})-\d{4}", "415-5555", "415-55555"),
        (r"https://(www\.)?linkedin\.com/.+", "https://linkedin.com/in/ada", "https://x.com/a"),
        (r"\\Z", "\\Z", "Z"),  # an escaped backslash then Z stays a literal
    ],
)
def test_patterns_written_for_python_keep_their_meaning(pattern, good, bad):
    assert pattern_problem(pattern) is None
    assert pattern_matches(pattern, good) is True
    assert pattern_matches(pattern, bad) is False


def test_a_link_field_pattern_checks_the_normalized_address():
    field = CustomFieldDefinition(
        key="li", label="LinkedIn", field_type="link", regex=r"https://(www\.)?linkedin\.com/.+"
    )
    assert coerce_custom_value(field, "linkedin.com/in/ada") == "https://linkedin.com/in/ada"
    with pytest.raises(ValidationError):
        coerce_custom_value(field, "evil.com/in/ada")


# Patterns stored before the check -------------------------------------------------------------


def test_a_stored_pattern_re2_cannot_run_is_skipped_and_flagged(client_as, owner, caplog):
    field = CustomFieldDefinitionFactory(
        org=owner.org, key="twice", label="Twice", field_type="text", regex=r"(\d+)=\1"
    )

    with caplog.at_level(logging.WARNING, logger="contacts.validators"), deadline(5):
        assert coerce_custom_value(field, "12=12") == "12=12"
        assert coerce_custom_value(field, "12=34") == "12=34"
    assert "is not applied" in caplog.text

    page = client_as(owner).get(
        reverse("contacts:custom_field_edit", kwargs={"public_id": field.public_id})
    )
    assert "uses a backreference" in page.content.decode()
    assert "Values are not checked against it until you change it." in page.content.decode()
