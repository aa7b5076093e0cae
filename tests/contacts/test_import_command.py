"""`manage.py import_contacts`: the wizard's pipeline from the command line, a saved
mapping's matched values included."""

import json

import pytest
from django.core.management import call_command

from contacts.importing.models import SavedMapping
from contacts.importing.services import headers_signature
from contacts.models import Contact
from tests.contacts.test_import_values_step import HEADERS, MAPPING, csv_of, person

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _uploads_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


def test_a_saved_mapping_brings_its_matched_values_to_the_command_line(org, tmp_path, capsys):
    boss = person(org, "owner", "Olga", "Owner", "olga@acme.test")
    jane = person(org, "team", "José", "Müller", "jose.mueller@acme.test")
    SavedMapping.objects.create(
        org=org,
        name="HubSpot",
        headers=HEADERS,
        headers_signature=headers_signature(HEADERS),
        mapping=MAPPING,
        value_map={
            "Contact owner": {"Piet Seller": str(jane.user_id)},
            "Status": {"OPEN": "active"},
        },
    )
    path = tmp_path / "hubspot.csv"
    path.write_text(
        csv_of(
            [
                ["Ada", "Lovelace", "ada@x.test", "Piet Seller", "OPEN"],
                ["Alan", "Turing", "alan@x.test", "olga@acme.test", "BAD_TIMING"],
            ]
        ),
        encoding="utf-8",
    )

    call_command("import_contacts", str(path), org=org.slug, mapping="saved:HubSpot")

    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (summary["created"], summary["errors"]) == (2, 0)
    people = {c.email: c for c in Contact.objects.filter(org=org)}
    assert (people["ada@x.test"].owner_id, people["ada@x.test"].status) == (jane.user_id, "active")
    assert people["alan@x.test"].owner_id == boss.user_id
    # BAD_TIMING is a lead status, not the contact's: reported, and the status keeps its default.
    assert summary["warnings_by_kind"] == {"choice_unmatched": 1}
