"""Under GDPR an import's "opted in" waits for the person's double opt-in confirmation."""

import pytest
from django.core import mail

from compliance.models import ConsentRecord, OptInConfirmation, PrivacySettings
from contacts.models import Contact
from tests.contacts.test_import_pipeline import (  # noqa: F401 -- the fixture
    _uploads_in_tmp,
    import_file,
    rows_csv,
)
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db(transaction=True)


def mode(org, value):
    PrivacySettings.objects.for_org(org).update_or_create(org=org, defaults={"mode": value})


def status(org, email):
    return Contact.objects.for_org(org).get(email=email).consent_status


def test_imported_opt_ins_of_gdpr_contacts_become_pending_with_an_email(org, owner):
    mode(org, "both")
    # Opted in (and confirmed) before the import.
    ContactFactory(org=org, email="kept@example.com", country="DE", consent_status="opted_in")
    content = rows_csv(
        ["Email", "Country"],
        [
            ["anna@example.de", "DE"],
            ["bill@example.com", "US"],
            ["nocountry@example.com", ""],
            ["kept@example.com", "DE"],
        ],
    )
    job = import_file(owner, content, name="fair.csv", consent_status="opted_in")
    assert job.created_count == 3

    assert status(org, "anna@example.de") == "pending"
    assert status(org, "nocountry@example.com") == "pending"  # "both": no country is strict
    assert status(org, "bill@example.com") == "opted_in"  # CCPA: opt-out regime
    assert status(org, "kept@example.com") == "opted_in"  # opted in before the import
    sent_to = sorted(
        address
        for message in mail.outbox
        for address in message.to
        if OptInConfirmation.objects.for_org(org).filter(address=address).exists()
    )
    assert sent_to == ["anna@example.de", "nocountry@example.com"]
    assert OptInConfirmation.objects.for_org(org).count() == 2
    anna = Contact.objects.for_org(org).get(email="anna@example.de")
    history = list(
        ConsentRecord.objects.for_org(org)
        .filter(contact=anna, field="consent_status")
        .order_by("id")
        .values_list("old_value", "new_value", "actor_kind")
    )
    assert history == [("unknown", "opted_in", "import"), ("opted_in", "pending", "import")]


def test_without_gdpr_an_import_keeps_its_opt_ins(org, owner):
    mode(org, "ccpa")
    import_file(
        owner, rows_csv(["Email", "Country"], [["zoe@example.de", "DE"]]), consent_status="opted_in"
    )
    assert status(org, "zoe@example.de") == "opted_in"
    assert not OptInConfirmation.objects.for_org(org).exists()
    assert not any("zoe@example.de" in message.to for message in mail.outbox)
