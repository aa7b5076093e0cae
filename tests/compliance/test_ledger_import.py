"""An import's consents are ledgered as the import's, with the file's name; its undo
ledgers what it puts back and takes the ledger of the contacts it deletes with them."""

import pytest

from compliance.models import ConsentRecord
from contacts.importing import services
from contacts.models import Contact
from crm.permissions import Policy
from crm.services import Actor
from tests.contacts.test_import_pipeline import (  # noqa: F401 -- the fixture
    _uploads_in_tmp,
    existing_contact,
    import_file,
    rows_csv,
)

pytestmark = pytest.mark.django_db


def test_imported_consent_columns_and_defaults_are_ledgered_with_the_file(org, owner):
    content = rows_csv(
        ["Email", "SMS opt in"],
        [["ann@example.com", "yes"], ["bob@example.com", "no"], ["cy@example.com", ""]],
    )
    job = import_file(owner, content, name="spring-fair.csv", consent_status="opted_in")
    assert job.created_count == 3
    rows = ConsentRecord.objects.for_org(org).select_related("contact")
    got = {(r.contact.email, r.field, r.old_value, r.new_value) for r in rows}
    assert got == {
        ("ann@example.com", "consent_sms", "", "true"),
        ("bob@example.com", "consent_sms", "", "false"),
        ("ann@example.com", "consent_status", "unknown", "opted_in"),
        ("bob@example.com", "consent_status", "unknown", "opted_in"),
        ("cy@example.com", "consent_status", "unknown", "opted_in"),
    }
    assert {r.actor_kind for r in rows} == {"import"}
    assert {r.source for r in rows} == {"Imported from spring-fair.csv"}
    assert {r.evidence["file"] for r in rows} == {"spring-fair.csv"}
    assert {r.actor_user_id for r in rows} == {owner.user_id}


def test_undo_ledgers_the_restored_consent_and_removes_the_created_contacts_ledger(org, owner):
    kept = existing_contact(org, email="known@example.com", consent_sms=True)
    content = rows_csv(
        ["Email", "SMS opt in"], [["known@example.com", "no"], ["new@example.com", "yes"]]
    )
    job = import_file(owner, content)
    new = Contact.objects.for_org(org).get(email="new@example.com")
    assert ConsentRecord.objects.for_org(org).filter(contact=new).exists()

    services.import_undo(job=job, actor=Actor.for_user(owner.user), policy=Policy(owner))
    services.run_undo(org_id=org.pk, job_id=job.pk)

    assert not Contact.objects.for_org(org).filter(email="new@example.com").exists()
    kept.refresh_from_db()
    assert kept.consent_sms is True
    history = list(
        ConsentRecord.objects.for_org(org)
        .filter(contact=kept, field="consent_sms")
        .order_by("id")
        .values_list("old_value", "new_value", "actor_kind")
    )
    assert history == [
        ("", "true", "system"),
        ("true", "false", "import"),
        ("false", "true", "import"),
    ]
    last = ConsentRecord.objects.for_org(org).filter(contact=kept).latest("id")
    assert last.source.startswith("Undo of the import of")
