"""The access export: a ZIP with every kind of data held about one person."""

import io
import json
import zipfile

import pytest

from compliance.services.access import build_access_export
from contacts.importing.models import ImportRecord
from crm.services import Actor, audit
from tests.factories import (
    ActivityFactory,
    ContactFactory,
    CustomFieldDefinitionFactory,
    DealContactFactory,
    ImportJobFactory,
    NoteFactory,
    ObjectAssociationFactory,
    OrderFactory,
    SuppressionFactory,
    TaskFactory,
)

pytestmark = pytest.mark.django_db


def unzip(data: bytes) -> dict:
    archive = zipfile.ZipFile(io.BytesIO(data))
    return {name: json.loads(archive.read(name)) for name in archive.namelist()}


def test_every_section_holds_the_persons_rows(org):
    CustomFieldDefinitionFactory(org=org, key="shoe_size", label="Shoe size")
    job = ImportJobFactory(org=org, file_name="fair-leads.csv")
    contact = ContactFactory(
        org=org,
        email="lin@example.com",
        phone="+442079460958",
        custom={"shoe_size": "42"},
        import_job=job,
    )
    other = ContactFactory(org=org)
    ActivityFactory(org=org, contact=contact, subject="Called about the renewal")
    ActivityFactory(org=org, contact=other, subject="Someone else's call")
    NoteFactory(org=org, contact=contact, body="Prefers mornings")
    TaskFactory(org=org, contact=contact, title="Send the brochure")
    DealContactFactory(org=org, contact=contact)
    OrderFactory(org=org, contact=contact, title="Starter kit")
    ObjectAssociationFactory(org=org, contact=contact)
    SuppressionFactory(org=org, address="lin@example.com")
    ImportRecord.objects.create(
        job=job,
        contact_id=contact.pk,
        row_number=7,
        action="updated",
        changes={"city": ["", "Leeds"]},
        written_at=contact.created_at,
    )
    audit(org=org, actor=Actor.system("tests"), verb="contact.updated", obj=contact, changes={})

    files = unzip(build_access_export(contact))

    assert files["person.json"]["email"] == "lin@example.com"
    assert files["person.json"]["custom"] == {"shoe_size": "42"}
    assert files["person.json"]["id"] == str(contact.public_id)
    assert [a["subject"] for a in files["activities.json"]] == ["Called about the renewal"]
    assert [n["body"] for n in files["notes.json"]] == ["Prefers mornings"]
    assert [t["title"] for t in files["tasks.json"]] == ["Send the brochure"]
    assert len(files["deals.json"]) == 1
    assert [o["title"] for o in files["orders.json"]] == ["Starter kit"]
    assert len(files["custom_objects.json"]) == 1
    # The creation of the contact is the ledger's first rows (the triggers write them).
    assert isinstance(files["consent.json"], list)
    assert [s["address"] for s in files["suppressions.json"]] == ["lin@example.com"]
    imports = files["imports.json"]
    assert imports[0]["file_name"] == "fair-leads.csv" and imports[0]["action"] == "created"
    assert imports[1]["changes"] == {"city": ["", "Leeds"]}
    assert [e["verb"] for e in files["audit.json"]] == ["contact.updated"]
    assert files["README.json"]["files"]["activities.json"] == 1


def test_the_consent_history_is_exported(org):
    contact = ContactFactory(org=org, consent_email=True)
    files = unzip(build_access_export(contact))
    rows = [(r["field"], r["new_value"]) for r in files["consent.json"]]
    assert ("consent_email", "true") in rows


def test_an_empty_section_is_an_empty_array(org):
    files = unzip(build_access_export(ContactFactory(org=org)))
    assert files["notes.json"] == [] and files["orders.json"] == []


def test_another_contacts_data_stays_out(org, other_org):
    contact = ContactFactory(org=org, email="same@example.com")
    theirs = ContactFactory(org=other_org, email="same@example.com")
    NoteFactory(org=other_org, contact=theirs, body="Not yours")
    SuppressionFactory(org=other_org, address="same@example.com")
    files = unzip(build_access_export(contact))
    assert files["notes.json"] == [] and files["suppressions.json"] == []
    assert "Not yours" not in json.dumps(files)
