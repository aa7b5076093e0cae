"""The match-values step in a real browser: upload a HubSpot-shaped export, map its owner
and status columns, match the old system's values (a lead status is suggested to be left
out, an owner's name finds its member), go back and forth, preview and import."""

import csv
import re

import pytest
from playwright.sync_api import expect

from contacts.importing import services as import_services
from contacts.importing.models import ImportJob, SavedMapping
from contacts.models import Contact
from tests.factories import MembershipFactory, UserFactory, role

pytestmark = pytest.mark.e2e

ROWS = [
    ["Ada", "Lovelace", "ada@example.com", "José Müller", "OPEN"],
    ["Alan", "Turing", "alan@example.com", "Piet Seller", "BAD_TIMING"],
    ["Grace", "Hopper", "grace@example.com", "José Müller", "Active"],
]


def write_export(path):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["First Name", "Last Name", "Email", "Contact owner", "Status"])
        writer.writerows(ROWS)


def test_owner_matches_values_between_mapping_and_preview(
    page, live_server, login_as, owner, settings, tmp_path
):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    jose = MembershipFactory(
        org=owner.org,
        user=UserFactory(first_name="José", last_name="Müller", email="jose@example.com"),
        role=role(owner.org, "team"),
    )
    export = tmp_path / "hubspot.csv"
    write_export(export)
    login_as(owner.user)

    page.goto("/contacts/import/")
    page.locator('input[type="file"]').set_input_files(str(export))
    page.get_by_role("button", name="Upload and map columns").click()
    page.wait_for_url(re.compile(r"/map/$"))
    page.get_by_label("Import “Contact owner” into").select_option("owner")
    page.get_by_label("Import “Status” into").select_option("status")
    page.get_by_role("button", name="Continue to preview").click()

    # Step 3: the values, with suggestions.
    page.wait_for_url(re.compile(r"/values/$"))
    expect(page.locator('.import-steps [aria-current="step"]')).to_contain_text("Match values")
    jose_select = page.get_by_label("“José Müller” in Contact owner becomes")
    expect(jose_select).to_have_value(str(jose.user_id))
    expect(page.get_by_label("“Piet Seller” in Contact owner becomes")).to_have_value("__default__")
    open_select = page.get_by_label("“OPEN” in Status becomes")
    expect(open_select).to_have_value("")  # a lead status: left out, not "Active"
    expect(page.get_by_label("“Active” in Status becomes")).to_have_value("active")

    # Back to the mapping and forward again keeps the way.
    page.get_by_role("link", name="Back to mapping").click()
    page.wait_for_url(re.compile(r"/map/$"))
    page.get_by_role("button", name="Continue to preview").click()
    page.wait_for_url(re.compile(r"/values/$"))

    page.get_by_label("“OPEN” in Status becomes").select_option("active")
    page.get_by_label("“BAD_TIMING” in Status becomes").select_option("inactive")
    page.get_by_label("Save this mapping as").fill("HubSpot")
    page.get_by_role("button", name="Continue to preview").click()

    page.wait_for_url(re.compile(r"/preview/$"))
    expect(page.locator(".import-total-create .figure-value")).to_have_text("3")
    expect(page.get_by_role("link", name="Back to matching values")).to_be_visible()

    job = ImportJob.objects.get(org=owner.org)
    assert job.value_map["Status"] == {
        "OPEN": "active",
        "BAD_TIMING": "inactive",
        "Active": "active",
    }
    assert SavedMapping.objects.get(org=owner.org, name="HubSpot").value_map == job.value_map

    # The worker's part runs here, in the test, as in the other wizard tests' fast path.
    page.get_by_role("button", name="Start import").click()
    page.wait_for_url(re.compile(r"/contacts/import/[0-9a-f-]+/$"))
    import_services.run_import(org_id=job.org_id, job_id=job.pk)
    contacts = {c.email: c for c in Contact.objects.filter(org=owner.org)}
    assert (contacts["ada@example.com"].owner_id, contacts["ada@example.com"].status) == (
        jose.user_id,
        "active",
    )
    assert contacts["alan@example.com"].status == "inactive"
    assert contacts["alan@example.com"].owner_id is None  # the default owner: nobody
    assert contacts["grace@example.com"].owner_id == jose.user_id
